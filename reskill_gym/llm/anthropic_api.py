"""Claude through the official ``anthropic`` SDK: the Messages API directly, or Bedrock.

Exports ``AnthropicBackend``, ``BedrockBackend`` and ``TOOL_NAME`` (the forced tool's name).

Structured output uses a forced tool call: the schema is the tool's ``input_schema`` and
``tool_choice`` names the tool, so the answer arrives as a JSON object on every Claude model
and on Bedrock alike (no assistant prefill, which newer models reject). If a server answers
with text instead, the text goes through the same parse-and-repair loop.

The SDK's own retries are disabled (``max_retries=0``); ``BaseBackend`` retries.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from typing import Any

from pydantic import BaseModel

from reskill_gym.llm.base import BaseBackend, RawAnswer
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.deadline import bound_client
from reskill_gym.llm.errors import LLMConfigError, LLMError, LLMServerError
from reskill_gym.llm.protocol import Message
from reskill_gym.llm.sdk_errors import translate_sdk_error
from reskill_gym.llm.structured import json_schema_of

__all__ = ["AnthropicBackend", "BedrockBackend", "TOOL_NAME"]

log = logging.getLogger(__name__)

#: Name of the tool whose input carries a structured answer.
TOOL_NAME = "respond"


def _import_sdk() -> Any:
    try:
        import anthropic
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise LLMConfigError(
            "the anthropic backends need the 'anthropic' package: pip install 'reskill-gym[anthropic]'"
        ) from e
    return anthropic


def to_anthropic_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """System text and alternating user/assistant turns (consecutive same-role turns merged)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    return system, turns


class _ClaudeBackend(BaseBackend):
    """Messages API call shared by the direct and the Bedrock client."""

    def __init__(self, config: LLMConfig, *, client: Any = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        self._sdk = _import_sdk()
        self._client = client if client is not None else self._make_client()
        # Recent SDKs (2.x) dropped sampling parameters from messages.create; send temperature
        # only where the installed SDK still accepts it.
        try:
            params = inspect.signature(self._client.messages.create).parameters
            self._sends_temperature = "temperature" in params
        except (TypeError, ValueError):
            self._sends_temperature = False

    def _make_client(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def _send(
        self,
        messages: list[Message],
        *,
        schema: type[BaseModel] | None,
        max_tokens: int,
        temperature: float,
    ) -> RawAnswer:
        system, turns = to_anthropic_messages(messages)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": turns,
        }
        if self._sends_temperature:
            kwargs["temperature"] = temperature
        if system:
            kwargs["system"] = system
        if schema is not None:
            doc = (schema.__doc__ or "").strip()
            kwargs["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": f"Give the answer as a {schema.__name__} object. {doc}".strip(),
                    "input_schema": json_schema_of(schema),
                }
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        try:
            msg = self._client.messages.create(**kwargs)
        except self._sdk.APIError as e:
            mapped = translate_sdk_error(e, self._sdk)
            if mapped is None:
                raise LLMError(f"anthropic SDK error: {e}") from e
            raise mapped from e
        text = ""
        tool_input = None
        for block in msg.content or []:
            btype = getattr(block, "type", None)
            if btype == "tool_use" and getattr(block, "name", None) == TOOL_NAME:
                tool_input = block.input
            elif btype == "text":
                text += block.text
        if tool_input is not None:
            text = json.dumps(tool_input, ensure_ascii=False)
        if msg.stop_reason is None and not text:
            raise LLMServerError("empty answer without stop_reason")
        usage = msg.usage
        return RawAnswer(
            text=text,
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            model=msg.model or self.model,
            stop_reason=msg.stop_reason,
        )


class AnthropicBackend(_ClaudeBackend):
    """Claude via ``anthropic.Anthropic`` (key from ``ANTHROPIC_API_KEY`` or ``api_key``).

    >>> cfg = LLMConfig(backend="anthropic", base_url="http://127.0.0.1:9")
    >>> AnthropicBackend(cfg, api_key="sk-test").model
    'claude-sonnet-5-5'
    """

    name = "anthropic"

    def __init__(self, config: LLMConfig, *, api_key: str | None = None, **kw: Any) -> None:
        env = config.api_key_env or "ANTHROPIC_API_KEY"
        self._api_key = api_key or os.environ.get(env)
        if not self._api_key and kw.get("client") is None:
            raise LLMConfigError(
                f"backend 'anthropic' needs an API key: set {env} (or pass api_key=...)"
            )
        super().__init__(config, **kw)

    def _make_client(self) -> Any:
        return self._sdk.Anthropic(
            api_key=self._api_key,
            base_url=self.config.base_url,
            timeout=self.config.timeout_s,
            max_retries=0,
            http_client=bound_client(self._sdk.DefaultHttpxClient()),
        )


class BedrockBackend(_ClaudeBackend):
    """Claude on AWS Bedrock via ``anthropic.AnthropicBedrock``.

    Credentials as the SDK resolves them (environment, profile, instance role; SigV4 signing
    needs ``botocore``), or explicit ``aws_access_key``/``aws_secret_key``, or a Bedrock API
    key (``api_key``, sent as a bearer token).

    >>> cfg = LLMConfig(backend="bedrock", model="us.anthropic.claude-haiku-4-5-20251001-v1:0",
    ...                 aws_region="us-east-1")
    >>> BedrockBackend(cfg, api_key="bedrock-key").name
    'bedrock'
    """

    name = "bedrock"

    def __init__(
        self,
        config: LLMConfig,
        *,
        aws_access_key: str | None = None,
        aws_secret_key: str | None = None,
        aws_session_token: str | None = None,
        aws_profile: str | None = None,
        api_key: str | None = None,
        **kw: Any,
    ) -> None:
        self._aws = {
            "api_key": api_key,
            "aws_access_key": aws_access_key,
            "aws_secret_key": aws_secret_key,
            "aws_session_token": aws_session_token,
            "aws_profile": aws_profile,
        }
        super().__init__(config, **kw)

    def _make_client(self) -> Any:
        kwargs = {k: v for k, v in self._aws.items() if v is not None}
        try:
            return self._sdk.AnthropicBedrock(
                aws_region=self.config.aws_region,
                base_url=self.config.base_url,
                timeout=self.config.timeout_s,
                max_retries=0,
                http_client=bound_client(self._sdk.DefaultHttpxClient()),
                **kwargs,
            )
        except ImportError as e:  # botocore missing
            raise LLMConfigError(
                f"backend 'bedrock' needs boto3/botocore: pip install 'anthropic[bedrock]' ({e})"
            ) from e
