"""A library's lineage: the operations of a commit, the history log, and diffs between versions.

Exports ``Operation``, ``OpRecord``, ``HistoryEntry``, ``LibraryDiff``, ``read_history``,
``append_history``, ``history_line``, ``parent_of``, ``parent_map`` and ``diff_views``.

``<root>/.reskill/history.jsonl`` holds one JSON line per commit, checkout, rollback, prune
or logged event (a version-test decision, ...). Lines are only ever appended (and a torn
last line is trimmed by recovery, see ``reskill_gym.skills.store``), so lineage stays data:
a pruned version keeps its line. Credentials are redacted before a line is written, because
history is shared and kept.

>>> e = HistoryEntry(kind="commit", version="0123456789ab", parent=None, reason="seed")
>>> HistoryEntry.model_validate_json(history_line(e)).reason
'seed'
>>> parent_of([e], "0123456789ab") is None
True
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reskill_gym import safe_files
from reskill_gym.redaction import redact_obj
from reskill_gym.safe_text import clip_text
from reskill_gym.skills.errors import StoreError
from reskill_gym.skills.model import Skill, validate_name

if TYPE_CHECKING:  # pragma: no cover
    from reskill_gym.skills.view import LibraryView

__all__ = [
    "Operation",
    "OpRecord",
    "HistoryEntry",
    "LibraryDiff",
    "read_history",
    "append_history",
    "history_line",
    "parent_of",
    "parent_map",
    "diff_views",
]

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
#: A history file larger than this is refused (a real one grows by ~300 bytes a commit).
MAX_HISTORY_BYTES = 256 << 20
#: A longer line is skipped when read (reasons and events are clipped far below it).
MAX_HISTORY_LINE_BYTES = 1 << 20
#: Longest reason kept in a history line (a commit message, not a document).
MAX_REASON_CHARS = 8000


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Operation(BaseModel):
    """One change to a library: add, modify or delete a skill.

    >>> Operation.delete("old-skill").op
    'delete'
    """

    model_config = ConfigDict(frozen=True)

    op: Literal["add", "modify", "delete"]
    name: str
    skill: Skill | None = None

    @classmethod
    def add(cls, skill: Skill) -> Operation:
        """Add a new skill (fails if the name exists)."""
        return cls(op="add", name=skill.name, skill=skill)

    @classmethod
    def modify(cls, skill: Skill) -> Operation:
        """Replace an existing skill of the same name."""
        return cls(op="modify", name=skill.name, skill=skill)

    @classmethod
    def delete(cls, name: str) -> Operation:
        """Remove a skill."""
        return cls(op="delete", name=validate_name(name))


class OpRecord(BaseModel):
    """An operation as logged in history (no skill body)."""

    op: Literal["add", "modify", "delete"]
    name: str


class HistoryEntry(BaseModel):
    """One line of ``history.jsonl``.

    ``kind``: ``init`` (store created), ``commit`` (new version; ``head_moved`` says
    whether HEAD moved to it), ``checkout``/``rollback`` (HEAD moved to an existing
    version), ``prune`` (versions removed; see ``extra.removed``), ``event`` (anything
    logged with ``append_event``, e.g. a version-test decision, in ``extra``).
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    kind: Literal["init", "commit", "checkout", "rollback", "prune", "event"]
    version: str | None = None
    parent: str | None = None
    head_moved: bool = False
    operations: list[OpRecord] = Field(default_factory=list)
    reason: str = ""
    step: int | None = None
    time: str = Field(default_factory=_now)
    proposed_by: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class LibraryDiff(BaseModel):
    """What changed from ``old`` to ``new``; ``patches`` holds unified diffs of SKILL.md."""

    old: str
    new: str
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)
    patches: dict[str, str] = Field(default_factory=dict)


