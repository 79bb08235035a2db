"""Any OpenAI-compatible chat-completions server through the official ``openai`` SDK.

Exports ``OpenAIBackend``, ``ServerCapabilities``, ``SERVER_CAPABILITIES``, ``FORMAT_CHAIN``
and ``is_format_rejection``.

Works with vLLM, SGLang, llama.cpp's servers, Ollama, LM Studio and OpenAI itself: base URL +
model in config, API key optional (``"EMPTY"`` is sent when none is set, as local servers
expect). With a schema the schema is always stated in the system prompt, and JSON is asked for
through ``response_format``. Servers differ in what they accept, and they say "no" in
different ways: llama-cpp-python's server answers ``json_schema`` with HTTP 500 and a pydantic
report ("Input should be 'text' or 'json_object'"), others with 400 or 422. In ``auto`` mode a
rejection that names the response format moves the server one step down ``FORMAT_CHAIN``:

1. ``json_schema``        OpenAI's structured outputs (vLLM, SGLang, llama-server, Ollama)
2. ``json_object_schema`` ``{"type": "json_object", "schema": ...}``: llama-cpp-python's
   (and llama-server's) schema-constrained JSON grammar; the schema is ``grammar_schema``'s
   (structure only: length and pattern limits blow llama.cpp's grammars up)
3. ``json_object``        any JSON object (the schema only in the prompt)
4. ``none``               the instruction alone; the base class re-asks with the parse error

The step is taken at once (a deterministic rejection is never retried) and remembered per
(base URL, model) for the whole process in ``SERVER_CAPABILITIES``, so every backend instance
and thread talking to that server skips the formats it cannot produce. No probe request is
sent: the first structured call is the probe.

>>> is_format_rejection("Input should be 'text' or 'json_object'", status=500)
True
>>> is_format_rejection("model 'qwen' not found", status=404)
False
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any, Literal

from pydantic import BaseModel

from reskill_gym.llm.base import BaseBackend, RawAnswer, _clip
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.deadline import bound_client
from reskill_gym.llm.errors import (
    LLMAuthError,
    LLMConfigError,
    LLMError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
)
from reskill_gym.llm.protocol import Message
from reskill_gym.llm.sdk_errors import translate_sdk_error
from reskill_gym.llm.structured import grammar_schema, json_schema_of, schema_instruction

__all__ = [
    "OpenAIBackend",
    "ServerCapabilities",
    "SERVER_CAPABILITIES",
    "FORMAT_CHAIN",
    "is_format_rejection",
]

log = logging.getLogger(__name__)

StructuredMode = Literal["json_schema", "json_object_schema", "json_object", "none"]

#: Ways of asking for JSON, most to least constrained; ``auto`` walks down on rejection.
FORMAT_CHAIN: tuple[StructuredMode, ...] = (
    "json_schema",
    "json_object_schema",
    "json_object",
    "none",
)

# What servers say when they do not support a response format (OpenAI, vLLM, SGLang, llama.cpp,
# LM Studio, Ollama): the field's name, a format's name, or the machinery behind it.
_FORMAT_RE = re.compile(
    r"response[_ ]?format|json[_ ]schema|json[_ ]object|'text' or|guided[_ ]|grammar"
    r"|structured[_ ]output|xgrammar|outlines",
    re.IGNORECASE,
)


def is_format_rejection(message: str, *, status: int | None = None) -> bool:
    """True when a failed request's error text says the *response format* was the problem.

    Any status counts (servers use 400, 422 and 500 for it) except the ones that are never
    about the body: 401/403 (credentials), 404 (route or model), 408/429/529 (load).
    """
    if status in (401, 403, 404, 408, 429, 529):
        return False
    return _FORMAT_RE.search(message) is not None


class ServerCapabilities:
    """What each (base URL, model) accepted, learnt from its answers; thread-safe.

    >>> caps = ServerCapabilities()
    >>> key = ("http://127.0.0.1:8080/v1", "m")
    >>> caps.structured_mode(key)
    'json_schema'
    >>> caps.downgrade(key, "json_schema"), caps.downgrade(key, "json_schema")
    (('json_object_schema', True), ('json_object_schema', False))
    >>> caps.snapshot()
    {'http://127.0.0.1:8080/v1#m': {'structured_mode': 'json_object_schema'}}
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modes: dict[tuple[str, str], StructuredMode] = {}
        self._token_params: dict[tuple[str, str], str] = {}

    @staticmethod
    def key(base_url: str, model: str) -> tuple[str, str]:
        """The registry key of a server: base URL without trailing slash, and the model id."""
        return base_url.rstrip("/"), model

    def structured_mode(self, key: tuple[str, str]) -> StructuredMode:
        """The most constrained format not yet rejected by this server."""
        with self._lock:
            return self._modes.get(key, FORMAT_CHAIN[0])

    def downgrade(
        self, key: tuple[str, str], rejected: StructuredMode
    ) -> tuple[StructuredMode, bool]:
        """Record that ``rejected`` failed: ``(mode to use now, whether this call moved it)``.

        Compare-and-set: when several threads see the same rejection, the server moves down
        one step, not one step per thread (and only the thread that moved it says so).
        """
        with self._lock:
            current = self._modes.get(key, FORMAT_CHAIN[0])
            if FORMAT_CHAIN.index(current) > FORMAT_CHAIN.index(rejected):
                return current, False
            nxt = FORMAT_CHAIN[min(FORMAT_CHAIN.index(rejected) + 1, len(FORMAT_CHAIN) - 1)]
            self._modes[key] = nxt
            return nxt, nxt != current

    def max_tokens_param(self, key: tuple[str, str]) -> str:
        """``max_tokens``, or ``max_completion_tokens`` once the server asked for it."""
        with self._lock:
            return self._token_params.get(key, "max_tokens")

    def set_max_tokens_param(self, key: tuple[str, str], name: str) -> None:
        with self._lock:
            self._token_params[key] = name

    def snapshot(self) -> dict[str, dict[str, str]]:
        """What is known, by ``<base_url>#<model>`` (for logs and reports)."""
        with self._lock:
            out: dict[str, dict[str, str]] = {}
            for (url, model), mode in self._modes.items():
                out.setdefault(f"{url}#{model}", {})["structured_mode"] = mode
            for (url, model), name in self._token_params.items():
                out.setdefault(f"{url}#{model}", {})["max_tokens_param"] = name
            return out

    def forget(self, base_url: str) -> None:
        """Forget what a server (every model behind ``base_url``) accepted: it went away."""
        url = base_url.rstrip("/")
        with self._lock:
            for table in (self._modes, self._token_params):
                for key in [k for k in table if k[0] == url]:
                    del table[key]

    def clear(self) -> None:
        """Forget everything (a server was upgraded or restarted with other options)."""
        with self._lock:
            self._modes.clear()
            self._token_params.clear()


