"""Total deadlines for LLM requests: a server that drips bytes cannot outlast the timeout.

Exports ``deadline``, ``remaining`` and ``bound_client``.

httpx's timeouts are per operation: every read may wait ``timeout`` seconds afresh, so an
endpoint that sends one byte every few seconds keeps a request alive for as long as it
likes, whatever ``timeout_s`` says. Here every socket operation of an httpx client (connect,
TLS handshake, each read and write, through proxies too) is clamped to the time left before
the innermost ``deadline(...)`` of the calling thread, and fails with httpcore's own timeout
errors once it has passed; the SDKs turn those into their timeout errors
(``LLMTimeoutError`` here). ``BaseBackend`` opens a deadline per request (``timeout_s``)
and one per call (``call_timeout_s``: retries, back-off and re-asks included).

``bound_client`` installs this on a client by wrapping the network backend of its
connection pools, the one httpcore hook that sees every read; a pool without that hook is
left as it is, with a warning.

>>> with deadline(5.0):
...     0 < remaining() <= 5.0
True
>>> remaining() is None
True
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["deadline", "remaining", "bound_client"]

log = logging.getLogger(__name__)

_DEADLINE: ContextVar[float | None] = ContextVar("reskill_llm_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, network operations end by ``now + seconds`` (``None``: no new
    limit). Nested deadlines keep the earlier one."""
    if seconds is None:
        yield
        return
    end = time.monotonic() + max(0.0, float(seconds))
    outer = _DEADLINE.get()
    token = _DEADLINE.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (None outside any); can be negative."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise error("deadline passed: the request took longer than its timeout in total")
    return left if timeout is None else min(timeout, left)


def _stream_class() -> type:
    import httpcore

    class DeadlineStream(httpcore.NetworkStream):
        """A network stream whose every operation ends by the current deadline."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            data: bytes = self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))
            return data

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(
            self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
        ) -> Any:
            t = _clamp(timeout, httpcore.ConnectTimeout)
            return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, t))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    return DeadlineStream


@functools.cache
def _backend_class() -> type:
    """The backend wrapper (made on first use: ``import reskill_gym.llm`` stays light)."""
    import httpcore

    stream = _stream_class()

    class DeadlineBackend(httpcore.NetworkBackend):
        """Wraps a network backend so each stream it opens obeys the current deadline."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            t = _clamp(timeout, httpcore.ConnectTimeout)
            return stream(
                self._inner.connect_tcp(
                    host,
                    port,
                    timeout=t,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            )

        def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            t = _clamp(timeout, httpcore.ConnectTimeout)
            return stream(
                self._inner.connect_unix_socket(path, timeout=t, socket_options=socket_options)
            )

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return DeadlineBackend


def bound_client(client: Any) -> Any:
    """Make every connection pool of an ``httpx.Client`` obey ``deadline``; returns it."""
    backend = _backend_class()
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is None:
            continue  # a mount set to None (no proxy for that pattern)
        inner = getattr(pool, "_network_backend", None)
        if inner is None:
            log.warning(
                "llm: %s has no network backend hook; its requests are limited per read only",
                type(pool).__name__,
            )
            continue
        if not isinstance(inner, backend):
            pool._network_backend = backend(inner)
    return client
