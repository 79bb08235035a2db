"""The one way the project opens files in folders a user, a run or a skill library supplies.

Exports ``UnsafeFileError``, ``FileTooLargeError``, ``TooManyEntriesError``, ``Entry``,
``open_regular``, ``open_text``, ``read_bytes``, ``read_text``, ``open_append``,
``copy_file``, ``copy_tree``, ``list_folder`` and ``walk_tree``.

Library code opens and lists files only through this module and ``reskill_gym.atomic``;
``tests/hardening/test_hardening_file_access.py`` greps the package for any other ``open``,
``read_text``, ``write_text``, ``shutil``, ``os.open``, ``iterdir``, ``glob``, ``os.walk``
or ``scandir`` call and fails unless the line is in its reviewed allow-list (package data,
``/proc``, engine data folders, temp folders the code made).

Every folder the project reads or writes may hold something placed there to mislead it:
a symbolic link that sends a read or a write elsewhere, or a FIFO (or device) that blocks
forever when opened. Files here are opened with ``O_NOFOLLOW`` (a link in the last
component is refused with no window between check and open) and ``O_NONBLOCK`` (opening a
FIFO cannot block), then ``fstat`` must say "regular file"; reads are capped in bytes.
Writes go through ``reskill_gym.atomic`` (temp file and rename: a link at the target is
replaced, never written through). Listings (``list_folder``, ``walk_tree``) open the folder
itself with ``O_NOFOLLOW``, type every entry by ``lstat`` (a link is a link, never its
target), never descend through a link, and stop at a bound on the number of entries; each
caller says whether a link or a FIFO inside is refused, skipped or returned.

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
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO, Literal, TextIO

__all__ = [
    "UnsafeFileError",
    "FileTooLargeError",
    "TooManyEntriesError",
    "Entry",
    "open_regular",
    "open_text",
    "read_bytes",
    "read_text",
    "open_append",
    "copy_file",
    "copy_tree",
    "list_folder",
    "walk_tree",
]

#: Default cap on one read: larger inputs are refused, not truncated.
DEFAULT_MAX_BYTES = 64 << 20

#: Default cap on the entries one listing looks at (a folder, or a whole tree for
#: ``walk_tree``): a folder with more is refused, so a hostile folder of millions of
#: entries cannot make a command list for minutes or hold them all in memory.
DEFAULT_MAX_ENTRIES = 100_000

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


class TooManyEntriesError(UnsafeFileError):
    """A folder (or tree) with more entries than the listing's bound (refused, not cut)."""


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
    files written. A link or anything but a regular file or folder inside ``src`` (or
    ``src`` itself a link) is an ``UnsafeFileError`` naming it, raised before anything is
    written."""
    entries = walk_tree(src)  # links and special files refused
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for e in entries:
        if e.kind == "folder":
            (out / e.rel).mkdir(exist_ok=True)
        else:
            written.append(copy_file(e.path, out / e.rel))
    return written


# ----- listing ---------------------------------------------------------------------------
#: What a listing does with a link or a special file (FIFO, socket, device) inside the
#: folder: ``refuse`` raises ``UnsafeFileError`` naming it, ``skip`` leaves it out,
#: ``include`` returns it (kind ``link`` / ``special``) for the caller to report.
Policy = Literal["refuse", "skip", "include"]
EntryKind = Literal["file", "folder", "link", "special"]


@dataclass(frozen=True)
class Entry:
    """One entry of a listing, typed by ``lstat``: a link is kind ``link`` whatever it
    points at, so a caller cannot follow one by accident."""

    path: Path
    rel: str
    kind: EntryKind

    @property
    def name(self) -> str:
        return self.path.name


def _link_error(path: Path) -> UnsafeFileError:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return UnsafeFileError(path, f"is a symbolic link (-> {target}); links are not followed")


def _open_folder(path: Path, *, follow_links: bool, dir_fd: int | None = None) -> int:
    """An fd of the folder ``path`` (``path.name`` relative to ``dir_fd`` when given)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        if dir_fd is None:
            return os.open(path, flags)
        return os.open(path.name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise _link_error(path) from None
        if exc.errno == errno.ENOTDIR:
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path)) from None
        raise


class _Budget:
    def __init__(self, root: Path, max_entries: int) -> None:
        self.root, self.left, self.max = root, max_entries, max_entries

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TooManyEntriesError(
                self.root, f"holds more than {self.max} entries; refused (not listed in part)"
            )


