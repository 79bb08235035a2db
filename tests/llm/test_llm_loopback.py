"""The loopback server as a reusable tool: routes, error bodies, request log, responder bugs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from reskill_gym.testing.loopback import (
    LoopbackError,
    LoopbackLLMServer,
    LoopbackReply,
    echo_responder,
    schema_example,
    scripted,
)


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_error_bodies_and_retry_headers() -> None:
    with LoopbackLLMServer(
        scripted(LoopbackError(429, "slow", retry_after=1.2), LoopbackError(529, "busy"))
    ) as srv:
        status, headers, body = post(
            f"{srv.openai_base_url}/chat/completions", {"model": "m", "messages": []}
        )
        assert status == 429 and body["error"]["message"] == "slow"
        assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "1200"
        status, _, body = post(
            f"{srv.anthropic_base_url}/v1/messages", {"model": "m", "messages": []}
        )
        assert status == 529 and body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "busy"},
        }


def test_routes_stream_and_bad_body() -> None:
    with LoopbackLLMServer() as srv:
        with urllib.request.urlopen(f"{srv.openai_base_url}/models", timeout=5) as r:
            assert json.loads(r.read())["data"][0]["id"] == "loopback"
        status, _, _ = post(f"{srv.url}/nowhere", {})
        assert status == 404
        status, _, body = post(
            f"{srv.anthropic_base_url}/v1/messages", {"stream": True, "messages": []}
        )
        assert status == 400 and "does not stream" in body["error"]["message"]
        status, _, body = post(
            f"{srv.openai_base_url}/chat/completions",
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
            },
        )
        assert status == 200 and body["choices"][0]["message"]["content"] == "echo: hi there"
        assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert [r.api for r in srv.requests] == ["anthropic", "openai"]


def test_responder_bug_is_a_500_and_recorded() -> None:
    def broken(_req):
        raise KeyError("oops")

    with LoopbackLLMServer(broken) as srv:
        status, _, body = post(
            f"{srv.openai_base_url}/chat/completions", {"model": "m", "messages": []}
        )
    assert status == 500 and "KeyError" in body["error"]["message"]
    assert len(srv.responder_errors) == 1


def test_tool_answer_falls_back_to_text_when_not_json() -> None:
    tool_req = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "respond", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "respond"},
    }
    with LoopbackLLMServer(
        scripted('{"a": 1}', LoopbackReply("not json", stop_reason="max_tokens"))
    ) as srv:
        _, _, ok = post(f"{srv.anthropic_base_url}/v1/messages", tool_req)
        _, _, bad = post(f"{srv.anthropic_base_url}/v1/messages", tool_req)
    assert ok["content"][0]["type"] == "tool_use" and ok["content"][0]["input"] == {"a": 1}
    assert ok["stop_reason"] == "tool_use"
    assert (
        bad["content"] == [{"type": "text", "text": "not json"}]
        and bad["stop_reason"] == "max_tokens"
    )


def test_schema_example_and_echo_default() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["add", "delete"]},
            "item": {"$ref": "#/$defs/Item"},
            "note": {"type": ["null", "string"]},
        },
        "required": ["kind", "item", "note"],
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"n": {"type": "integer", "default": 3}},
                "required": ["n"],
            }
        },
    }
    assert schema_example(schema) == {"kind": "add", "item": {"n": 3}, "note": ""}


def test_server_requires_start() -> None:
    srv = LoopbackLLMServer(echo_responder)
    with pytest.raises(RuntimeError, match="not running"):
        _ = srv.port
    srv.start()
    try:
        assert srv.spec().startswith("openai:http://127.0.0.1:")
    finally:
        srv.stop()
    srv.stop()  # idempotent
