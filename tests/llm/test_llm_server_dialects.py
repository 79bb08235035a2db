"""Structured output against servers that refuse formats the way real ones do.

The loopback server speaks each dialect (llama-cpp-python's HTTP 500 validation body,
OpenAI's 400s, FastAPI's 422); the real ``openai`` SDK talks to it. The backend must step down
the format chain once per server, never retry a deterministic refusal, and remember it.
"""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import BaseModel, Field

from reskill_gym.llm import (
    SERVER_CAPABILITIES,
    CompletionRequest,
    LLMRequestError,
    LLMServerError,
    make_backend,
    set_http_logging,
)
from reskill_gym.llm.openai_api import ServerCapabilities, is_format_rejection
from reskill_gym.testing.loopback import (
    DIALECTS,
    LoopbackError,
    LoopbackLLMServer,
    LoopbackRequest,
    scripted,
)

FAST = {"timeout_s": 5.0, "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


class Verdict(BaseModel):
    """A judgement of one episode."""

    success: bool
    reason: str = Field(min_length=3)
    score: int = Field(ge=0, le=10)


GOOD = json.dumps({"success": True, "reason": "opened the fridge", "score": 7})
PROSE = "The agent did fine, I think it opened the fridge."


def model_like(req: LoopbackRequest) -> str:
    """A model that follows the schema when the server enforces one, drifts otherwise.

    Without a schema it answers prose, and JSON only once told what was wrong (the re-ask).
    """
    if req.schema is not None:
        return GOOD
    if "could not be used" in req.last_user_text:
        return GOOD
    if req.json_mode:
        return json.dumps({"success": True})  # valid JSON, missing fields
    return PROSE


def formats(srv: LoopbackLLMServer) -> list[str]:
    out = []
    for r in srv.requests:
        fmt = r.body.get("response_format") or {}
        kind = fmt.get("type", "none")
        out.append("json_object_schema" if kind == "json_object" and "schema" in fmt else kind)
    return out


@pytest.mark.parametrize(
    ("dialect", "first_call", "second_call"),
    [
        ("permissive", ["json_schema"], ["json_schema"]),
        ("llama-cpp-python", ["json_schema", "json_object_schema"], ["json_object_schema"]),
        (
            "openai-legacy",
            ["json_schema", "json_object_schema", "json_object", "json_object"],
            ["json_object", "json_object"],
        ),
        (
            "text-only",
            ["json_schema", "json_object_schema", "json_object", "none", "none"],
            ["none", "none"],
        ),
    ],
)
def test_fallback_chain_per_dialect(dialect: str, first_call: list, second_call: list) -> None:
    with LoopbackLLMServer(model_like, dialect=dialect) as srv:
        with make_backend(srv.spec(), **FAST) as b:
            c1 = b.complete([{"role": "user", "content": "judge episode 1"}], Verdict)
            n1 = len(srv.requests)
            c2 = b.complete([{"role": "user", "content": "judge episode 2"}], Verdict)
            usage = b.usage
    assert c1.parsed == c2.parsed == Verdict.model_validate_json(GOOD)
    assert formats(srv)[:n1] == first_call
    assert formats(srv)[n1:] == second_call
    assert usage.retries == 0  # a refusal is never retried as if it were transient
    assert usage.failed_calls == 0


def test_llama_cpp_python_body_is_a_500_the_sdk_sees_as_server_error() -> None:
    status, body = DIALECTS["llama-cpp-python"].answer_for(
        {"response_format": {"type": "json_schema", "json_schema": {}}}
    )
    assert status == 500 and body["error"]["type"] == "internal_server_error"
    assert "Input should be 'text' or 'json_object'" in body["error"]["message"]
    assert is_format_rejection(body["error"]["message"], status=500)
    # what a different (transient) 500 says is not a format refusal
    assert not is_format_rejection("Internal Server Error", status=500)
    assert not is_format_rejection("rate limited on response_format calls", status=429)


def test_capability_is_per_server_and_model_and_shared_by_instances() -> None:
    with LoopbackLLMServer(model_like, dialect="llama-cpp-python") as srv:
        with make_backend(srv.spec(), **FAST) as a:
            a.complete([{"role": "user", "content": "x"}], Verdict)
        with make_backend(srv.spec(), **FAST) as again:
            assert again.structured_mode == "json_object_schema"
            again.complete([{"role": "user", "content": "y"}], Verdict)
        other = make_backend(f"openai:{srv.openai_base_url}/#other-model", **FAST)
        assert other.structured_mode == "json_schema"
        key = f"{srv.openai_base_url}#{srv.model_name}"
        assert SERVER_CAPABILITIES.snapshot()[key] == {"structured_mode": "json_object_schema"}
        other.close()
        base_url = srv.openai_base_url
    assert formats(srv) == ["json_schema", "json_object_schema", "json_object_schema"]
    # a stopped loopback server is forgotten, so a new one on the same port starts afresh
    assert not any(k.startswith(base_url) for k in SERVER_CAPABILITIES.snapshot())


def test_concurrent_refusals_move_the_server_down_one_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="reskill_gym.llm")
    with LoopbackLLMServer(model_like, dialect="llama-cpp-python", delay_s=0.05) as srv:
        with make_backend(srv.spec(), max_concurrency=8, **FAST) as b:
            reqs = [
                CompletionRequest([{"role": "user", "content": f"episode {i}"}], Verdict)
                for i in range(8)
            ]
            out = b.complete_many(reqs, max_workers=8)
            mode = b.structured_mode
            usage = b.usage
    assert all(c.parsed is not None for c in out)
    assert mode == "json_object_schema"  # not pushed further by eight simultaneous refusals
    kinds = formats(srv)
    assert kinds.count("json_object_schema") == 8 and set(kinds) == {
        "json_schema",
        "json_object_schema",
    }
    assert usage.retries == 0
    moved = [r for r in caplog.records if "rejects response_format" in r.getMessage()]
    assert [r.levelno for r in moved].count(logging.WARNING) == 1  # one line per server step


