"""The write protocol of a skill library: journal, commit point, recovery.

Exports ``initialise``, ``journal_and_move``, ``needs_recovery`` and ``recover``.

Crash safety: a commit writes blobs, then the version object (``reskill_gym.skills.store``),
then the journal (``PENDING.json``), then moves ``HEAD`` (one atomic rename: the commit
point), appends the history line, rewrites the working copy, updates ``WORKTREE`` and
removes the journal. ``recover`` (run when a library is opened and before every write)
replays or discards a journal left by a killed process, trims a torn last history line,
and re-syncs a half-written working copy, so a kill at any point leaves either the
previous version or the new one, complete. Callers hold the store lock
(``store.hold_lock``) around every function here except ``needs_recovery``.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / ".reskill").mkdir()
>>> initialise(root, {}, reason="empty", proposed_by="doc")
>>> needs_recovery(root)
False
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text, fsync_dir
from reskill_gym.skills import store
from reskill_gym.skills.errors import LibraryError, StoreError
from reskill_gym.skills.history import (
    HISTORY_FILE,
    HistoryEntry,
    OpRecord,
    append_history,
    history_line,
    read_history,
)
from reskill_gym.skills.worktree import check_worktree, sync_worktree

__all__ = ["initialise", "journal_and_move", "needs_recovery", "recover"]

logger = logging.getLogger(__name__)

PENDING = "PENDING.json"
MAX_PENDING_BYTES = 1 << 20


def _head(root: Path) -> str:
    v = store.read_ref(root / store.STORE, "HEAD")
    if v is None:
        raise LibraryError(f"{root / store.STORE / 'HEAD'}: empty")
    return v


def initialise(
    root: Path,
    tree_files: Mapping[str, Mapping[str, bytes]],
    *,
    reason: str,
    proposed_by: str,
) -> None:
    """Write the first version of a new store (``<root>/.reskill`` exists, holds no HEAD).

    ``tree_files``: ``{skill name: {relative path: bytes}}``, already read and checked.
    ``HEAD`` is written last, so a store without it is an unfinished one.
    """
    path = root / store.STORE
    tree: dict[str, dict[str, str]] = {}
    for name, files in tree_files.items():
        tree[name] = {rel: store.put_blob(path, data) for rel, data in files.items()}
    vid = store.put_version(path, tree)
    entry = HistoryEntry(
        kind="init",
        version=vid,
        head_moved=True,
        operations=[OpRecord(op="add", name=n) for n in sorted(tree)],
        reason=reason,
        proposed_by=proposed_by,
    )
    append_history(path, entry)
    store.write_ref(path, "WORKTREE", vid)
    store.write_ref(path, "HEAD", vid)
    logger.info("initialised skill library %s at %s (%d skills)", root, vid, len(tree))


def _history_is_clean(path: Path) -> bool:
    p = path / HISTORY_FILE
    try:
        fh = safe_files.open_regular(p)
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise StoreError(f"{p}: {exc.strerror}; a library store holds only regular files") from None
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _logged(path: Path, entry: HistoryEntry) -> bool:
    return entry.id in {h.id for h in read_history(path, last=20)}


def needs_recovery(root: Path) -> bool:
    """Whether a killed writer left work behind (a journal, a torn line, a stale copy)."""
    path = root / store.STORE
    return (
        os.path.lexists(path / PENDING)
        or store.read_ref(path, "WORKTREE") != _head(root)
        or not _history_is_clean(path)
    )


def recover(root: Path) -> None:
    """Finish or discard an interrupted write (idempotent; the caller holds the lock)."""
    path = root / store.STORE
    hist = path / HISTORY_FILE
    if not _history_is_clean(path):
        with safe_files.open_regular(hist) as fh:  # checked just above: a regular file
            data = fh.read()
        keep = data[: data.rfind(b"\n") + 1]
        logger.warning("%s: dropping a torn last history line", hist)
        fd = os.open(hist, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.ftruncate(fd, len(keep))
            os.fsync(fd)
        finally:
            os.close(fd)
    pending = path / PENDING
    if os.path.lexists(pending):
        try:
            raw = store.read_store_file(pending, MAX_PENDING_BYTES)
            entry: HistoryEntry | None = HistoryEntry.model_validate_json(raw)
        except (ValueError, StoreError) as exc:
            logger.warning("%s: unreadable journal discarded (%s)", pending, exc)
            entry = None
        if entry is not None and entry.head_moved and _head(root) == entry.version:
            if not _logged(path, entry):
                logger.warning("completing interrupted commit %s", entry.version)
                append_history(path, entry)
        elif entry is not None and not entry.head_moved:
            if not _logged(path, entry):
                append_history(path, entry)
        else:
            logger.warning("discarding interrupted commit (HEAD was not moved)")
        pending.unlink()
        fsync_dir(path)
    head = _head(root)
    worktree = store.read_ref(path, "WORKTREE")
    if worktree != head:
        logger.warning("re-writing the working copy of %s at %s", root, head)
        sync_worktree(root, worktree, head)  # keeps what it did not write (see there)


def journal_and_move(root: Path, entry: HistoryEntry, new_head: str | None) -> None:
    """Record ``entry`` crash-safely and, with ``new_head``, move HEAD and the working copy.

    The journal is written first; moving ``HEAD`` is the commit point (see the module
    docstring). A working copy that cannot be rewritten safely refuses before it.
    """
    path = root / store.STORE
    old_head = _head(root)
    if new_head is not None:  # refuse before the commit point, not half-way through
        store.read_version_blobs(root, new_head)  # a corrupt blob must not move HEAD
        check_worktree(root, store.read_ref(path, "WORKTREE") or old_head, new_head)
    atomic_write_text(path / PENDING, history_line(entry))
    store._crash_point("pending-written")
    if new_head is not None:
        store.write_ref(path, "HEAD", new_head)
        store._crash_point("head-moved")
    append_history(path, entry)
    store._crash_point("history-appended")
    if new_head is not None:
        sync_worktree(root, store.read_ref(path, "WORKTREE") or old_head, new_head)
    (path / PENDING).unlink()
    fsync_dir(path)
