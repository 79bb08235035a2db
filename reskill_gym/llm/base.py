"""Shared machinery of every backend: cache, schema retries, transport retries, accounting.

Exports ``BaseBackend`` and ``RawAnswer``.

A concrete backend implements only ``_send`` (one request, SDK errors mapped to the typed
errors of ``reskill_gym.llm.errors``). ``complete`` then adds, in this order: the on-disk
cache, the schema loop (parse, feed the validation error back, at most
``max_output_retries`` re-asks, then ``LLMOutputError`` with the raw text), the transport
retry loop (backoff + jitter, Retry-After honoured), a semaphore bounding in-flight requests,
and thread-safe usage/cost accounting.

Logging stays quiet at INFO: one line when a call starts retrying (transport or re-ask), the
further retries at DEBUG, and one WARNING per call that finally fails.

A new backend is a ``_send`` away (this one echoes; the real ones call an SDK):

>>> class Echo(BaseBackend):
...     name = "echo"
...     def _send(self, messages, *, schema, max_tokens, temperature):
...         return RawAnswer(text=messages[-1].content, input_tokens=2, output_tokens=1)
>>> echo = Echo(LLMConfig(backend="local"))
>>> echo.complete([{"role": "user", "content": '{"n": 1}'}]).text
'{"n": 1}'
>>> echo.usage.requests, echo.usage.input_tokens
(1, 2)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from pydantic import BaseModel

from reskill_gym.llm.cache import ResponseCache, cache_key
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.deadline import deadline, remaining
from reskill_gym.llm.errors import (
    LLMConnectionError,
    LLMError,
    LLMOutputError,
    LLMTimeoutError,
    LLMTransientError,
)
from reskill_gym.llm.protocol import (
    Completion,
    CompletionRequest,
    Message,
    Usage,
    UsageTotals,
    normalize_messages,
)
from reskill_gym.llm.retry import RetryPolicy
from reskill_gym.llm.structured import json_schema_of, parse_output, repair_message
from reskill_gym.safe_text import clip_text

__all__ = ["BaseBackend", "RawAnswer"]

log = logging.getLogger(__name__)

_CACHE_FORMAT = 1


@dataclass(frozen=True)
class RawAnswer:
    """What one request to the model returned."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    stop_reason: str | None = None


