"""Backend specs, config validation, message validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reskill_gym.llm import LLMConfig, LLMConfigError, make_backend, parse_spec


@pytest.mark.parametrize(
    ("spec", "backend", "model", "base_url"),
    [
        ("anthropic", "anthropic", None, None),
        ("anthropic:claude-haiku-4-5", "anthropic", "claude-haiku-4-5", None),
        (
            "bedrock:us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            None,
        ),
        (
            "openai:http://localhost:8000/v1#Qwen/Qwen3-4B",
            "openai",
            "Qwen/Qwen3-4B",
            "http://localhost:8000/v1",
        ),
        ("openai:https://h.example/v1#a#b", "openai", "b", "https://h.example/v1#a"),
        ("local", "local", None, None),
        ("local:default", "local", "default", None),
        ("local:/models/qwen", "local", "/models/qwen", None),
        (" OpenAI:http://127.0.0.1:1/v1#m ", "openai", "m", "http://127.0.0.1:1/v1"),
    ],
)
def test_valid_specs(spec: str, backend: str, model: str | None, base_url: str | None) -> None:
    cfg = parse_spec(spec)
    assert (cfg.backend, cfg.model, cfg.base_url) == (backend, model, base_url)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty LLM backend spec"),
        ("antropic:claude", "did you mean 'anthropic'"),
        ("opneai:http://x/v1#m", "did you mean 'openai'"),
        ("vllm:http://x/v1#m", "did you mean 'openai'"),
        ("claude:sonnet", "did you mean 'anthropic'"),
        ("rules", "offline skill creator"),
        ("openai:http://localhost:8000/v1", "needs '<base_url>#<model>'"),
        ("openai:localhost:8000/v1#m", "must start with http"),
        ("openai:http://localhost:8000/v1#", "model after '#' is empty"),
        ("anthropic:https://api.anthropic.com", "takes a model id, not a URL"),
        ("bedrock", "model is required for backend 'bedrock'"),
        ("%%%", "malformed LLM backend spec"),
    ],
)
def test_spec_errors_are_clear(spec: str, message: str) -> None:
    with pytest.raises(LLMConfigError, match=message.replace("(", r"\(")) as ei:
        parse_spec(spec)
    assert isinstance(ei.value, ValueError)


def test_overrides_are_validated_with_field_names() -> None:
    with pytest.raises(LLMConfigError, match="timeout_s"):
        parse_spec("local", timeout_s=-1)
    with pytest.raises(LLMConfigError, match="max_retrys"):
        make_backend("local", max_retrys=3)
    with pytest.raises(ValidationError, match="model is required"):
        LLMConfig(backend="openai", base_url="http://x/v1")  # type: ignore[call-arg]


def test_anthropic_without_key_fails_at_construction(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="ANTHROPIC_API_KEY"):
        make_backend("anthropic")
    monkeypatch.setenv("MY_KEY", "sk-x")
    b = make_backend("anthropic:claude-haiku-4-5", api_key_env="MY_KEY")
    assert b.model == "claude-haiku-4-5"
    assert make_backend("anthropic", api_key="sk-y").model == "claude-sonnet-5-5"


def test_bad_messages_name_the_field() -> None:
    b = make_backend("openai:http://127.0.0.1:9/v1#m")
    with pytest.raises(LLMConfigError, match=r"messages\[0\]\.role"):
        b.complete([{"role": "robot", "content": "hi"}])
    with pytest.raises(LLMConfigError, match=r"messages\[1\]: expected a Message"):
        b.complete([{"role": "user", "content": "hi"}, "hello"])  # type: ignore[list-item]
    with pytest.raises(LLMConfigError, match="at least one message"):
        b.complete([])
    with pytest.raises(LLMConfigError, match="at least one user message"):
        b.complete([{"role": "system", "content": "x"}])
    with pytest.raises(TypeError, match="pydantic BaseModel subclass"):
        b.complete([{"role": "user", "content": "hi"}], dict)  # type: ignore[arg-type]
    assert b.usage.requests == 0


def test_price_lookup() -> None:
    cfg = LLMConfig(backend="anthropic")
    assert cfg.price_for("claude-opus-4-1-20250805").input_per_mtok == 15.0
    assert cfg.price_for("claude-opus-4-5").input_per_mtok == 5.0  # longest key wins
    assert cfg.price_for("us.anthropic.claude-haiku-4-5-20251001-v1:0").output_per_mtok == 5.0
    assert cfg.price_for("my-finetune").cost(10**6, 10**6) == 0.0
