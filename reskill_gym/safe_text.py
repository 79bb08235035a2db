"""Untrusted text made safe to keep and to show: clipped with a marker, terminal-safe.

Exports ``clip_text``, ``clip_marker``, ``terminal_text``, ``valid_unicode``, ``error_line``,
``ESCAPE_RE`` and ``CONTROL_RE``.

Every string from a skill folder, a model, an endpoint or a run folder may be huge or may
carry bytes a terminal acts on. ``clip_text`` keeps a bounded head and says how much was
cut, so a reader knows the record is not whole (a 60 MB reply stored as is makes every
later reader slow; a silent cut makes a record lie). ``terminal_text`` removes what a
terminal would interpret instead of print: ANSI escape sequences (colours, cursor moves,
"erase line", which can hide text from a reviewer), other C0/C1 control characters and
lone surrogates; newlines and tabs stay unless ``one_line``. ``valid_unicode`` replaces
lone surrogates (what a JSON ``"\\ud800"`` from a model or a policy's string decodes to),
which no UTF-8 file, socket or engine accepts. ``error_line`` is an exception as the one
line a CLI prints after ``error:`` (a pydantic ``ValidationError`` spans many lines and
links to a web page; its field errors are joined instead).

>>> clip_text("abcdefghij" * 10, 30)
'abcdefgh... [clipped 92 chars]'
>>> terminal_text("ok\\x1b[2K\\rhidden\\x07 text")
'ok hidden text'
"""

from __future__ import annotations

import re

__all__ = [
    "clip_text",
    "clip_marker",
    "terminal_text",
    "valid_unicode",
    "error_line",
    "ESCAPE_RE",
    "CONTROL_RE",
]

#: ANSI escape sequences: CSI (colours, cursor moves, erase), OSC (titles, links), others.
ESCAPE_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
#: C0/C1 control characters but newline and tab, DEL, and lone surrogates.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clip_marker(cut: int) -> str:
    """The marker that ends a clipped text (``... [clipped N chars]``)."""
    return f"... [clipped {cut} chars]"


def clip_text(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else a head of it and the marker,
    ``limit`` characters in all (at least the marker)."""
    if len(text) <= limit:
        return text
    # the marker's length depends on the count it names; one adjustment settles it
    head = max(0, limit - len(clip_marker(len(text) - limit)))
    head = max(0, limit - len(clip_marker(len(text) - head)))
    return text[:head] + clip_marker(len(text) - head)


def terminal_text(text: str, *, one_line: bool = False) -> str:
    """``text`` with escape sequences and control characters removed (a space where one
    stood between two words), for a terminal; ``one_line`` also folds newlines and tabs."""
    out = CONTROL_RE.sub(" ", ESCAPE_RE.sub("", text))
    if out != text:
        out = re.sub(r" {2,}", " ", out)
    if one_line:
        out = " ".join(out.split())
    return out


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8.

    >>> valid_unicode("ok \\ud800 there")
    'ok \\ufffd there'
    """
    return _SURROGATE_RE.sub("\ufffd", text)


def error_line(exc: BaseException, limit: int = 4000) -> str:
    """``exc`` as one terminal-safe, clipped, redacted line (an endpoint's echo in an
    error message may hold a key).

    >>> error_line(ValueError("bad\\n  value \\x1b[2K"))
    'bad value'
    """
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":  # pydantic's
        try:
            parts = [
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'config'}: {e.get('msg')}"
                for e in errors()[:8]
            ]
            text = "; ".join(parts)
        except Exception:  # an odd errors() shape: fall back to the message
            text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    from reskill_gym.redaction import redact

    return redact(terminal_text(clip_text(text, limit), one_line=True))