class BaseBackend(ABC):
    """Base class of the concrete backends; see the module docstring for what it adds."""

    name: ClassVar[str] = "base"

    def __init__(
        self,
        config: LLMConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.model: str = config.resolved_model
        self.retry_policy = RetryPolicy(
            max_retries=config.max_retries,
            base_s=config.backoff_base_s,
            max_s=config.backoff_max_s,
            max_retry_after_s=config.max_retry_after_s,
            seed=seed,
            sleep=sleep,
        )
        self.cache = ResponseCache(config.cache_dir) if config.cache_dir is not None else None
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._lock = threading.Lock()
        self._totals: dict[str, float] = dict.fromkeys(UsageTotals.model_fields, 0)
        self._unpriced_warned: set[str] = set()

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def _send(
        self,
        messages: list[Message],
        *,
        schema: type[BaseModel] | None,
        max_tokens: int,
        temperature: float,
    ) -> RawAnswer:
        """Send one request. Raise ``LLMTransientError`` subclasses for retryable failures,
        ``LLMRequestError`` for the rest; never retry here."""

    def _request_params(self) -> dict[str, Any]:
        """Backend settings that change answers (go into the cache key)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends have nothing to free
        """Release network clients or models (idempotent)."""

    # ------------------------------------------------------------------ public API
    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    def __enter__(self) -> BaseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def usage(self) -> UsageTotals:
        """A snapshot of this instance's cumulative accounting."""
        with self._lock:
            return UsageTotals(**self._totals)

    def complete(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        schema: type[BaseModel] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """Ask the model; with ``schema`` the answer is parsed into it (``Completion.parsed``).

        Raises an ``LLMError`` subclass on failure: ``LLMOutputError`` (with ``raw_text``) when
        the output never fit the schema, ``LLMTransientError`` subclasses once retries are spent,
        ``LLMRequestError``/``LLMAuthError`` at once for requests a retry cannot fix.
        """
        msgs = normalize_messages(messages)
        schema_json = json_schema_of(schema) if schema is not None else None
        mt = int(max_tokens if max_tokens is not None else self.config.max_tokens)
        temp = float(temperature if temperature is not None else self.config.temperature)
        t0 = time.monotonic()
        key = None
        if self.cache is not None:
            key = cache_key(
                {
                    "format": _CACHE_FORMAT,
                    "backend": self.name,
                    "model": self.model,
                    "messages": [[m.role, m.content] for m in msgs],
                    "schema": schema_json,
                    "schema_name": schema.__name__ if schema is not None else None,
                    "max_tokens": mt,
                    "temperature": temp,
                    "params": self._request_params(),
                }
            )
            hit = self._from_cache(key, schema, t0)
            if hit is not None:
                return hit
        try:
            with deadline(self.config.call_timeout_s):
                completion = self._complete_uncached(msgs, schema, mt, temp, t0)
        except LLMError as e:
            self._add(failed_calls=1)
            log.warning(
                "llm %s: call failed: %s: %s", self.name, type(e).__name__, _clip(str(e), 300)
            )
            raise
        self._add(calls=1)
        if self.cache is not None and key is not None:
            self._store(key, completion)
        return completion

    async def acomplete(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        schema: type[BaseModel] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """``complete`` in a worker thread, for asyncio callers."""
        return await asyncio.to_thread(
            self.complete, messages, schema, max_tokens=max_tokens, temperature=temperature
        )

    def complete_many(
        self,
        requests: Sequence[CompletionRequest],
        max_workers: int | None = None,
    ) -> list[Completion | LLMError]:
        """Run ``requests`` on a thread pool; results in request order.

        A failed request yields its ``LLMError`` in place of a ``Completion`` so one bad
        answer does not lose the others; programming errors still propagate.
        """
        if not requests:
            return []
        workers = max(1, min(max_workers or self.config.max_concurrency, len(requests)))

        def one(req: CompletionRequest) -> Completion | LLMError:
            try:
                return self.complete(
                    req.messages,
                    req.schema,
                    max_tokens=req.max_tokens,
                    temperature=req.temperature,
                )
            except LLMError as e:
                return e

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"llm-{self.name}") as ex:
            return list(ex.map(one, requests))

    # ------------------------------------------------------------------ internals
    def _add(self, **counts: float) -> None:
        with self._lock:
            for k, v in counts.items():
                self._totals[k] += v

    def _cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        price = self.config.price_for(model or self.model)
        if (
            price.input_per_mtok == 0
            and price.output_per_mtok == 0
            and self.name in ("anthropic", "bedrock")
            and model not in self._unpriced_warned
        ):
            self._unpriced_warned.add(model)
            log.warning("llm: no price for model %r; its cost is counted as 0", model)
        return price.cost(input_tokens, output_tokens)

    def _clipped(self, raw: RawAnswer) -> RawAnswer:
        """``raw`` with its text cut to ``max_answer_chars`` and a marker saying so."""
        limit = self.config.max_answer_chars
        if len(raw.text) <= limit:
            return raw
        log.warning(
            "llm %s: answer of %d chars clipped to %d (max_answer_chars)",
            self.name,
            len(raw.text),
            limit,
        )
        return replace(raw, text=clip_text(raw.text, limit))

    def _store(self, key: str, completion: Completion) -> None:
        """Cache an answer; a failed write costs a future re-ask, never this answer."""
        assert self.cache is not None
        entry = {
            "text": completion.text,
            "model": completion.model,
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "cost_usd": completion.cost_usd,
            "stop_reason": completion.stop_reason,
            "attempts": completion.attempts,
        }
        try:
            self.cache.put(key, entry)
        except OSError as e:
            log.warning(
                "llm cache: could not store %s in %s (%s)", key[:12], self.cache.directory, e
            )

    def _from_cache(self, key: str, schema: type[BaseModel] | None, t0: float) -> Completion | None:
        assert self.cache is not None
        entry = self.cache.get(key)
        if entry is None or not isinstance(entry.get("text"), str):
            return None
        parsed = None
        if schema is not None:
            parsed, err = parse_output(entry["text"], schema)
            if parsed is None:
                log.warning(
                    "llm cache: entry %s no longer fits %s (%s); asking again",
                    key[:12],
                    schema.__name__,
                    err,
                )
                return None
        self._add(calls=1, cached_calls=1)
        return Completion(
            text=entry["text"],
            parsed=parsed,
            usage=Usage(
                input_tokens=int(entry.get("input_tokens", 0)),
                output_tokens=int(entry.get("output_tokens", 0)),
            ),
            cost_usd=0.0,
            model=str(entry.get("model", self.model)),
            backend=self.name,
            cached=True,
            latency_s=time.monotonic() - t0,
            attempts=int(entry.get("attempts", 1)),
            stop_reason=entry.get("stop_reason"),
        )

    def _complete_uncached(
        self,
        msgs: list[Message],
        schema: type[BaseModel] | None,
        max_tokens: int,
        temperature: float,
        t0: float,
    ) -> Completion:
        convo = list(msgs)
        usage = Usage()
        cost = 0.0
        errors: list[str] = []
        tries = 1 + (self.config.max_output_retries if schema is not None else 0)
        raw = RawAnswer(text="")
        for attempt in range(tries):
            raw, call_cost = self._send_with_retries(convo, schema, max_tokens, temperature)
            usage = usage + Usage(input_tokens=raw.input_tokens, output_tokens=raw.output_tokens)
            cost += call_cost
            parsed = None
            if schema is not None:
                parsed, err = parse_output(raw.text, schema)
                if parsed is None:
                    assert err is not None
                    errors.append(err)
                    log.log(
                        logging.INFO if attempt == 0 and tries > 1 else logging.DEBUG,
                        "llm %s: output try %d/%d unusable for %s (%s)%s",
                        self.name,
                        attempt + 1,
                        tries,
                        schema.__name__,
                        _clip(err),
                        "; re-asking" if attempt + 1 < tries else "",
                    )
                    if attempt + 1 < tries:
                        self._add(output_retries=1)
                        convo = [
                            *convo,
                            Message(role="assistant", content=raw.text.strip() or "(empty answer)"),
                            Message(role="user", content=repair_message(err)),
                        ]
                    continue
            return Completion(
                text=raw.text,
                parsed=parsed,
                usage=usage,
                cost_usd=cost,
                model=raw.model or self.model,
                backend=self.name,
                cached=False,
                latency_s=time.monotonic() - t0,
                attempts=attempt + 1,
                stop_reason=raw.stop_reason,
            )
        assert schema is not None
        raise LLMOutputError(
            f"output did not fit {schema.__name__} after {tries} tries: {errors[-1]}",
            raw_text=raw.text,
            errors=errors,
            backend=self.name,
            model=self.model,
            attempts=tries,
        )

    def _send_with_retries(
        self,
        msgs: list[Message],
        schema: type[BaseModel] | None,
        max_tokens: int,
        temperature: float,
    ) -> tuple[RawAnswer, float]:
        policy = self.retry_policy
        attempt = 0
        while True:
            self._add(requests=1)
            try:
                with self._slots, deadline(self.config.timeout_s):
                    sent = time.monotonic()
                    try:
                        raw = self._send(
                            msgs, schema=schema, max_tokens=max_tokens, temperature=temperature
                        )
                    except LLMConnectionError as e:
                        left = remaining()
                        if left is not None and left <= 0:  # our deadline cut the connection
                            raise LLMTimeoutError(
                                f"no complete answer within {time.monotonic() - sent:.1f}s "
                                f"(timeout_s={self.config.timeout_s} for the whole request)"
                            ) from e
                        raise
            except LLMTransientError as e:
                e.backend, e.model, e.attempts = self.name, self.model, attempt + 1
                if attempt >= policy.max_retries:
                    raise  # complete() logs the failure once
                wait = policy.delay(attempt, e.retry_after)
                left = remaining()
                if left is not None and left <= wait:
                    e.message += f" (no retry: the call's {self.config.call_timeout_s}s are spent)"
                    raise
                log.log(
                    logging.INFO if attempt == 0 else logging.DEBUG,
                    "llm %s: %s (%s); retry %d/%d in %.2fs",
                    self.name,
                    type(e).__name__,
                    _clip(e.message),
                    attempt + 1,
                    policy.max_retries,
                    wait,
                )
                self._add(retries=1)
                policy.sleep(wait)
                attempt += 1
                continue
            except LLMError as e:
                e.backend, e.model, e.attempts = self.name, self.model, attempt + 1
                raise
            raw = self._clipped(raw)
            cost = self._cost(raw.model, raw.input_tokens, raw.output_tokens)
            self._add(input_tokens=raw.input_tokens, output_tokens=raw.output_tokens, cost_usd=cost)
            return raw, cost


def _clip(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` chars, for a log line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
