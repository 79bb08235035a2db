"""LLM backends behind one small protocol, for the skill creator and for evaluation agents.

Exports:
- protocol: ``LLMBackend``, ``Message``, ``Completion``, ``CompletionRequest``, ``Usage``,
  ``UsageTotals``
- config and factories: ``LLMConfig``, ``ModelPrice``, ``make_backend``, ``backend_from_config``,
  ``parse_spec``
- backends: ``BaseBackend``, ``AnthropicBackend``, ``BedrockBackend``, ``OpenAIBackend``,
  ``LocalBackend`` (imported lazily: ``import reskill_gym.llm`` pulls in no SDK, no torch)
- errors: ``LLMError``, ``LLMConfigError``, ``LLMRequestError``, ``LLMAuthError``,
  ``LLMTransientError``, ``LLMRateLimitError``, ``LLMServerError``, ``LLMTimeoutError``,
  ``LLMConnectionError``, ``LLMOutputError``
- ``ResponseCache``; the loopback test server lives in ``reskill_gym.testing.loopback``.
- structured output on OpenAI-compatible servers: ``ServerCapabilities``,
  ``SERVER_CAPABILITIES`` (what each base URL + model accepted, learnt from its answers)
- ``set_http_logging``: per-request HTTP log lines on (verbose) or off (default) for an app.

>>> import reskill_gym.llm as llm
>>> b = llm.make_backend("openai:http://127.0.0.1:8000/v1#qwen", max_retries=2)
>>> type(b).__name__, b.model, b.config.max_retries
('OpenAIBackend', 'qwen', 2)
"""

from __future__ import annotations

import importlib
from typing import Any

from reskill_gym.llm.base import BaseBackend
from reskill_gym.llm.cache import ResponseCache
from reskill_gym.llm.config import LLMConfig, ModelPrice
from reskill_gym.llm.errors import (
    LLMAuthError,
    LLMConfigError,
    LLMConnectionError,
    LLMError,
    LLMOutputError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    LLMTransientError,
)
from reskill_gym.llm.httplog import set_http_logging
from reskill_gym.llm.protocol import (
    Completion,
    CompletionRequest,
    LLMBackend,
    Message,
    Usage,
    UsageTotals,
)
from reskill_gym.llm.spec import backend_from_config, make_backend, parse_spec

__all__ = [
    "LLMBackend",
    "Message",
    "Completion",
    "CompletionRequest",
    "Usage",
    "UsageTotals",
    "LLMConfig",
    "ModelPrice",
    "make_backend",
    "backend_from_config",
    "parse_spec",
    "BaseBackend",
    "AnthropicBackend",
    "BedrockBackend",
    "OpenAIBackend",
    "LocalBackend",
    "LLMError",
    "LLMConfigError",
    "LLMRequestError",
    "LLMAuthError",
    "LLMTransientError",
    "LLMRateLimitError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMConnectionError",
    "LLMOutputError",
    "ResponseCache",
    "ServerCapabilities",
    "SERVER_CAPABILITIES",
    "set_http_logging",
]

_LAZY = {
    "AnthropicBackend": "reskill_gym.llm.anthropic_api",
    "BedrockBackend": "reskill_gym.llm.anthropic_api",
    "OpenAIBackend": "reskill_gym.llm.openai_api",
    "LocalBackend": "reskill_gym.llm.local",
    "ServerCapabilities": "reskill_gym.llm.openai_api",
    "SERVER_CAPABILITIES": "reskill_gym.llm.openai_api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reskill_gym.llm' has no attribute {name!r}")
