"""Crash-safe file writes: temp file in the same folder, fsync, rename, fsync the folder.

Exports: ``atomic_write_text``, ``atomic_write_bytes``, ``fsync_dir``.

A reader (or a process that restarts after a kill) sees either the old file or the new
one, never a half-written file, because ``os.replace`` within one folder is atomic on
POSIX and Windows.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "HEAD", "abc123\\n").read_text()
'abc123\\n'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "fsync_dir"]


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is synced)."""
    if os.name != "posix":  # pragma: no cover - no directory fds on Windows
        return
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent folders. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