def test_explicit_mode_refused_fails_at_once_with_a_hint() -> None:
    with LoopbackLLMServer(model_like, dialect="llama-cpp-python") as srv:
        with make_backend(srv.spec(), structured_output="json_schema", **FAST) as b:
            with pytest.raises(LLMRequestError, match="use 'auto'") as info:
                b.complete([{"role": "user", "content": "x"}], Verdict)
    assert info.value.status == 500
    assert len(srv.requests) == 1


def test_validation_500_is_not_retried_but_a_plain_500_is() -> None:
    validation = (
        "1 validation error:\n  {'type': 'missing', 'loc': ('body', 'messages'), "
        "'msg': 'Field required'}"
    )
    with LoopbackLLMServer(scripted(LoopbackError(500, validation))) as srv:
        with make_backend(srv.spec(), **FAST) as b:
            with pytest.raises(LLMRequestError) as info:
                b.complete([{"role": "user", "content": "x"}])
    assert info.value.status == 500 and len(srv.requests) == 1
    with LoopbackLLMServer(scripted(*[LoopbackError(500, "boom")] * 2, "fine")) as srv:
        with make_backend(srv.spec(), **FAST) as b:
            assert b.complete([{"role": "user", "content": "x"}]).text == "fine"
            assert b.usage.retries == 2
    with LoopbackLLMServer(scripted(*[LoopbackError(503, "busy")] * 2)) as srv:
        with make_backend(srv.spec(), **{**FAST, "max_retries": 1}) as b:
            with pytest.raises(LLMServerError):
                b.complete([{"role": "user", "content": "x"}])


def test_compare_and_set_downgrade() -> None:
    caps = ServerCapabilities()
    key = caps.key("http://h/v1/", "m")
    assert key == ("http://h/v1", "m")
    assert caps.downgrade(key, "json_object") == ("none", True)
    assert caps.downgrade(key, "json_schema") == ("none", False)  # a late refusal: no way up
    assert caps.downgrade(key, "none") == ("none", False)
    caps.forget("http://h/v1")
    assert caps.structured_mode(key) == "json_schema"


