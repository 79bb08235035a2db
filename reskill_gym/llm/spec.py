"""Backend specs (``anthropic:<model>``, ``openai:<base_url>#<model>``, ...) and factories.

Exports ``make_backend``, ``backend_from_config``, ``parse_spec`` and ``BACKEND_KINDS``.

One string names a backend on the command line (``--backend``, ``--agent``) and in configs:

- ``anthropic`` or ``anthropic:<model>``   Claude via the Messages API (``ANTHROPIC_API_KEY``)
- ``bedrock`` or ``bedrock:<model>``       Claude on AWS Bedrock (``AnthropicBedrock``)
- ``openai:<base_url>#<model>``            any OpenAI-compatible chat-completions server
- ``local`` or ``local:<alias|dir|file.gguf>[#plain]``  a transformers model on this machine
  (aliases: ``default``/``smollm2``, ``gemma3-270m``, ``qwen2.5-coder-1.5b``; ``#plain`` for a
  model without a chat template)

>>> parse_spec("openai:http://localhost:8000/v1#Qwen/Qwen3-4B").model_dump(exclude_defaults=True)
{'backend': 'openai', 'model': 'Qwen/Qwen3-4B', 'base_url': 'http://localhost:8000/v1'}
>>> parse_spec("antropic:claude-sonnet-4-5")
Traceback (most recent call last):
...
reskill_gym.llm.errors.LLMConfigError: unknown LLM backend 'antropic' in spec 'antropic:claude-sonnet-4-5'; did you mean 'anthropic'? Known: anthropic:<model>, bedrock:<model>, openai:<base_url>#<model>, local:<alias|dir|file.gguf>[#plain]
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import ValidationError

from reskill_gym.llm.base import BaseBackend
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.errors import LLMConfigError

__all__ = ["make_backend", "backend_from_config", "parse_spec", "BACKEND_KINDS"]

BACKEND_KINDS: dict[str, str] = {
    "anthropic": "anthropic:<model>",
    "bedrock": "bedrock:<model>",
    "openai": "openai:<base_url>#<model>",
    "local": "local:<alias|dir|file.gguf>[#plain]",
}
_KNOWN = ", ".join(BACKEND_KINDS.values())
_SPEC_RE = re.compile(r"^(?P<kind>[A-Za-z][A-Za-z0-9_-]*)(?::(?P<rest>.*))?$", re.DOTALL)
_HINTS = {
    "claude": "anthropic",
    "vllm": "openai",
    "sglang": "openai",
    "ollama": "openai",
    "llamacpp": "openai",
    "hf": "local",
    "transformers": "local",
    "smollm": "local",
    "aws": "bedrock",
}


def _config_error(e: ValidationError, spec: str) -> LLMConfigError:
    first = e.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "config"
    return LLMConfigError(f"{field}: {first['msg']} (spec {spec!r})")


def parse_spec(spec: str, **overrides: Any) -> LLMConfig:
    """The ``LLMConfig`` a spec denotes; ``overrides`` set other config fields."""
    if not isinstance(spec, str) or not spec.strip():
        raise LLMConfigError(f"empty LLM backend spec; expected one of: {_KNOWN}")
    spec = spec.strip()
    m = _SPEC_RE.match(spec)
    if m is None:
        raise LLMConfigError(f"malformed LLM backend spec {spec!r}; expected one of: {_KNOWN}")
    kind, rest = m.group("kind").lower(), (m.group("rest") or "").strip()
    if kind not in BACKEND_KINDS:
        guess = _HINTS.get(kind) or next(
            iter(difflib.get_close_matches(kind, BACKEND_KINDS, n=1)), None
        )
        hint = f"; did you mean {guess!r}?" if guess else ";"
        if kind == "rules":
            hint = "; 'rules' is the offline skill creator (no LLM), chosen in the creator config, not here;"
        raise LLMConfigError(f"unknown LLM backend {kind!r} in spec {spec!r}{hint} Known: {_KNOWN}")
    fields: dict[str, Any] = {"backend": kind}
    if kind == "openai":
        if "#" not in rest:
            raise LLMConfigError(
                f"spec {spec!r}: openai needs '<base_url>#<model>', e.g. "
                "openai:http://localhost:8000/v1#Qwen/Qwen3-4B-Instruct-2507"
            )
        base_url, _, model = rest.rpartition("#")
        if not base_url.startswith(("http://", "https://")):
            raise LLMConfigError(
                f"spec {spec!r}: base_url {base_url!r} must start with http:// or https://"
            )
        if not model:
            raise LLMConfigError(f"spec {spec!r}: model after '#' is empty")
        fields.update(base_url=base_url, model=model)
    elif rest:
        if kind in ("anthropic", "bedrock") and rest.startswith(("http://", "https://")):
            raise LLMConfigError(
                f"spec {spec!r}: {kind} takes a model id, not a URL; pass base_url=... separately"
            )
        fields["model"] = rest
    fields.update(overrides)
    try:
        return LLMConfig(**fields)
    except ValidationError as e:
        raise _config_error(e, spec) from None


def backend_from_config(config: LLMConfig, **kw: Any) -> BaseBackend:
    """Build the backend ``config.backend`` names; ``kw`` go to its constructor (keys, clients)."""
    if config.backend == "anthropic":
        from reskill_gym.llm.anthropic_api import AnthropicBackend

        return AnthropicBackend(config, **kw)
    if config.backend == "bedrock":
        from reskill_gym.llm.anthropic_api import BedrockBackend

        return BedrockBackend(config, **kw)
    if config.backend == "openai":
        from reskill_gym.llm.openai_api import OpenAIBackend

        return OpenAIBackend(config, **kw)
    if config.backend == "local":
        from reskill_gym.llm.local import LocalBackend

        return LocalBackend(config, **kw)
    raise LLMConfigError(f"unknown backend {config.backend!r}")  # pragma: no cover - Literal


def make_backend(spec: str, **kw: Any) -> BaseBackend:
    """Build a backend from a spec string.

    Keyword arguments that are ``LLMConfig`` fields (``timeout_s``, ``cache_dir``,
    ``base_url``...) go into the config; the rest (``api_key``, ``client``, ``sleep``...) go to
    the backend's constructor.
    """
    cfg_fields = {k: v for k, v in kw.items() if k in LLMConfig.model_fields}
    ctor = {k: v for k, v in kw.items() if k not in LLMConfig.model_fields}
    config = parse_spec(spec, **cfg_fields)
    try:
        return backend_from_config(config, **ctor)
    except TypeError as e:
        raise LLMConfigError(f"make_backend({spec!r}): {e}") from None
