"""JSON-lines files of a run folder, read and appended defensively.

Exports ``read_jsonl_objects``, ``parse_json_line``, ``repair_torn_tail``, ``append_line``
and ``MAX_LINE_BYTES``.

Run folders (``metrics.jsonl``, ``events.jsonl``, ``episodes.jsonl``) are written by a
process that may be killed mid-line and read by commands that must not fail on one bad
byte, so here a line that is not UTF-8, not JSON, not an object, nested deeper than the
parser goes, holding an integer of thousands of digits, or longer than
``MAX_LINE_BYTES`` is skipped with a warning naming file and line. The files are opened
through ``reskill_gym.safe_files``: a link or a FIFO in their place is an error, not a
read of somebody else's file or a hang.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
>>> _ = p.write_bytes(b'{"step": 0}\\n\\xff\\n[1]\\n' + b"[" * 100000 + b'\\n{"step": 1}\\n{"ste')
>>> [row for _n, row in read_jsonl_objects(p)]
[{'step': 0}, {'step': 1}]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reskill_gym import safe_files

__all__ = [
    "read_jsonl_objects",
    "parse_json_line",
    "repair_torn_tail",
    "append_line",
    "MAX_LINE_BYTES",
]

log = logging.getLogger(__name__)

#: A longer line is skipped when read (records are clipped far below it when written).
MAX_LINE_BYTES = 16 << 20


def parse_json_line(raw: bytes | str) -> dict[str, Any] | str:
    """The JSON object on one line, or why it is not one (a short reason)."""
    if len(raw) > MAX_LINE_BYTES:
        return f"over {MAX_LINE_BYTES} bytes"
    try:
        obj = json.loads(raw)
    except UnicodeDecodeError:
        return "not UTF-8"
    except RecursionError:
        return "nested too deeply"
    except ValueError as exc:  # JSONDecodeError, and int("9" * 5000)'s digit limit
        return f"not JSON ({str(exc)[:80]})"
    if not isinstance(obj, dict):
        return "not a JSON object"
    return obj


def read_jsonl_objects(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every usable line of ``path`` (none if it is missing).

    A torn last line (a crash mid-write) is skipped like any other bad line.
    """
    p = Path(path)
    try:
        fh = safe_files.open_regular(p)
    except FileNotFoundError:
        return
    with fh:
        n = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            n += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest, a block at a time
                    raw = fh.readline(1 << 20)
                log.warning("%s:%d: skipped (over %d bytes)", p, n, MAX_LINE_BYTES)
                continue
            if not raw.strip():
                continue
            got = parse_json_line(raw)
            if isinstance(got, str):
                log.warning("%s:%d: skipped (%s)", p, n, got)
                continue
            yield n, got


def repair_torn_tail(path: str | os.PathLike[str]) -> int:
    """Cut a last line without its newline (a crash mid-write); returns the bytes cut."""
    p = Path(path)
    try:
        fh = safe_files.open_regular(p)
    except FileNotFoundError:
        return 0
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        pos, cut = size, 0
        while pos > 0:
            start = max(0, pos - (1 << 16))
            fh.seek(start)
            block = fh.read(pos - start)
            i = block.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
    with safe_files.open_append(p) as out:
        out.truncate(cut)
        out.flush()
        os.fsync(out.fileno())
    log.warning("%s: dropped a torn last line (%d bytes, a crash mid-write)", p, size - cut)
    return size - cut


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line (``line`` plus a newline) with one ``write`` and ``fsync`` it: the
    line is in the file or not at all. A link or FIFO at ``path`` is refused."""
    data = memoryview((line + "\n").encode("utf-8"))
    with safe_files.open_append(Path(path)) as fh:
        fd = fh.fileno()
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