def history_line(entry: HistoryEntry) -> str:
    """One history record as JSON, credentials redacted (history is shared and kept).

    Bounded: the reason is clipped to ``MAX_REASON_CHARS`` (with a marker), and an ``extra``
    that would push the line past ``MAX_HISTORY_LINE_BYTES`` is replaced by its clipped
    JSON, so every line written is one ``read_history`` reads back.
    """
    data = redact_obj(entry.model_dump(mode="json"))
    data["reason"] = clip_text(data["reason"], MAX_REASON_CHARS)
    if data.get("proposed_by"):
        data["proposed_by"] = clip_text(data["proposed_by"], 200)
    line = json.dumps(data, ensure_ascii=False)
    if len(line.encode("utf-8")) > MAX_HISTORY_LINE_BYTES // 2:
        extra = json.dumps(data["extra"], ensure_ascii=False, default=str)
        data["extra"] = {"clipped": clip_text(extra, MAX_HISTORY_LINE_BYTES // 16)}
        line = json.dumps(data, ensure_ascii=False)
    return line


def append_history(store: Path, entry: HistoryEntry) -> None:
    """Append ``entry`` to ``<store>/history.jsonl`` and fsync (never through a link)."""
    line = history_line(entry) + "\n"
    p = store / HISTORY_FILE
    try:
        fh = safe_files.open_append(p)
    except safe_files.UnsafeFileError as exc:
        raise StoreError(f"{p}: {exc.strerror}; a library store holds only regular files") from None
    with fh:
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def read_history(store: Path, *, last: int | None = None) -> list[HistoryEntry]:
    """Entries of ``<store>/history.jsonl``, oldest first (``last``: only the newest N).

    An unreadable line is skipped with a warning: history is a log, and one bad line must
    not make the library unusable.
    """
    p = store / HISTORY_FILE
    if last == 0:
        return []
    try:
        raw = safe_files.read_bytes(p, max_bytes=MAX_HISTORY_BYTES)
    except FileNotFoundError:
        return []
    except safe_files.UnsafeFileError as exc:
        raise StoreError(f"{p}: {exc.strerror}; a library store holds only regular files") from None
    lines = raw.split(b"\n")
    first = 0 if last is None else max(0, len(lines) - last - 1)
    out = []
    for i in range(first, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if len(line) > MAX_HISTORY_LINE_BYTES:
            logger.warning("%s: skipping line %d (over %d bytes)", p, i + 1, MAX_HISTORY_LINE_BYTES)
            continue
        try:
            out.append(HistoryEntry.model_validate_json(line.decode("utf-8", "replace")))
        except ValueError:
            logger.warning("%s: skipping unreadable line %d", p, i + 1)
    return out if last is None else out[-last:]


def parent_of(entries: Iterable[HistoryEntry], version: str) -> str | None:
    """The version ``version`` was committed on top of (None for the first or unknown)."""
    return parent_map(entries).get(version)


def parent_map(entries: Iterable[HistoryEntry]) -> dict[str, str | None]:
    """``{version: parent}`` of every commit and init (the latest line of a version wins).

    >>> e = HistoryEntry(kind="commit", version="0123456789ab", parent="ba9876543210")
    >>> parent_map([e])
    {'0123456789ab': 'ba9876543210'}
    """
    return {
        e.version: e.parent
        for e in entries
        if e.version is not None and e.kind in ("init", "commit")
    }


def diff_views(a: LibraryView, b: LibraryView) -> LibraryDiff:
    """Skills added, removed and modified from view ``a`` to view ``b``, with patches."""
    d = LibraryDiff(old=a.version, new=b.version)
    d.added = sorted(set(b.names) - set(a.names))
    d.removed = sorted(set(a.names) - set(b.names))
    for name in sorted(set(a.names) & set(b.names)):
        if a.text(name) != b.text(name):
            d.modified.append(name)
    for name in d.added + d.removed + d.modified:
        ta = a.text(name) if name in a else ""
        tb = b.text(name) if name in b else ""
        d.patches[name] = "".join(
            difflib.unified_diff(
                ta.splitlines(keepends=True),
                tb.splitlines(keepends=True),
                fromfile=f"{a.version}/{name}/SKILL.md",
                tofile=f"{b.version}/{name}/SKILL.md",
            )
        )
    return d
