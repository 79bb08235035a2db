"""Any OpenAI-compatible chat-completions server through the official ``openai`` SDK.

Exports ``OpenAIBackend``.

Works with vLLM, SGLang, llama.cpp's server, Ollama, LM Studio and OpenAI itself: base URL +
model in config, API key optional (``"EMPTY"`` is sent when none is set, as local servers
expect). With a schema the schema is always stated in the system prompt, and JSON is asked
for through ``response_format``: ``json_schema`` first; if the server rejects that, ``auto``
mode falls back to ``json_object`` and then to the instruction alone, and remembers it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pydantic import BaseModel

from reskill_gym.llm.base import BaseBackend, RawAnswer
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.errors import LLMConfigError, LLMError, LLMRequestError, LLMServerError
from reskill_gym.llm.protocol import Message
from reskill_gym.llm.sdk_errors import translate_sdk_error
from reskill_gym.llm.structured import json_schema_of, schema_instruction

__all__ = ["OpenAIBackend"]

log = logging.getLogger(__name__)

_FALLBACK = {"json_schema": "json_object", "json_object": "none"}
_FORMAT_WORDS = ("response_format", "json", "schema", "grammar", "guided", "structured")


class OpenAIBackend(BaseBackend):
    """Chat completions on ``config.base_url`` with ``config.model``.

    >>> cfg = LLMConfig(backend="openai", base_url="http://127.0.0.1:8000/v1", model="qwen")
    >>> b = OpenAIBackend(cfg)
    >>> b.model, b.structured_mode
    ('qwen', 'json_schema')
    """

    name = "openai"

    def __init__(
        self, config: LLMConfig, *, api_key: str | None = None, client: Any = None, **kw: Any
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
            api_key=key, base_url=config.base_url, timeout=config.timeout_s, max_retries=0
        )
        mode = config.structured_output
        self.structured_mode: str = "json_schema" if mode == "auto" else mode
        self._max_tokens_param = "max_tokens"

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
            mode = self.structured_mode if schema is not None else "none"
            try:
                return self._send_once(messages, schema, mode, max_tokens, temperature)
            except LLMRequestError as e:
                text = e.message.lower()
                if self._max_tokens_param == "max_tokens" and "max_completion_tokens" in text:
                    log.warning("llm openai: server wants max_completion_tokens; switching")
                    self._max_tokens_param = "max_completion_tokens"
                    continue
                if (
                    schema is not None
                    and self.config.structured_output == "auto"
                    and mode in _FALLBACK
                    and any(w in text for w in _FORMAT_WORDS)
                ):
                    self.structured_mode = _FALLBACK[mode]
                    log.warning(
                        "llm openai: server rejected response_format %s (%s); using %s from now on",
                        mode,
                        e.message,
                        self.structured_mode,
                    )
                    continue
                raise

    def _send_once(
        self,
        messages: list[Message],
        schema: type[BaseModel] | None,
        mode: str,
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
            self._max_tokens_param: max_tokens,
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
