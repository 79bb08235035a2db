"""Credential redaction for everything the project writes: events, logs, reports, history.

Exports: ``redact``, ``redact_obj``, ``RedactingFilter``, ``install_log_redaction``,
``REDACTED``, ``SECRET_ENV_VARS``.

Why: LLM endpoints (and proxies in front of them) sometimes echo the request, headers
included, in an error body. That text travels into creator events, ``events.jsonl``, the
library history and log lines, so an API key would end up in files that are shared,
committed or uploaded. Every writer therefore passes its text through ``redact`` (or its
records through ``redact_obj``), and the CLI installs ``RedactingFilter`` on the log
handlers, so a secret is cut where it is written, whatever path it took.

What is recognised (replaced by ``[REDACTED]``, the surrounding text kept):

* provider keys by shape: OpenAI/Anthropic ``sk-...`` / ``sk-ant-...``, Hugging Face
  ``hf_...``, GitHub ``ghp_...``/``github_pat_...``, Google ``AIza...``, Slack ``xox?-...``,
  AWS access key ids ``AKIA...``/``ASIA...``;
* ``Bearer``/``Basic`` credentials wherever they appear;
* the value of credential-named keys in ``key=value``, ``key: value`` and JSON/dict form
  (``authorization``, ``x-api-key``, ``api_key``, ``aws_secret_access_key``,
  ``aws_session_token``, ``password``, ``secret``, ``token``, ...), and URL query
  parameters and ``user:password@`` parts of URLs;
* configured secrets, of any length and shape: the values of the secret environment
  variables in ``SECRET_ENV_VARS`` that are set in this process, and every value a config
  gave a credential-named key (``register_config_secrets``, called when run configs load).
  Values of 8 or more characters are cut anywhere; shorter ones as whole tokens.

Redaction is for text meant for humans and files; it is not a parser, and a secret
spelled in a form not listed here passes. The patterns only match runs of token
characters, so redacting a JSON document leaves it valid JSON.

>>> redact("401 from proxy: authorization=Bearer sk-abcdefghijklmnopqrstuvwx")
'401 from proxy: authorization=Bearer [REDACTED]'
>>> redact_obj({"message": "key sk-ant-api03-abcdefghijklmnop1234", "n": 3})
{'message': 'key [REDACTED]', 'n': 3}
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = [
    "redact",
    "redact_obj",
    "RedactingFilter",
    "install_log_redaction",
    "register_secret",
    "register_config_secrets",
    "is_secret_key",
    "REDACTED",
    "SECRET_ENV_VARS",
]

REDACTED = "[REDACTED]"

#: Environment variables whose values are secrets; their literal values are cut anywhere.
SECRET_ENV_VARS: tuple[str, ...] = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY",
    "GITHUB_TOKEN",
    "RESKILL_API_KEY",
)
# Configured secrets this long are cut anywhere; shorter ones only as whole tokens.
_MIN_SUBSTRING_SECRET = 8

_TOKEN = r"[A-Za-z0-9_\-.~+/]"
_WORD = r"[A-Za-z0-9_\-]"
# Secrets recognisable by their shape alone.
_SHAPES = re.compile(
    r"\bsk-(?:ant-)?[A-Za-z0-9][A-Za-z0-9_\-]{15,}"
    r"|\bhf_[A-Za-z0-9]{20,}"
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\bAIza[0-9A-Za-z_\-]{30,}"
    r"|\bxox[abpors]-[A-Za-z0-9\-]{10,}"
    r"|\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"
)
# ``Bearer <token>`` / ``Basic <token>`` anywhere (keeps the scheme word out of the value).
_SCHEME = re.compile(rf"\b(Bearer|Basic)(\s+){_TOKEN}+=*", re.IGNORECASE)
# key=value, key: value, "key": "value", 'key': 'value' for credential-named keys.
_KEYS = (
    r"authorization|proxy-authorization|x-api-key|api[-_]?key|apikey|x-goog-api-key"
    r"|anthropic[-_]api[-_]key|openai[-_]api[-_]key|access[-_]?token|refresh[-_]?token"
    r"|auth[-_]?token|session[-_]?token|id[-_]?token|client[-_]?secret|secret[-_]?key"
    r"|aws[-_]secret[-_]access[-_]key|aws[-_]session[-_]token|secret[-_]access[-_]key"
    r"|password|passwd|secret|token"
)
_KEY_VALUE = re.compile(
    rf"""(?P<key>(?:\\?["'])?\b(?:{_KEYS})\b(?:\\?["'])?\s*[=:]\s*(?:\\?["'])?)"""
    rf"""(?P<scheme>(?:Bearer|Basic|Token)\s+)?(?P<value>[^\s"'\\,;&}}\])]+)""",
    re.IGNORECASE,
)
# Substrings (lower case) one of _KEYS contains: no hint, no key=value scan.
_KEY_HINTS = ("auth", "key", "token", "secret", "passw")
# Literal prefixes one of _SHAPES needs: a cheap scan first (long texts, e.g. episode
# records, rarely hold any), the full pattern only when one is there.
_SHAPE_HINT = re.compile(r"sk-|hf_|gh[pousr]_|github_pat_|AIza|xox[abpors]-|AKIA|ASIA|ABIA|ACCA")
_URL_USERINFO = re.compile(
    r"(?P<pre>\b[a-z][a-z0-9+.\-]*://[^\s/:@\"'\\]+:)[^\s/@\"'\\]+(?=@)", re.IGNORECASE
)
_QUERY = re.compile(
    r"(?P<pre>[?&](?:api[-_]?key|key|token|access_token|sig|signature|secret)=)[^&\s\"'#\\]+",
    re.IGNORECASE,
)


_REGISTERED: set[str] = set()
_REGISTERED_LOCK = threading.Lock()


def register_secret(value: object) -> None:
    """Cut ``value`` wherever it appears from now on in this process, whatever its length.

    Configs call this for the values of their credential-named keys (``api_key``,
    ``token``, ...) when they load, so a key that has no recognisable shape (a proxy's
    ``abc123``) is still cut from every file and log line, and from an endpoint's echo.
    Empty and non-string values are ignored.
    """
    if isinstance(value, str) and value.strip() and value != REDACTED:
        with _REGISTERED_LOCK:
            _REGISTERED.add(value)


def register_config_secrets(config: object) -> int:
    """``register_secret`` for every string under a credential-named key of ``config`` (plain
    data: mappings and lists, any depth); returns how many values it registered."""
    n = 0
    if isinstance(config, Mapping):
        for k, v in config.items():
            if isinstance(k, str) and isinstance(v, str) and is_secret_key(k):
                register_secret(v)
                n += 1
            else:
                n += register_config_secrets(v)
    elif isinstance(config, (list, tuple)):
        n += sum(register_config_secrets(v) for v in config)
    return n


def _configured_secrets() -> list[str]:
    """Values of the secret environment variables and the registered secrets, longest first."""
    vals = {os.environ.get(name, "") for name in SECRET_ENV_VARS} | _REGISTERED
    return sorted((v for v in vals if v.strip()), key=len, reverse=True)


def _cut_secret(text: str, secret: str) -> str:
    """``text`` without ``secret``: anywhere when it is long enough not to be a common word,
    else only as a whole token (a 3-character key must not cut every word containing it)."""
    if len(secret) >= _MIN_SUBSTRING_SECRET:
        return text.replace(secret, REDACTED)
    return re.sub(rf"(?<!{_WORD}){re.escape(secret)}(?!{_WORD})", REDACTED, text)


def _key_value(m: re.Match[str]) -> str:
    value = m.group("value")
    if value == REDACTED or value.startswith("[REDACTED"):
        return m.group(0)
    return m.group("key") + (m.group("scheme") or "") + REDACTED


def redact(text: str) -> str:
    """``text`` with credentials replaced by ``[REDACTED]`` (see the module docstring).

    >>> redact('{"x-api-key": "abc123secretvalue", "model": "m"}')
    '{"x-api-key": "[REDACTED]", "model": "m"}'
    >>> redact("AKIAIOSFODNN7EXAMPLE and aws_secret_access_key=wJalrXUtnFEMI/K7MDENG")
    '[REDACTED] and aws_secret_access_key=[REDACTED]'
    >>> redact("open drawer 1")
    'open drawer 1'
    """
    if not isinstance(text, str) or not text:
        return text
    for secret in _configured_secrets():
        if secret in text:
            text = _cut_secret(text, secret)
    # each pattern runs only where the text holds what it needs (cheap necessary checks)
    if _SHAPE_HINT.search(text):
        text = _SHAPES.sub(REDACTED, text)
    lower = text.lower()
    if any(hint in lower for hint in _KEY_HINTS):  # the key=value scan is the slow one
        text = _KEY_VALUE.sub(_key_value, text)
        lower = text.lower()
    if "bearer" in lower or "basic" in lower:
        text = _SCHEME.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: m.group("pre") + REDACTED, text)
    if "=" in text:
        text = _QUERY.sub(lambda m: m.group("pre") + REDACTED, text)
    return text


