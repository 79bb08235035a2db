"""The anthropic and openai backends, with the real SDKs, against the loopback server."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from pydantic import BaseModel, Field

from reskill_gym.llm import (
    CompletionRequest,
    LLMAuthError,
    LLMBackend,
    LLMConnectionError,
    LLMOutputError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    ModelPrice,
    make_backend,
)
from reskill_gym.testing.loopback import (
    LoopbackError,
    LoopbackLLMServer,
    LoopbackReply,
    LoopbackRequest,
    scripted,
)

APIS = ["openai", "anthropic"]
FAST = {"timeout_s": 5.0, "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


class Verdict(BaseModel):
    """A judgement of one episode."""

    success: bool
    reason: str = Field(min_length=3)
    score: int = Field(ge=0, le=10)


GOOD = json.dumps({"success": True, "reason": "opened the fridge", "score": 7})


def backend_for(api: str, srv: LoopbackLLMServer, **cfg):
    opts = {**FAST, **cfg}
    if api == "openai":
        return make_backend(srv.spec(), **opts)
    if api == "anthropic":
        return make_backend(
            "anthropic:claude-sonnet-5-5", base_url=srv.anthropic_base_url, api_key="k", **opts
        )
    return make_backend(
        "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        base_url=srv.bedrock_base_url,
        aws_region="us-east-1",
        api_key="k",
        **opts,
    )


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("api", APIS)
def test_plain_text(api: str) -> None:
    with LoopbackLLMServer(scripted("Open the fridge first.")) as srv:
        with backend_for(api, srv) as b:
            assert isinstance(b, LLMBackend)
            c = b.complete(
                [
                    {"role": "system", "content": "You are a judge."},
                    {"role": "user", "content": "What went wrong here?"},
                ],
                max_tokens=50,
            )
    assert c.text == "Open the fridge first."
    assert c.parsed is None and not c.cached and c.attempts == 1
    assert c.usage.input_tokens == 8 and c.usage.output_tokens == 4
    assert c.backend == api and c.latency_s > 0
    (req,) = srv.requests
    assert req.api == api
    if api == "anthropic":
        assert req.body["system"] == "You are a judge."
        assert [m["role"] for m in req.body["messages"]] == ["user"]
        assert req.body["max_tokens"] == 50
        assert c.model == "claude-sonnet-5-5"
    else:
        assert req.body["messages"][0] == {"role": "system", "content": "You are a judge."}
        assert req.body["max_tokens"] == 50 and "response_format" not in req.body


@pytest.mark.parametrize("api", [*APIS, "bedrock"])
def test_schema_parsed(api: str) -> None:
    with LoopbackLLMServer(scripted(GOOD)) as srv:
        with backend_for(api, srv) as b:
            c = b.complete([{"role": "user", "content": "judge it"}], Verdict)
    assert c.parsed == Verdict(success=True, reason="opened the fridge", score=7)
    assert json.loads(c.text) == json.loads(GOOD)
    (req,) = srv.requests
    assert req.schema is not None and req.schema["properties"].keys() == {
        "success",
        "reason",
        "score",
    }
    if api == "openai":
        assert req.body["response_format"]["type"] == "json_schema"
        assert "JSON Schema" in req.system
    else:
        assert req.body["tool_choice"] == {"type": "tool", "name": "respond"}
    if api == "bedrock":
        assert req.model == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        assert "anthropic_version" in req.body and "model" not in req.body


@pytest.mark.parametrize("api", APIS)
def test_malformed_json_fixed_on_retry(api: str) -> None:
    with LoopbackLLMServer(scripted('{"success": true, "reason": "ok', GOOD)) as srv:
        with backend_for(api, srv) as b:
            c = b.complete([{"role": "user", "content": "judge it"}], Verdict)
            usage = b.usage
    assert c.parsed is not None and c.parsed.score == 7
    assert c.attempts == 2 and usage.output_retries == 1 and usage.requests == 2
    first, second = srv.requests
    assert "invalid JSON" in second.last_user_text
    assert second.messages[-2] == {
        "role": "assistant",
        "content": '{"success": true, "reason": "ok',
    }
    # both answers were paid for
    assert c.usage.output_tokens == usage.output_tokens > 0


@pytest.mark.parametrize("api", APIS)
def test_schema_invalid_json_raises_with_raw_text(api: str) -> None:
    bad = json.dumps({"success": "perhaps", "reason": "x", "score": 99})
    with LoopbackLLMServer(scripted(bad, bad, bad, bad)) as srv:
        with backend_for(api, srv, max_output_retries=2) as b:
            with pytest.raises(LLMOutputError) as ei:
                b.complete([{"role": "user", "content": "judge it"}], Verdict)
            usage = b.usage
    err = ei.value
    assert json.loads(err.raw_text) == json.loads(bad)
    assert len(err.errors) == 3 and err.attempts == 3
    assert "score" in err.errors[0] and "success" in err.errors[0]
    assert len(srv.requests) == 3
    assert usage.failed_calls == 1 and usage.calls == 0 and usage.output_tokens > 0
    # the validation error was fed back to the model
    assert "schema validation failed" in srv.requests[1].last_user_text


@pytest.mark.parametrize("api", APIS)
def test_429_then_success_honours_retry_after(api: str) -> None:
    replies = scripted(LoopbackError(429, "slow down", retry_after=0.3), "done")
    with LoopbackLLMServer(replies) as srv:
        with backend_for(api, srv) as b:
            t0 = time.monotonic()
            c = b.complete([{"role": "user", "content": "go"}])
            elapsed = time.monotonic() - t0
            usage = b.usage
    assert c.text == "done"
    assert 0.3 <= elapsed < 2.0, elapsed  # backoff alone would be <= 0.01 s
    assert usage.retries == 1 and usage.requests == 2


@pytest.mark.parametrize("api", APIS)
def test_retry_after_clipped_and_rate_limit_exhausted(api: str) -> None:
    replies = scripted(*[LoopbackError(429, "quota", retry_after=30)] * 3)
    with LoopbackLLMServer(replies) as srv:
        with backend_for(api, srv, max_retries=2, max_retry_after_s=0.05) as b:
            t0 = time.monotonic()
            with pytest.raises(LLMRateLimitError) as ei:
                b.complete([{"role": "user", "content": "go"}])
    assert time.monotonic() - t0 < 2.0
    assert ei.value.status == 429 and ei.value.attempts == 3 and ei.value.retry_after == 30
    assert len(srv.requests) == 3


@pytest.mark.parametrize("api", APIS)
def test_timeout(api: str) -> None:
    with LoopbackLLMServer(scripted("late", "late"), delay_s=3.0) as srv:
        with backend_for(api, srv, timeout_s=0.3, max_retries=1) as b:
            t0 = time.monotonic()
            with pytest.raises(LLMTimeoutError) as ei:
                b.complete([{"role": "user", "content": "go"}])
            elapsed = time.monotonic() - t0
    assert ei.value.attempts == 2
    assert 0.6 <= elapsed < 2.5, elapsed


@pytest.mark.parametrize("api", APIS)
def test_connection_refused(api: str) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    if api == "openai":
        b = make_backend(f"openai:{url}/v1#m", **{**FAST, "max_retries": 2})
    else:
        b = make_backend("anthropic", base_url=url, api_key="k", **{**FAST, "max_retries": 2})
    with b, pytest.raises(LLMConnectionError) as ei:
        b.complete([{"role": "user", "content": "go"}])
    assert ei.value.attempts == 3
    assert b.usage.retries == 2 and b.usage.failed_calls == 1


@pytest.mark.parametrize("api", APIS)
def test_5xx_retried_then_success(api: str) -> None:
    replies = scripted(LoopbackError(500, "boom"), LoopbackError(503, "busy"), "recovered")
    with LoopbackLLMServer(replies) as srv:
        with backend_for(api, srv) as b:
            assert b.complete([{"role": "user", "content": "go"}]).text == "recovered"
            assert b.usage.retries == 2


@pytest.mark.parametrize("api", APIS)
def test_5xx_exhausted_and_4xx_not_retried(api: str) -> None:
    with LoopbackLLMServer(scripted(*[LoopbackError(502, "bad gateway")] * 3)) as srv:
        with backend_for(api, srv, max_retries=2) as b:
            with pytest.raises(LLMServerError) as ei:
                b.complete([{"role": "user", "content": "go"}])
    assert ei.value.status == 502 and len(srv.requests) == 3
    with LoopbackLLMServer(scripted(LoopbackError(400, "prompt too long"))) as srv:
        with backend_for(api, srv) as b:
            with pytest.raises(LLMRequestError) as ei2:
                b.complete([{"role": "user", "content": "go"}])
    assert ei2.value.status == 400 and "prompt too long" in str(ei2.value)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("api", APIS)
def test_wrong_key_is_auth_error(api: str) -> None:
    with LoopbackLLMServer(scripted("never"), api_key="right") as srv:
        with backend_for(api, srv) as b:  # sends "k" (anthropic) / "EMPTY" (openai)
            with pytest.raises(LLMAuthError) as ei:
                b.complete([{"role": "user", "content": "go"}])
    assert ei.value.status == 401 and len(srv.requests) == 1


@pytest.mark.parametrize("api", APIS)
def test_cache_hit_on_second_call_and_after_resume(api: str, tmp_path) -> None:
    with LoopbackLLMServer(scripted(GOOD)) as srv:
        msgs = [{"role": "user", "content": "judge it"}]
        with backend_for(api, srv, cache_dir=tmp_path) as b:
            first = b.complete(msgs, Verdict)
            second = b.complete(msgs, Verdict)
            assert b.usage.cached_calls == 1 and b.usage.calls == 2
        with backend_for(api, srv, cache_dir=tmp_path) as resumed:
            third = resumed.complete(msgs, Verdict)
            # a different parameter is a different request: the script is exhausted -> 400
            with pytest.raises(LLMRequestError):
                resumed.complete(msgs, Verdict, temperature=0.7)
    assert not first.cached and second.cached and third.cached
    assert second.parsed == first.parsed == third.parsed
    assert second.cost_usd == 0.0 and second.usage == first.usage
    assert len(srv.requests) == 2
    assert len(list(tmp_path.glob("??/*.json"))) == 1
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("api", APIS)
def test_usage_and_cost_accounting(api: str) -> None:
    reply = LoopbackReply("fine", input_tokens=1000, output_tokens=200)
    model = "loopback" if api == "openai" else "claude-sonnet-5-5"
    prices = {model: ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0)}
    with LoopbackLLMServer(scripted(reply, reply, reply)) as srv:
        with backend_for(api, srv, prices=prices) as b:
            before = b.usage
            results = b.complete_many(
                [CompletionRequest([{"role": "user", "content": f"q{i}"}]) for i in range(3)],
                max_workers=3,
            )
            delta = b.usage - before
    per_call = (1000 * 3.0 + 200 * 15.0) / 1e6
    assert all(r.cost_usd == pytest.approx(per_call) for r in results)
    assert delta.calls == 3 and delta.requests == 3
    assert delta.input_tokens == 3000 and delta.output_tokens == 600
    assert delta.cost_usd == pytest.approx(3 * per_call)


@pytest.mark.parametrize("api", APIS)
def test_concurrent_calls_overlap(api: str) -> None:
    n, delay = 8, 0.3

    def responder(req: LoopbackRequest) -> str:
        return f"answer to {req.last_user_text}"

    with LoopbackLLMServer(responder, delay_s=delay) as srv:
        with backend_for(api, srv) as b:
            reqs = [CompletionRequest([{"role": "user", "content": f"q{i}"}]) for i in range(n)]
            t0 = time.monotonic()
            results = b.complete_many(reqs, max_workers=n)
            elapsed = time.monotonic() - t0
        with backend_for(api, srv, max_concurrency=2) as narrow:
            t1 = time.monotonic()
            narrow.complete_many(reqs[:4], max_workers=4)
            narrow_elapsed = time.monotonic() - t1
    assert [r.text for r in results] == [f"answer to q{i}" for i in range(n)]
    assert elapsed < 3 * delay, (
        f"{n} calls took {elapsed:.2f}s (sequential would be {n * delay:.1f}s)"
    )
    assert narrow_elapsed >= 2 * delay * 0.95  # 4 calls through 2 slots: two waves


def test_complete_many_keeps_errors_in_place() -> None:
    def responder(req: LoopbackRequest) -> str | LoopbackError:
        return LoopbackError(400, "refused") if "bad" in req.last_user_text else "ok"

    with LoopbackLLMServer(responder) as srv:
        with backend_for("openai", srv) as b:
            out = b.complete_many(
                [CompletionRequest([{"role": "user", "content": t}]) for t in ("a", "bad", "c")]
            )
    assert out[0].text == "ok" and out[2].text == "ok"
    assert isinstance(out[1], LLMRequestError)


def test_openai_auto_falls_back_from_json_schema() -> None:
    def responder(req: LoopbackRequest) -> str | LoopbackError:
        if req.body.get("response_format", {}).get("type") == "json_schema":
            return LoopbackError(400, "response_format type json_schema is not supported")
        return GOOD

    with LoopbackLLMServer(responder) as srv:
        with backend_for("openai", srv) as b:
            c1 = b.complete([{"role": "user", "content": "one"}], Verdict)
            c2 = b.complete([{"role": "user", "content": "two"}], Verdict)
            assert b.structured_mode == "json_object_schema"
    assert c1.parsed == c2.parsed
    kinds = [r.body.get("response_format", {}).get("type") for r in srv.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert [("schema" in r.body["response_format"]) for r in srv.requests] == [False, True, True]


def test_async_variant() -> None:
    with LoopbackLLMServer(lambda req: req.last_user_text.upper(), delay_s=0.2) as srv:
        with backend_for("anthropic", srv) as b:

            async def main() -> list[str]:
                cs = await asyncio.gather(
                    *(b.acomplete([{"role": "user", "content": w}]) for w in ("a", "b", "c"))
                )
                return [c.text for c in cs]

            t0 = time.monotonic()
            assert asyncio.run(main()) == ["A", "B", "C"]
            assert time.monotonic() - t0 < 0.55
