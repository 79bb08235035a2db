"""Typed failures of LLM calls, so callers branch on *kind* of failure, never on strings.

Exports ``LLMError`` (base), ``LLMConfigError`` (bad spec or config), ``LLMRequestError``
(the server refused the request: 4xx other than 408/409/429), ``LLMAuthError`` (401/403),
``LLMTransientError`` (worth retrying) with ``LLMRateLimitError``, ``LLMServerError``,
``LLMTimeoutError`` and ``LLMConnectionError``, and ``LLMOutputError`` (the model answered, but
not with something the schema accepts; keeps the raw text).

The creator and the evaluator catch ``LLMError`` and turn it into an event or an error
episode; nothing in this package swallows a failure.

>>> err = LLMOutputError("no JSON object found", raw_text="sure!", errors=["no JSON"], attempts=3)
>>> isinstance(err, LLMError), err.raw_text, err.attempts
(True, 'sure!', 3)
>>> LLMRateLimitError("slow down", status=429, retry_after=2.0).retryable
True
"""

from __future__ import annotations

__all__ = [
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
]


class LLMError(Exception):
    """Base of every failure raised by ``reskill_gym.llm``.

    ``attempts`` counts the transport attempts made (1 when nothing was retried).
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        model: str | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        from reskill_gym.redaction import redact

        message = redact(message)  # servers echo request headers (API keys) in error bodies
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.model = model
        self.status = status
        self.attempts = attempts

    def __str__(self) -> str:
        where = ":".join(x for x in (self.backend, self.model) if x)
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.attempts > 1:
            parts.append(f"after {self.attempts} attempts")
        if where:
            parts.append(f"[{where}]")
        return " ".join(parts)


class LLMConfigError(LLMError, ValueError):
    """A backend spec or config value is wrong (unknown backend, missing model or key, ...)."""


class LLMRequestError(LLMError):
    """The server rejected the request itself (400/404/422...): retrying would not help."""


class LLMAuthError(LLMRequestError):
    """The server rejected the credentials (401) or the permission (403)."""


class LLMTransientError(LLMError):
    """A failure that may go away on retry; ``retry_after`` is the server's hint in seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class LLMRateLimitError(LLMTransientError):
    """HTTP 429 (or 529 overloaded): the server asks us to slow down."""


class LLMServerError(LLMTransientError):
    """HTTP 5xx, 408 or 409 from the server."""


class LLMTimeoutError(LLMTransientError):
    """No complete answer within the configured timeout."""


class LLMConnectionError(LLMTransientError):
    """The server could not be reached (refused, reset, DNS...)."""


class LLMOutputError(LLMError):
    """The model's answer could not be parsed into the requested schema after all tries.

    ``raw_text`` is the last answer, ``errors`` the parse/validation error of every try, so a
    caller can log why a step was skipped without re-running it.
    """

    def __init__(
        self,
        message: str,
        *,
        raw_text: str,
        errors: list[str] | None = None,
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.raw_text = raw_text
        self.errors = list(errors or [])
