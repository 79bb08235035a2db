"""The one way the project opens files in folders a user, a run or a skill library supplies.

Exports ``UnsafeFileError``, ``FileTooLargeError``, ``open_regular``, ``open_text``,
``read_bytes``, ``read_text``, ``open_append``, ``copy_file`` and ``copy_tree``.

Library code opens files only through this module and ``reskill_gym.atomic``;
``tests/hardening/test_hardening_file_access.py`` greps the package for any other ``open``, ``read_text``,
``write_text``, ``shutil`` or ``os.open`` call and fails unless the line is in its reviewed
allow-list (package data, ``/proc``, engine data folders, temp folders the code made).

Every folder the project reads or writes may hold something placed there to mislead it:
a symbolic link that sends a read or a write elsewhere, or a FIFO (or device) that blocks
forever when opened. Files here are opened with ``O_NOFOLLOW`` (a link in the last
component is refused with no window between check and open) and ``O_NONBLOCK`` (opening a
FIFO cannot block), then ``fstat`` must say "regular file"; reads are capped in bytes.
Writes go through ``reskill_gym.atomic`` (temp file and rename: a link at the target is
replaced, never written through).

>>> import tempfile, pathlib, os
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.txt").write_text("hello")
>>> read_text(d / "a.txt")
'hello'
>>> os.mkfifo(d / "pipe")
>>> read_bytes(d / "pipe")
Traceback (most recent call last):
...
reskill_gym.safe_files.UnsafeFileError: [Errno 22] not a regular file (a FIFO): '...pipe'
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO, TextIO

__all__ = [
    "UnsafeFileError",
    "FileTooLargeError",
    "open_regular",
    "open_text",
    "read_bytes",
    "read_text",
    "open_append",
    "copy_file",
    "copy_tree",
]

#: Default cap on one read: larger inputs are refused, not truncated.
DEFAULT_MAX_BYTES = 64 << 20

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


class UnsafeFileError(OSError):
    """A path is a link, a FIFO, a device or a folder where a regular file is needed, or a
    file is over its size cap. An ``OSError`` with the path as ``filename``, so the CLI
    prints it as ``error: <path>: <why>``."""

    def __init__(self, path: str | Path, why: str) -> None:
        super().__init__(errno.EINVAL, why, str(path))


class FileTooLargeError(UnsafeFileError):
    """A regular file over the size cap of the read (refused, never truncated)."""


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _open_fd(path: Path, flags: int, follow_links: bool = False) -> int:
    """An fd of a regular file at ``path`` (never a link unless ``follow_links``, never
    blocking on a FIFO)."""
    flags |= os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            why = f"is a symbolic link (-> {target}); links are not followed"
            raise UnsafeFileError(path, why) from None
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise UnsafeFileError(path, "not a regular file (a FIFO)") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(path, f"not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | Path, *, follow_links: bool = False) -> BinaryIO:
    """Open a regular file for reading (binary); links, FIFOs, devices and folders refused.

    ``follow_links=True`` is for a path the user typed (a ``--config`` that is a link to
    their shared config is theirs to choose); never for a path found inside a folder.
    """
    p = Path(path)
    return os.fdopen(_open_fd(p, os.O_RDONLY, follow_links), "rb")


def open_text(path: str | Path, *, follow_links: bool = False) -> TextIO:
    """``open_regular`` as UTF-8 text, for files read line by line (recordings, corpora)."""
    return io.TextIOWrapper(open_regular(path, follow_links=follow_links), encoding="utf-8")


def read_bytes(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, follow_links: bool = False
) -> bytes:
    """The bytes of a regular file; over ``max_bytes`` is a ``FileTooLargeError``."""
    p = Path(path)
    with open_regular(p, follow_links=follow_links) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(p, f"file is over {max_bytes} bytes")
    return data


def read_text(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, follow_links: bool = False
) -> str:
    """The UTF-8 text of a regular file (``UnicodeDecodeError`` on bad bytes)."""
    return read_bytes(path, max_bytes=max_bytes, follow_links=follow_links).decode("utf-8")


def open_append(path: str | Path) -> BinaryIO:
    """Open a regular file for appending (binary), creating it if missing.

    For logs that grow line by line (``episodes.jsonl``, ``history.jsonl``): a link or a
    FIFO at ``path`` is refused instead of being written through or blocking.
    """
    p = Path(path)
    return os.fdopen(_open_fd(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")


def copy_file(src: str | Path, dest: str | Path, *, follow_links: bool = False) -> Path:
    """Copy a regular file (any size, streamed) to ``dest`` atomically; returns ``dest``.

    ``src`` is opened like ``open_regular`` (a link or FIFO is an ``UnsafeFileError``, so a
    copy never carries a file from outside the folder it was asked to copy); ``dest`` is
    written through ``reskill_gym.atomic`` (a link there is replaced, not written through).
    """
    from reskill_gym.atomic import atomic_path

    with open_regular(src, follow_links=follow_links) as fh, atomic_path(dest) as tmp:
        with tmp.open("wb") as out:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
    return Path(dest)


def copy_tree(src: str | Path, dest: str | Path) -> list[Path]:
    """Copy a folder of regular files and sub-folders to ``dest`` (created); returns the
    files written. A link or anything but a regular file or folder inside ``src`` is an
    ``UnsafeFileError`` naming it, raised before anything is written."""
    root = Path(src)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted([*dirnames, *filenames]):
            p = Path(dirpath) / name
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                raise UnsafeFileError(p, f"is a symbolic link (-> {os.readlink(p)}); not copied")
            if stat.S_ISREG(mode):
                files.append(p)
            elif not stat.S_ISDIR(mode):
                raise UnsafeFileError(p, f"not a regular file ({_kind(mode)}); not copied")
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in files:
        written.append(copy_file(p, out / p.relative_to(root)))
    return written