def redact_obj(obj: Any) -> Any:
    """A copy of ``obj`` (JSON-like: dicts, lists, tuples, strings) with every string redacted.

    Values under credential-named keys are replaced whole, whatever their shape. Objects of
    other types are returned as they are.
    """
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and isinstance(v, str) and v and is_secret_key(k):
                out[k] = REDACTED
            else:
                out[redact(k) if isinstance(k, str) else k] = redact_obj(v)
        return out
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_obj(v) for v in obj)
    return obj


_SECRET_KEY = re.compile(rf"^(?:{_KEYS})$", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether ``key`` names a credential (``api_key``, ``Authorization``, ``token``, ...)."""
    return bool(_SECRET_KEY.match(key.strip().replace(" ", "_")))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message and any traceback text.

    Installed on handlers (``install_log_redaction``), so it sees every record that is
    emitted, from any logger. Never drops a record.

    >>> rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "key %s", ("sk-" + "a" * 24,), None)
    >>> RedactingFilter().filter(rec), rec.getMessage()
    (True, 'key [REDACTED]')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what logging itself would show
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one ``RedactingFilter`` to every handler of ``logger`` (default: root); idempotent.

    Call after the handlers exist (the CLI calls it right after ``logging.basicConfig``).
    """
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                break
        else:
            handler.addFilter(RedactingFilter())
    for handler in target.handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                return f
    return RedactingFilter()