#: The process-wide registry every ``OpenAIBackend`` in ``auto`` mode consults.
SERVER_CAPABILITIES = ServerCapabilities()


class OpenAIBackend(BaseBackend):
    """Chat completions on ``config.base_url`` with ``config.model``.

    >>> cfg = LLMConfig(backend="openai", base_url="http://127.0.0.1:8000/v1", model="qwen")
    >>> b = OpenAIBackend(cfg)
    >>> b.model, b.structured_mode
    ('qwen', 'json_schema')
    """

    name = "openai"

    def __init__(
        self,
        config: LLMConfig,
        *,
        api_key: str | None = None,
        client: Any = None,
        capabilities: ServerCapabilities | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(config, **kw)
        try:
            import openai
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise LLMConfigError(
                "backend 'openai' needs the 'openai' package: pip install 'reskill-gym[openai]'"
            ) from e
        self._sdk = openai
        env = config.api_key_env or "OPENAI_API_KEY"
        key = api_key or os.environ.get(env) or "EMPTY"
        self._client = client or openai.OpenAI(
            api_key=key,
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=0,
            http_client=bound_client(openai.DefaultHttpxClient()),
        )
        self.capabilities = capabilities if capabilities is not None else SERVER_CAPABILITIES
        assert config.base_url is not None  # LLMConfig requires it for openai
        self._server = ServerCapabilities.key(config.base_url, self.model)

    @property
    def structured_mode(self) -> StructuredMode:
        """How JSON is asked for now: the configured mode, or in ``auto`` what the server took."""
        mode = self.config.structured_output
        if mode == "auto":
            return self.capabilities.structured_mode(self._server)
        return mode

    def close(self) -> None:
        self._client.close()

    def _request_params(self) -> dict[str, Any]:
        return {"structured_output": self.config.structured_output}

    def _send(
        self,
        messages: list[Message],
        *,
        schema: type[BaseModel] | None,
        max_tokens: int,
        temperature: float,
    ) -> RawAnswer:
        while True:
            mode: StructuredMode = self.structured_mode if schema is not None else "none"
            try:
                return self._send_once(messages, schema, mode, max_tokens, temperature)
            except (LLMRequestError, LLMServerError) as e:
                if isinstance(e, (LLMAuthError, LLMRateLimitError)):
                    raise
                text = e.message
                param = self.capabilities.max_tokens_param(self._server)
                if param == "max_tokens" and "max_completion_tokens" in text:
                    log.warning(
                        "llm openai: %s#%s wants max_completion_tokens; using it from now on",
                        *self._server,
                    )
                    self.capabilities.set_max_tokens_param(self._server, "max_completion_tokens")
                    self._add(requests=1)  # the refused request was sent all the same
                    continue
                if mode == "none" or not is_format_rejection(text, status=e.status):
                    raise
                if self.config.structured_output != "auto":
                    raise LLMRequestError(
                        f"server rejected response_format {mode} (structured_output={mode}; "
                        f"use 'auto' to fall back): {text}",
                        status=e.status,
                    ) from e
                self._add(requests=1)
                now, moved = self.capabilities.downgrade(self._server, mode)
                log.log(
                    logging.WARNING if moved else logging.DEBUG,
                    "llm openai: %s#%s rejects response_format %s (status %s: %s); "
                    "using %s for this server from now on",
                    *self._server,
                    mode,
                    e.status,
                    _clip(text, 160),
                    now,
                )

    def _send_once(
        self,
        messages: list[Message],
        schema: type[BaseModel] | None,
        mode: StructuredMode,
        max_tokens: int,
        temperature: float,
    ) -> RawAnswer:
        wire = [{"role": m.role, "content": m.content} for m in messages]
        if schema is not None:
            # One leading system message: some chat templates reject a second one.
            instruction = schema_instruction(schema)
            if wire and wire[0]["role"] == "system":
                wire[0] = {"role": "system", "content": wire[0]["content"] + "\n\n" + instruction}
            else:
                wire.insert(0, {"role": "system", "content": instruction})
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": wire,
            "temperature": temperature,
            self.capabilities.max_tokens_param(self._server): max_tokens,
        }
        if schema is not None and mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": json_schema_of(schema),
                    "strict": False,
                },
            }
        elif schema is not None and mode == "json_object_schema":
            kwargs["response_format"] = {
                "type": "json_object",
                "schema": grammar_schema(json_schema_of(schema)),
            }
        elif schema is not None and mode == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        try:
            resp = self._client.chat.completions.create(**kwargs)
        except self._sdk.APIError as e:
            mapped = translate_sdk_error(e, self._sdk)
            if mapped is None:
                raise LLMError(f"openai SDK error: {e}") from e
            raise mapped from e
        if not resp.choices:
            raise LLMServerError("response has no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return RawAnswer(
            text=choice.message.content or "",
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            model=resp.model or self.model,
            stop_reason=choice.finish_reason,
        )
