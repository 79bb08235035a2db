"""Total deadlines: a server that drips or stays silent cannot outlast the timeout (real
SDKs against the loopback server)."""

from __future__ import annotations

import time

import pytest

from reskill_gym.llm import LLMTimeoutError, make_backend
from reskill_gym.llm.config import LLMConfig
from reskill_gym.testing.loopback import LoopbackLLMServer, LoopbackReply, scripted

APIS = ["openai", "anthropic", "bedrock"]


def _backend(api: str, srv: LoopbackLLMServer, **cfg):
    opts = {"max_retries": 0, "backoff_base_s": 0.01, "backoff_max_s": 0.05, **cfg}
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


@pytest.mark.parametrize("api", APIS)
def test_slow_drip_is_cut_at_the_request_deadline(api: str) -> None:
    # every byte arrives well inside a per-read timeout; the whole answer takes ~20 s
    with LoopbackLLMServer(scripted(LoopbackReply("x" * 200, drip_s=0.1))) as srv:
        llm = _backend(api, srv, timeout_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            llm.complete([{"role": "user", "content": "hi"}])
        assert time.monotonic() - t0 < 2.5
        llm.close()


def test_silent_server_with_retries_ends_at_the_call_deadline() -> None:
    with LoopbackLLMServer(scripted(*[LoopbackReply("late", delay_s=30)] * 5)) as srv:
        llm = _backend("openai", srv, timeout_s=1.0, max_retries=4, call_timeout_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(LLMTimeoutError, match="spent|deadline|timed out"):
            llm.complete([{"role": "user", "content": "hi"}])
        assert time.monotonic() - t0 < 2.5
        assert len(srv.requests) <= 2  # no retry started past the deadline
        llm.close()


def test_fast_answers_are_untouched_and_huge_ones_clipped() -> None:
    with LoopbackLLMServer(scripted("fine", "y" * 5000)) as srv:
        llm = _backend("openai", srv, timeout_s=5.0, max_answer_chars=1000)
        assert llm.complete([{"role": "user", "content": "a"}]).text == "fine"
        text = llm.complete([{"role": "user", "content": "b"}]).text
        assert len(text) == 1000 and text.endswith("[clipped 4024 chars]")
        llm.close()


@pytest.mark.parametrize(
    "field, value",
    [("timeout_s", float("inf")), ("temperature", float("inf")), ("timeout_s", float("nan"))],
)
def test_non_finite_numbers_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        LLMConfig(backend="local", **{field: value})