def test_log_lines_one_per_fallback_retry_group_and_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="reskill_gym.llm")
    with LoopbackLLMServer(model_like, dialect="text-only") as srv:
        with make_backend(srv.spec(), **FAST) as b:
            b.complete([{"role": "user", "content": "a"}], Verdict)
            b.complete([{"role": "user", "content": "b"}], Verdict)
    fallbacks = [r for r in caplog.records if "rejects response_format" in r.getMessage()]
    assert [r.levelno for r in fallbacks] == [logging.WARNING] * 3  # three steps, once each
    caplog.clear()
    with LoopbackLLMServer(scripted(*[LoopbackError(503, "busy")] * 4)) as srv:
        with make_backend(srv.spec(), **FAST) as b:
            with pytest.raises(LLMServerError):
                b.complete([{"role": "user", "content": "x"}])
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("llm.base")]
    assert [lvl for lvl, _ in lines if lvl >= logging.INFO] == [logging.INFO, logging.WARNING]
    assert "retry 1/3" in lines[0][1] and "call failed" in lines[-1][1]
    assert sum(1 for lvl, m in lines if lvl == logging.DEBUG and "retry" in m) == 2


@pytest.fixture
def http_levels():
    names = ("httpx", "httpx2", "openai", "anthropic", "httpcore", "httpcore2")
    saved = {n: logging.getLogger(n).level for n in names}
    yield
    for n, lvl in saved.items():
        logging.getLogger(n).setLevel(lvl)


def test_http_request_lines_only_when_verbose(
    caplog: pytest.LogCaptureFixture, http_levels
) -> None:
    caplog.set_level(logging.INFO)

    def http_lines() -> list[str]:
        caplog.clear()
        with LoopbackLLMServer() as srv:
            with make_backend(srv.spec(), **FAST) as b:
                b.complete([{"role": "user", "content": "hi"}])
        return [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]

    set_http_logging(verbose=True)
    assert any("HTTP Request: POST" in m for m in http_lines())
    set_http_logging(verbose=False)
    assert http_lines() == []


def test_cli_verbose_switch_sets_http_levels(http_levels) -> None:
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["version"]).exit_code == 0
    assert logging.getLogger("httpx2").level == logging.WARNING
    assert runner.invoke(app, ["--verbose", "version"]).exit_code == 0
    assert logging.getLogger("httpx2").level == logging.DEBUG


class Rule(BaseModel):
    """A schema with limits llama.cpp's grammar converter cannot take, and a keyword as a name."""

    pattern: str = Field(max_length=2000, description="a regex")
    notes: list[str] = Field(default_factory=list, max_length=12)


def test_grammar_gets_structure_only_and_prompt_keeps_limits() -> None:
    answer = json.dumps({"pattern": "open (.*)", "notes": ["a"]})
    with LoopbackLLMServer(lambda req: answer, dialect="llama-cpp-python") as srv:
        with make_backend(srv.spec(), **FAST) as b:
            assert b.complete([{"role": "user", "content": "x"}], Rule).parsed.notes == ["a"]
    sent = srv.requests[-1]
    grammar = sent.body["response_format"]["schema"]
    assert grammar["properties"]["pattern"] == {
        "description": "a regex",
        "title": "Pattern",
        "type": "string",
    }
    assert "maxItems" not in grammar["properties"]["notes"]
    assert '"maxLength": 2000' in sent.system  # the model is still told the limit


def test_raw_newlines_inside_strings_parse() -> None:
    # llama.cpp's JSON grammar lets control characters into strings; json.loads refuses them
    raw = '{"success": true, "reason": "took the apple\n\tthen heated it", "score": 4}'
    with LoopbackLLMServer(scripted(raw), dialect="llama-cpp-python") as srv:
        with make_backend(srv.spec(), structured_output="json_object_schema", **FAST) as b:
            c = b.complete([{"role": "user", "content": "x"}], Verdict)
    assert c.parsed.reason == "took the apple\n\tthen heated it" and c.attempts == 1