def _scan(
    fd: int,
    folder: Path,
    prefix: str,
    budget: _Budget,
    *,
    links: Policy,
    special: Policy,
    hidden: bool,
) -> Iterator[Entry]:
    """The entries of the open folder ``fd``, sorted by name, after the policies."""
    found: list[tuple[str, EntryKind]] = []
    with os.scandir(fd) as it:
        for de in it:
            budget.take()
            if not hidden and de.name.startswith("."):
                continue
            kind: EntryKind
            if de.is_symlink():
                kind = "link"
            elif de.is_dir(follow_symlinks=False):
                kind = "folder"
            elif de.is_file(follow_symlinks=False):
                kind = "file"
            else:
                kind = "special"
            found.append((de.name, kind))
    for name, kind in sorted(found):
        p = folder / name
        if kind == "link":
            if links == "refuse":
                raise _link_error(p)
            if links == "skip":
                continue
        elif kind == "special":
            if special == "refuse":
                why = _kind(os.lstat(p).st_mode)
                raise UnsafeFileError(p, f"not a regular file or folder ({why})")
            if special == "skip":
                continue
        yield Entry(p, prefix + name, kind)


def list_folder(
    path: str | Path,
    *,
    links: Policy = "refuse",
    special: Policy = "refuse",
    hidden: bool = True,
    match: str | None = None,
    missing_ok: bool = False,
    follow_links: bool = False,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[Entry]:
    """The entries of folder ``path``, sorted by name; the one way to list a user's or a
    run's folder.

    ``path`` itself must be a real folder: a link there is an ``UnsafeFileError`` unless
    ``follow_links`` (a folder the user typed, like ``open_regular``'s). ``links`` and
    ``special`` say what to do with a link or a FIFO/socket/device inside (see
    ``Policy``; the default refuses both). ``hidden=False`` leaves out names starting
    with a dot; ``match`` keeps names matching a shell pattern (``"step_*"``, applied
    after the policies, so a refused link is refused even if its name does not match).
    More than ``max_entries`` entries is a ``TooManyEntriesError``; a missing folder is
    ``FileNotFoundError`` (``[]`` when ``missing_ok``), a file ``NotADirectoryError``.
    """
    folder = Path(path)
    try:
        fd = _open_folder(folder, follow_links=follow_links)
    except FileNotFoundError:
        if missing_ok:
            return []
        raise
    try:
        budget = _Budget(folder, max_entries)
        entries = _scan(fd, folder, "", budget, links=links, special=special, hidden=hidden)
        return [e for e in entries if match is None or fnmatchcase(e.name, match)]
    finally:
        os.close(fd)


def walk_tree(
    path: str | Path,
    *,
    links: Policy = "refuse",
    special: Policy = "refuse",
    hidden: bool = True,
    follow_links: bool = False,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> list[Entry]:
    """Every entry under folder ``path`` (folders before what they hold, names sorted),
    with ``rel`` the POSIX path below ``path``; ``list_folder``'s rules at every level.

    Never descends through a link: each sub-folder is opened relative to its parent's fd
    with ``O_NOFOLLOW``, so a folder swapped for a link between listing and descending is
    refused, not followed. ``max_entries`` bounds the whole tree.
    """
    root = Path(path)
    budget = _Budget(root, max_entries)
    out: list[Entry] = []

    def scan(fd: int, folder: Path, prefix: str) -> Iterator[Entry]:
        entries = _scan(fd, folder, prefix, budget, links=links, special=special, hidden=hidden)
        return iter(list(entries))

    # depth-first: (fd of a folder, its entries still to visit); every fd on the stack is
    # closed in ``finally``, whatever raised
    stack: list[tuple[int, Iterator[Entry]]] = []
    try:
        fd = _open_folder(root, follow_links=follow_links)
        stack.append((fd, iter(())))
        stack[-1] = (fd, scan(fd, root, ""))
        while stack:
            dfd, todo = stack[-1]
            e = next(todo, None)
            if e is None:
                os.close(stack.pop()[0])
                continue
            out.append(e)
            if e.kind == "folder":
                sub = _open_folder(e.path, follow_links=False, dir_fd=dfd)
                stack.append((sub, iter(())))
                stack[-1] = (sub, scan(sub, e.path, e.rel + "/"))
    finally:
        for fd_, _ in stack:
            os.close(fd_)
    return out
