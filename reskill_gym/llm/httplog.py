"""Keeping the HTTP clients' per-request log lines off the console unless asked for.

Exports ``HTTP_LOGGERS`` and ``set_http_logging``.

``httpx`` (and ``httpx2``, which the newer SDKs use) log every request at INFO
("HTTP Request: POST ... 200 OK"): a creator pass or an evaluation makes hundreds, which
buries progress and errors. An application (the ``reskill`` CLI) calls
``set_http_logging(verbose)`` once: by default those loggers only pass warnings; with
``verbose`` they pass everything, so the per-request lines are part of the debug output. The
transport internals (``httpcore``) stay at INFO even then: they log connection events, not
requests. A library never calls this; the levels are the application's choice.

>>> import logging
>>> set_http_logging(verbose=False)
>>> logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
True
>>> set_http_logging(verbose=True)
>>> logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
True
>>> set_http_logging(verbose=False)
"""

from __future__ import annotations

import logging

__all__ = ["HTTP_LOGGERS", "set_http_logging"]

#: Loggers that emit one line per HTTP request (INFO) or per SDK call (DEBUG).
HTTP_LOGGERS: tuple[str, ...] = ("httpx", "httpx2", "openai", "anthropic")
_TRANSPORT_LOGGERS: tuple[str, ...] = ("httpcore", "httpcore2")


def set_http_logging(verbose: bool = False) -> None:
    """Per-request HTTP lines: shown only when ``verbose`` (the console's debug mode)."""
    level = logging.DEBUG if verbose else logging.WARNING
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in _TRANSPORT_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
