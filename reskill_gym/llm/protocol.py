"""The one small contract every LLM backend meets, and the records it returns.

Exports ``Message``, ``Usage``, ``Completion``, ``CompletionRequest``, ``UsageTotals``,
``LLMBackend`` (a ``typing.Protocol``) and ``normalize_messages``.

A caller (skill creator, evaluator) only ever sees ``complete(messages, schema) ->
Completion``; which server answered, how often it was retried and whether the answer came
from the on-disk cache is recorded on the ``Completion`` and in the backend's ``usage``.

>>> msgs = normalize_messages([{"role": "user", "content": "hi"}])
>>> msgs[0]
Message(role='user', content='hi')
>>> c = Completion(text="hello", model="m", usage=Usage(input_tokens=3, output_tokens=1))
>>> c.usage.total_tokens, c.cached, c.parsed is None
(4, False, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reskill_gym.llm.errors import LLMConfigError, LLMError

__all__ = [
    "Message",
    "Usage",
    "Completion",
    "CompletionRequest",
    "UsageTotals",
    "LLMBackend",
    "normalize_messages",
]

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message. ``system`` messages are mapped to each API's own system slot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role = Field(description="Who speaks: system, user or assistant.")
    content: str = Field(description="Plain text content.")


class Usage(BaseModel):
    """Tokens of one call (summed over the retries that reached the model)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class Completion(BaseModel):
    """The answer of ``LLMBackend.complete``.

    ``cost_usd`` is what *this* call cost: 0.0 for a cache hit (the tokens in ``usage`` were
    paid by the run that filled the cache). ``attempts`` counts model answers requested,
    including schema retries; transport retries are counted in the backend's usage.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str = Field(
        description="Raw text of the final answer (JSON text when a schema was given)."
    )
    parsed: Any = Field(None, description="Instance of the requested schema, else None.")
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str = ""
    backend: str = ""
    cached: bool = False
    latency_s: float = 0.0
    attempts: int = 1
    stop_reason: str | None = None


@dataclass(frozen=True)
class CompletionRequest:
    """One request for ``complete_many``; same meaning as ``complete``'s arguments."""

    messages: Sequence[Message | Mapping[str, Any]]
    schema: type[BaseModel] | None = None
    max_tokens: int | None = None
    temperature: float | None = None


class UsageTotals(BaseModel):
    """Cumulative accounting of one backend instance (a snapshot; subtract two for a pass)."""

    model_config = ConfigDict(frozen=True)

    calls: int = Field(0, description="complete() calls answered (including cache hits).")
    cached_calls: int = Field(0, description="Calls answered from the on-disk cache.")
    failed_calls: int = Field(0, description="complete() calls that raised an LLMError.")
    requests: int = Field(0, description="HTTP requests / generations actually sent.")
    retries: int = Field(
        0, description="Transport retries after 429/5xx/timeout/connection errors."
    )
    output_retries: int = Field(0, description="Re-asks after unparsable or schema-invalid output.")
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def __sub__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            **{k: getattr(self, k) - getattr(other, k) for k in type(self).model_fields}
        )


def normalize_messages(messages: Iterable[Message | Mapping[str, Any]]) -> list[Message]:
    """Accept ``Message`` objects or ``{"role", "content"}`` dicts; reject anything else clearly."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, Message):
            out.append(m)
            continue
        if not isinstance(m, Mapping):
            raise LLMConfigError(
                f"messages[{i}]: expected a Message or a dict, got {type(m).__name__}"
            )
        try:
            out.append(Message.model_validate(dict(m)))
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise LLMConfigError(f"messages[{i}].{field}: {first['msg']}") from None
    if not out:
        raise LLMConfigError("messages: at least one message is required")
    if all(m.role == "system" for m in out):
        raise LLMConfigError("messages: need at least one user message besides system messages")
    return out


@runtime_checkable
class LLMBackend(Protocol):
    """What the creator and the evaluator need from a language model."""

    name: str
    model: str

    def complete(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        schema: type[BaseModel] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion: ...

    def complete_many(
        self,
        requests: Sequence[CompletionRequest],
        max_workers: int | None = None,
    ) -> list[Completion | LLMError]: ...

    @property
    def usage(self) -> UsageTotals: ...
