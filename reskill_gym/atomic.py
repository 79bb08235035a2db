"""Crash-safe file writes: temp file in the same folder, fsync, rename, fsync the folder.

Exports: ``atomic_write_bytes``, ``atomic_write_text``, ``atomic_write_json``,
``atomic_path`` and ``fsync_dir``.

A reader (or a process that restarts after a kill) sees either the old file or the new
one, never a half-written file, because ``os.replace`` within one folder is atomic on
POSIX and Windows. A symbolic link at the target path is replaced by the new file, never
written through. Every component that persists state (libraries, checkpoints, caches,
reports, datasets) writes through this module, so there is one implementation to trust.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "HEAD", "abc123\\n").read_text()
'abc123\\n'
>>> with atomic_path(d / "blob.bin") as tmp:
...     _ = tmp.write_bytes(b"written by a library that wants a path")
>>> (d / "blob.bin").read_bytes()[:7]
b'written'
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_path",
    "fsync_dir",
]


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is synced)."""
    if os.name != "posix":  # pragma: no cover - no directory fds on Windows
        return
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` durably.

    For writers that insist on a file name (``torch.save``, ``np.save``, matplotlib,
    pyarrow). On an exception the temp file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp creates 0600 files; keep an existing regular file's mode, else the usual 0644.
    # lstat: a link at ``path`` is replaced by the file, and its target's mode is not ours.
    try:
        st = os.lstat(target)
        mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else 0o644
    except FileNotFoundError:
        mode = 0o644
    os.chmod(tmp, mode)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent folders. Returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, **dump_kwargs: Any) -> Path:
    """Serialise ``obj`` with ``json.dumps(**dump_kwargs)`` and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, **dump_kwargs) + "\n")
