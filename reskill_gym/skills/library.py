"""``SkillLibrary``: an on-disk, versioned, crash-safe skill store, and its read-only views.

Exports: ``SkillLibrary``, ``LibraryView``, ``Operation``, ``HistoryEntry``,
``LibraryDiff``, ``content_version``.

Layout of a library folder (the root stays a plain, human-editable folder of spec-valid
skills that any Claude-compatible tool reads; the store lives beside it)::

    <root>/
      <skill-name>/SKILL.md        working copy of HEAD (rewritten on commit/checkout)
      .reskill/
        HEAD                       the live version id
        WORKTREE                   the version the working copy was last written from
        PENDING.json               journal of a commit in flight (absent when idle)
        versions/<id>.json         {name: {relative path: blob sha256}}, immutable
        objects/<sh>/<sha256>      file contents, content-addressed, immutable
        history.jsonl              one JSON line per commit/checkout/rollback/prune/event
        lock                       file lock; every write holds it

A version id is the first 12 hex digits of the SHA-256 of the canonical JSON of its
``{name: {path: blob}}`` map: the same skills give the same id, here or from a plain
folder (``LibraryView.from_folder``).

Crash safety: a commit writes blobs, then the version object, then the journal
(``PENDING.json``), then moves ``HEAD`` (one atomic rename: the commit point), appends the
history line, rewrites the working copy, updates ``WORKTREE`` and removes the journal.
Opening a library replays or discards a journal left by a killed process, trims a torn
last history line, and re-syncs a half-written working copy, so a kill at any point
leaves either the previous version or the new one, complete. All writes hold the lock.

Hand edits: edit ``<root>/<name>/SKILL.md`` and call ``snapshot()`` (``reskill skills
snapshot``) to record them as a version; ``commit`` refuses to overwrite unrecorded edits.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reskill_gym.atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from reskill_gym.skills.bundle import (
    DEFAULT_BUDGET_CHARS,
    DEFAULT_MAX_ACTIVE_SKILLS,
    DEFAULT_TEMPLATE,
    Bundle,
    BundleSelector,
    BundleTemplate,
    TurnContext,
)
from reskill_gym.skills.errors import LibraryError, SkillError
from reskill_gym.skills.model import MAX_SKILL_CONTENT_CHARS, Skill, validate_name
from reskill_gym.skills.skillmd import find_skill_md, parse_skill_md, render_skill_md

__all__ = [
    "SkillLibrary",
    "LibraryView",
    "Operation",
    "HistoryEntry",
    "LibraryDiff",
    "content_version",
]

logger = logging.getLogger(__name__)

STORE = ".reskill"
VERSION_ID_CHARS = 12
MAX_FILE_BYTES = 1 << 20


def _crash_point(name: str) -> None:
    """No-op marker between the steps of a write; tests replace it to kill a process there."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_version(tree: Mapping[str, Mapping[str, str]]) -> str:
    """Version id of a ``{skill name: {relative path: blob sha256}}`` map.

    >>> content_version({}) == content_version({})
    True
    >>> len(content_version({"a": {"SKILL.md": "00"}}))
    12
    """
    canon = json.dumps(
        {n: dict(sorted(f.items())) for n, f in sorted(tree.items())},
        sort_keys=True,
        separators=(",", ":"),
    )
    return _sha(canon.encode())[:VERSION_ID_CHARS]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _skill_files(folder: Path) -> dict[str, bytes]:
    """Files of one skill folder (hidden files and caches skipped), by relative path."""
    out: dict[str, bytes] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if p.is_file():
            if p.stat().st_size > MAX_FILE_BYTES:
                raise SkillError(f"file is over {MAX_FILE_BYTES} bytes", path=p)
            out[rel.as_posix()] = p.read_bytes()
    return out


def _skill_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise LibraryError(f"{root}: not a folder")
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and find_skill_md(p)
    )


def _skill_md_key(files: Mapping[str, Any]) -> str:
    return "SKILL.md" if "SKILL.md" in files else "skill.md"


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


_VIEW_CACHE: OrderedDict[tuple[str, str, str], LibraryView] = OrderedDict()
_VIEW_CACHE_SIZE = 32


def _restore_view(kind: str, path: str, version: str) -> LibraryView:
    key = (kind, path, version)
    view = _VIEW_CACHE.get(key)
    if view is None:
        if kind == "library":
            view = SkillLibrary._read_view(Path(path), version)
        else:
            view = LibraryView.from_folder(path)
            if view.version != version:
                raise LibraryError(
                    f"{path}: folder changed since the view was pickled "
                    f"(was {version}, now {view.version})"
                )
        _VIEW_CACHE[key] = view
        if len(_VIEW_CACHE) > _VIEW_CACHE_SIZE:
            _VIEW_CACHE.popitem(last=False)
    return view


class LibraryView:
    """An immutable set of skills at one version: what an environment sees.

    Pickles as (source path, version) and reloads in the worker, so sending a view to
    a rollout process costs a few bytes.

    >>> import tempfile, pathlib
    >>> from reskill_gym.skills.model import Trigger
    >>> from reskill_gym.skills.skillmd import write_skill
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_skill(Skill(name="plan", description="Plan.", content="Make a plan.",
    ...                       trigger=Trigger(type="beginning")), d)
    >>> view = LibraryView.from_folder(d)
    >>> view.names, len(view.version)
    (('plan',), 12)
    >>> view.select(TurnContext(0, None, "", "a task")).skill_ids
    ('plan@1',)
    """

    __slots__ = ("_version", "_skills", "_by_name", "_texts", "_source", "_selector", "_frozen")

    def __init__(
        self,
        version: str,
        skills: Iterable[Skill],
        texts: Mapping[str, str] | None = None,
        source: tuple[str, str] | None = None,
    ) -> None:
        ordered = tuple(sorted(skills, key=lambda s: s.name))
        object.__setattr__(self, "_version", version)
        object.__setattr__(self, "_skills", ordered)
        object.__setattr__(self, "_by_name", MappingProxyType({s.name: s for s in ordered}))
        object.__setattr__(self, "_texts", MappingProxyType(dict(texts or {})))
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_selector", None)
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("LibraryView is immutable; commit a new version instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("LibraryView is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        if self._source is None:
            return (LibraryView, (self._version, self._skills, dict(self._texts)))
        return (_restore_view, (*self._source, self._version))

    @classmethod
    def from_folder(
        cls, path: str | Path, *, max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS
    ) -> LibraryView:
        """Read-only view of any folder of skill folders (writes nothing).

        ``path`` may also be a single skill folder. The version is the content hash.
        """
        root = Path(path)
        dirs = [root] if find_skill_md(root) else _skill_dirs(root)
        tree: dict[str, dict[str, str]] = {}
        skills: list[Skill] = []
        texts: dict[str, str] = {}
        for d in dirs:
            files = _skill_files(d)
            tree[d.name] = {rel: _sha(data) for rel, data in files.items()}
            key = _skill_md_key(files)
            text = files[key].decode("utf-8")
            skills.append(
                parse_skill_md(
                    text, path=d / key, dir_name=d.name, max_content_chars=max_content_chars
                )
            )
            texts[d.name] = text
        return cls(content_version(tree), skills, texts, ("folder", str(root.resolve())))

    @property
    def version(self) -> str:
        """The content-addressed version id."""
        return self._version

    @property
    def skills(self) -> tuple[Skill, ...]:
        """All skills, sorted by name."""
        return self._skills

    @property
    def names(self) -> tuple[str, ...]:
        """Skill names, sorted."""
        return tuple(self._by_name)

    def get(self, name: str) -> Skill:
        """The skill called ``name``; ``KeyError`` with close matches if absent."""
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._by_name), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"no skill {name!r} in version {self._version}{hint}") from None

    def text(self, name: str) -> str:
        """The SKILL.md text of ``name`` as stored (rendered if the view was built in memory)."""
        return self._texts.get(name) or render_skill_md(self.get(name))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills)

    def __len__(self) -> int:
        return len(self._skills)

    def __repr__(self) -> str:
        return f"LibraryView(version={self._version!r}, skills={len(self._skills)})"

    @property
    def selector(self) -> BundleSelector:
        """The pre-indexed bundle selector (built on first use, then kept)."""
        if self._selector is None:
            object.__setattr__(self, "_selector", BundleSelector(self._skills))
        return self._selector  # type: ignore[return-value]

    def select(
        self,
        ctx: TurnContext,
        *,
        max_active_skills: int = DEFAULT_MAX_ACTIVE_SKILLS,
        budget_chars: int | None = DEFAULT_BUDGET_CHARS,
        template: BundleTemplate = DEFAULT_TEMPLATE,
    ) -> Bundle:
        """The bundle for one turn (see ``reskill_gym.skills.bundle``)."""
        return self.selector.select(
            ctx, max_active_skills=max_active_skills, budget_chars=budget_chars, template=template
        )


class SkillLibrary:
    """On-disk versioned skill store (see the module docstring for the layout).

    >>> import tempfile, pathlib
    >>> from reskill_gym.skills.model import Trigger
    >>> lib = SkillLibrary.open(pathlib.Path(tempfile.mkdtemp()), create=True)
    >>> v1 = lib.commit([Skill(name="plan", description="Plan.", content="Plan first.",
    ...                        trigger=Trigger(type="beginning"))], reason="seed", step=0)
    >>> lib.head == v1, lib.view().names
    (True, ('plan',))
    >>> [e.kind for e in lib.history()]
    ['init', 'commit']
    """

    def __init__(
        self,
        root: str | Path,
        *,
        lock_timeout: float = 60.0,
        max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS,
    ) -> None:
        self.root = Path(root)
        self.store = self.root / STORE
        self.lock_timeout = lock_timeout
        self.max_content_chars = max_content_chars
        self._views: OrderedDict[str, LibraryView] = OrderedDict()
        if not (self.store / "HEAD").is_file():
            raise LibraryError(
                f"{self.root}: not a skill library (no {STORE}/HEAD); "
                "use SkillLibrary.open(path, create=True) or `reskill skills init`"
            )

    # ---- opening ------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        reason: str = "initial import",
        proposed_by: str = "user",
        lock_timeout: float = 60.0,
        max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS,
    ) -> SkillLibrary:
        """Open the library at ``path``, recovering from an interrupted write.

        With ``create=True`` a plain folder (e.g. a seed library of skill folders, or an
        empty or missing folder) becomes a library whose first version holds the skill
        folders found there.
        """
        root = Path(path)
        store = root / STORE
        if not (store / "HEAD").is_file():
            if not create:
                raise LibraryError(
                    f"{root}: not a skill library (no {STORE}/HEAD); pass create=True to "
                    "initialise it from the skill folders there"
                )
            root.mkdir(parents=True, exist_ok=True)
            store.mkdir(exist_ok=True)
            with cls._lock_for(store, lock_timeout):
                if not (store / "HEAD").is_file():
                    cls._initialise(root, reason, proposed_by, max_content_chars)
        lib = cls(root, lock_timeout=lock_timeout, max_content_chars=max_content_chars)
        lib.recover()
        return lib

    @staticmethod
    def _lock_for(store: Path, timeout: float) -> Any:
        from filelock import FileLock

        return FileLock(str(store / "lock"), timeout=timeout)

    def _lock(self) -> Any:
        from filelock import Timeout

        lock = self._lock_for(self.store, self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise LibraryError(
                f"{self.store / 'lock'}: another process holds the library lock "
                f"for more than {self.lock_timeout}s"
            ) from None
        return _Held(lock)

    @classmethod
    def _initialise(
        cls, root: Path, reason: str, proposed_by: str, max_content_chars: int | None
    ) -> None:
        store = root / STORE
        tree: dict[str, dict[str, str]] = {}
        for d in _skill_dirs(root):
            files = _skill_files(d)
            key = _skill_md_key(files)
            parse_skill_md(
                files[key].decode("utf-8"),
                path=d / key,
                dir_name=d.name,
                max_content_chars=max_content_chars,
            )
            tree[d.name] = {rel: cls._put_blob(store, data) for rel, data in files.items()}
        vid = cls._put_version(store, tree)
        entry = HistoryEntry(
            kind="init",
            version=vid,
            head_moved=True,
            operations=[OpRecord(op="add", name=n) for n in sorted(tree)],
            reason=reason,
            proposed_by=proposed_by,
        )
        cls._append(store, entry)
        atomic_write_text(store / "WORKTREE", vid + "\n")
        atomic_write_text(store / "HEAD", vid + "\n")
        logger.info("initialised skill library %s at %s (%d skills)", root, vid, len(tree))

    def recover(self) -> None:
        """Finish or discard a write interrupted by a killed process (idempotent)."""
        needs = (
            (self.store / "PENDING.json").exists()
            or self._read_ref("WORKTREE") != self.head
            or not self._history_is_clean()
        )
        if not needs:
            return
        with self._lock():
            self._recover_locked()

    def _history_is_clean(self) -> bool:
        p = self.store / "history.jsonl"
        if not p.exists() or p.stat().st_size == 0:
            return True
        with open(p, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _recover_locked(self) -> None:
        hist = self.store / "history.jsonl"
        if not self._history_is_clean():
            data = hist.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]
            logger.warning("%s: dropping a torn last history line", hist)
            with open(hist, "r+b") as fh:
                fh.truncate(len(keep))
                fh.flush()
                os.fsync(fh.fileno())
        pending = self.store / "PENDING.json"
        if pending.exists():
            try:
                entry = HistoryEntry.model_validate_json(pending.read_text())
            except ValueError:
                entry = None
            if entry is not None and entry.head_moved and self.head == entry.version:
                if entry.id not in {e.id for e in self.history(last=20)}:
                    logger.warning("completing interrupted commit %s", entry.version)
                    self._append(self.store, entry)
            elif entry is not None and not entry.head_moved:
                if entry.id not in {e.id for e in self.history(last=20)}:
                    self._append(self.store, entry)
            else:
                logger.warning("discarding interrupted commit (HEAD was not moved)")
            pending.unlink()
            fsync_dir(self.store)
        head = self.head
        if self._read_ref("WORKTREE") != head:
            logger.warning("re-writing the working copy of %s at %s", self.root, head)
            self._sync_worktree(self._read_ref("WORKTREE"), head)

    # ---- low-level store ----------------------------------------------------------
    @staticmethod
    def _put_blob(store: Path, data: bytes) -> str:
        sha = _sha(data)
        p = store / "objects" / sha[:2] / sha
        if not p.exists():
            atomic_write_bytes(p, data)
        return sha

    @staticmethod
    def _put_version(store: Path, tree: Mapping[str, Mapping[str, str]]) -> str:
        vid = content_version(tree)
        p = store / "versions" / f"{vid}.json"
        if not p.exists():
            body = json.dumps({"version": vid, "skills": tree}, sort_keys=True, indent=1)
            atomic_write_text(p, body + "\n")
        return vid

    @staticmethod
    def _append(store: Path, entry: HistoryEntry) -> None:
        line = entry.model_dump_json() + "\n"
        p = store / "history.jsonl"
        with open(p, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _read_ref(self, name: str) -> str | None:
        try:
            return (self.store / name).read_text().strip() or None
        except FileNotFoundError:
            return None

    @staticmethod
    def _read_tree(root: Path, version: str) -> dict[str, dict[str, str]]:
        p = root / STORE / "versions" / f"{version}.json"
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise LibraryError(f"{root}: version {version} does not exist (pruned?)") from None
        return data["skills"]

    @staticmethod
    def _blob(root: Path, sha: str) -> bytes:
        return (root / STORE / "objects" / sha[:2] / sha).read_bytes()

    @classmethod
    def _read_view(cls, root: Path, version: str) -> LibraryView:
        tree = cls._read_tree(root, version)
        skills, texts = [], {}
        for name, files in sorted(tree.items()):
            key = _skill_md_key(files)
            text = cls._blob(root, files[key]).decode("utf-8")
            where = f"{root / STORE / 'versions' / version}.json:{name}/{key}"
            skills.append(parse_skill_md(text, path=where, dir_name=name, max_content_chars=None))
            texts[name] = text
        return LibraryView(version, skills, texts, ("library", str(root.resolve())))

    # ---- reading ------------------------------------------------------------------
    @property
    def head(self) -> str:
        """The live version id (read from disk each time: other processes may move it)."""
        v = self._read_ref("HEAD")
        if v is None:
            raise LibraryError(f"{self.store / 'HEAD'}: empty")
        return v

    def versions(self) -> list[str]:
        """Ids of all stored (not pruned) versions."""
        return sorted(p.stem for p in (self.store / "versions").glob("*.json"))

    def resolve(self, ref: str) -> str:
        """A version id from ``HEAD``, ``HEAD~N``, a full id or a unique prefix (>= 4)."""
        ref = ref.strip()
        if ref == "HEAD" or ref.startswith("HEAD~"):
            n = int(ref[5:] or 0) if ref != "HEAD" else 0
            v: str | None = self.head
            for _ in range(n):
                v = self.parent_of(v)  # type: ignore[arg-type]
                if v is None:
                    raise LibraryError(f"{ref}: history is shorter than {n} versions")
            return v  # type: ignore[return-value]
        known = self.versions()
        if ref in known:
            return ref
        matches = [v for v in known if v.startswith(ref)] if len(ref) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise LibraryError(f"version prefix {ref!r} is ambiguous: {', '.join(matches)}")
        logged = {e.version for e in self.history() if e.version}
        if any(v.startswith(ref) for v in logged):
            raise LibraryError(f"version {ref} was pruned; its history line remains")
        close = difflib.get_close_matches(ref, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LibraryError(f"{self.root}: unknown version {ref!r}{hint}")

    def view(self, version: str | None = None) -> LibraryView:
        """Immutable view of ``version`` (default HEAD); cached per version."""
        vid = self.head if version is None else self.resolve(version)
        view = self._views.get(vid)
        if view is None:
            view = self._read_view(self.root, vid)
            self._views[vid] = view
            if len(self._views) > 16:
                self._views.popitem(last=False)
        return view

    def history(self, *, last: int | None = None) -> list[HistoryEntry]:
        """History entries, oldest first (``last``: only the newest N)."""
        p = self.store / "history.jsonl"
        if not p.exists():
            return []
        lines = p.read_text(encoding="utf-8").splitlines()
        if last is not None:
            lines = lines[-last:]
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(HistoryEntry.model_validate_json(line))
            except ValueError:
                logger.warning("%s: skipping unreadable line %d", p, i + 1)
        return out

    def parent_of(self, version: str) -> str | None:
        """The version ``version`` was committed on top of (None for the first)."""
        for e in reversed(self.history()):
            if e.version == version and e.kind in ("init", "commit"):
                return e.parent
        return None

    def diff(self, old: str, new: str) -> LibraryDiff:
        """Skills added, removed and modified from ``old`` to ``new``, with patches."""
        a, b = self.view(old), self.view(new)
        d = LibraryDiff(old=a.version, new=b.version)
        d.added = sorted(set(b.names) - set(a.names))
        d.removed = sorted(set(a.names) - set(b.names))
        for name in sorted(set(a.names) & set(b.names)):
            ta, tb = a.text(name), b.text(name)
            if ta != tb:
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

    def status(self) -> dict[str, list[str]]:
        """Hand edits in the working copy relative to the version it was written from."""
        base = self._read_ref("WORKTREE") or self.head
        tree = self._read_tree(self.root, base)
        on_disk = {d.name: d for d in _skill_dirs(self.root)}
        st: dict[str, list[str]] = {"added": [], "modified": [], "deleted": []}
        for name in sorted(set(on_disk) | set(tree)):
            if name not in tree:
                st["added"].append(name)
            elif name not in on_disk:
                st["deleted"].append(name)
            else:
                files = {r: _sha(b) for r, b in _skill_files(on_disk[name]).items()}
                if files != tree[name]:
                    st["modified"].append(name)
        return st

    # ---- writing ------------------------------------------------------------------
    def commit(
        self,
        changes: Iterable[Operation | Skill],
        *,
        reason: str,
        step: int | None = None,
        proposed_by: str = "user",
        extra: Mapping[str, Any] | None = None,
        set_head: bool = True,
        base: str | None = None,
        replace: bool = False,
    ) -> str:
        """Apply ``changes`` on top of ``base`` (default HEAD) and store the new version.

        ``changes``: ``Operation`` objects, or ``Skill`` objects (upsert: add if new,
        modify if the name exists). ``replace=True`` deletes skills not mentioned.
        A modified skill's ``version`` is bumped past the old one; missing
        ``created_at_step`` and provenance fields are filled from this commit.
        Returns the new version id (the base id if nothing changed).
        """
        with self._lock():
            self._recover_locked()
            base_id = self.head if base is None else self.resolve(base)
            if set_head:
                self._refuse_dirty()
            tree = {n: dict(f) for n, f in self._read_tree(self.root, base_id).items()}
            old_view = self.view(base_id)
            ops = self._normalise(changes, old_view, replace)
            records: list[OpRecord] = []
            for op in ops:
                if op.op == "delete":
                    tree.pop(op.name)
                else:
                    skill = self._complete(op, old_view, base_id, reason, step, proposed_by)
                    text = render_skill_md(skill)
                    files = dict(tree.get(op.name, {})) if op.op == "modify" else {}
                    files.pop("skill.md", None)
                    files["SKILL.md"] = self._put_blob(self.store, text.encode("utf-8"))
                    tree[op.name] = files
                records.append(OpRecord(op=op.op, name=op.name))
            _crash_point("blobs-written")
            vid = self._put_version(self.store, tree)
            _crash_point("version-written")
            if vid == base_id:
                logger.info("commit %r changes nothing; version stays %s", reason, vid)
                return vid
            entry = HistoryEntry(
                kind="commit",
                version=vid,
                parent=base_id,
                head_moved=set_head,
                operations=records,
                reason=reason,
                step=step,
                proposed_by=proposed_by,
                extra=dict(extra or {}),
            )
            self._journal_and_move(entry, vid if set_head else None)
            logger.info("committed %s (parent %s): %s", vid, base_id, reason)
            return vid

    def _normalise(
        self, changes: Iterable[Operation | Skill], old: LibraryView, replace: bool
    ) -> list[Operation]:
        ops: list[Operation] = []
        seen: set[str] = set()
        for ch in changes:
            if isinstance(ch, Skill):
                ch = Operation.modify(ch) if ch.name in old else Operation.add(ch)
            if not isinstance(ch, Operation):
                raise TypeError(f"commit takes Operation or Skill objects, not {type(ch)!r}")
            if ch.name in seen:
                raise LibraryError(f"two operations on skill {ch.name!r} in one commit")
            seen.add(ch.name)
            if ch.op == "add" and ch.name in old:
                raise LibraryError(
                    f"cannot add {ch.name!r}: it exists in {old.version} (modify it)"
                )
            if ch.op in ("modify", "delete") and ch.name not in old:
                raise LibraryError(
                    f"cannot {ch.op} {ch.name!r}: not in {old.version} (skills: "
                    f"{', '.join(old.names) or 'none'})"
                )
            if ch.op != "delete":
                if ch.skill is None or ch.skill.name != ch.name:
                    raise LibraryError(f"{ch.op} {ch.name!r} needs a skill with that name")
                ch.skill.check_content_limit(self.max_content_chars)
                if ch.op == "modify" and ch.skill == old.get(ch.name):
                    continue  # unchanged: not an operation
            ops.append(ch)
        if replace:
            ops += [Operation.delete(n) for n in old.names if n not in seen]
        return ops

    @staticmethod
    def _complete(
        op: Operation,
        old: LibraryView,
        base_id: str,
        reason: str,
        step: int | None,
        proposed_by: str,
    ) -> Skill:
        skill = op.skill
        assert skill is not None
        changes: dict[str, Any] = {}
        prov = skill.provenance
        created = skill.created_at_step
        if op.op == "modify":
            prev = old.get(op.name)
            if skill.version <= prev.version:
                changes["version"] = prev.version + 1
            if prov == prev.provenance:  # edited copy of the old skill: new lineage
                prov = type(prov)()
            if created == prev.created_at_step:
                created = None
        if created is None and step is not None:
            changes["created_at_step"] = step
        elif created != skill.created_at_step:
            changes["created_at_step"] = created
        filled = {
            "proposed_by": prov.proposed_by or proposed_by,
            "rationale": prov.rationale or (reason.replace("---", "-").strip() or None),
            "parent_version": prov.parent_version or base_id,
        }
        if filled != prov.model_dump():
            changes["provenance"] = filled
        return skill.replace(**changes) if changes else skill

    def _refuse_dirty(self) -> None:
        st = self.status()
        dirty = {k: v for k, v in st.items() if v}
        if dirty:
            desc = "; ".join(f"{k}: {', '.join(v)}" for k, v in dirty.items())
            raise LibraryError(
                f"{self.root}: the working copy has edits not recorded in a version ({desc}); "
                "record them with snapshot() / `reskill skills snapshot`, or revert them"
            )

    def _journal_and_move(self, entry: HistoryEntry, new_head: str | None) -> None:
        old_head = self.head
        atomic_write_text(self.store / "PENDING.json", entry.model_dump_json())
        _crash_point("pending-written")
        if new_head is not None:
            atomic_write_text(self.store / "HEAD", new_head + "\n")
            _crash_point("head-moved")
        self._append(self.store, entry)
        _crash_point("history-appended")
        if new_head is not None:
            self._sync_worktree(self._read_ref("WORKTREE") or old_head, new_head)
        (self.store / "PENDING.json").unlink()
        fsync_dir(self.store)

    def _sync_worktree(self, old: str | None, new: str) -> None:
        old_tree = self._read_tree(self.root, old) if old else {}
        new_tree = self._read_tree(self.root, new)
        for name in sorted(set(old_tree) | set(new_tree)):
            folder = self.root / name
            if name not in new_tree:
                if folder.exists():
                    shutil.rmtree(folder)
                continue
            on_disk = _skill_files(folder) if folder.is_dir() else {}
            want = new_tree[name]
            for rel, sha in want.items():
                if rel not in on_disk or _sha(on_disk[rel]) != sha:
                    atomic_write_bytes(folder / rel, self._blob(self.root, sha))
                    _crash_point("worktree-file-written")
            for rel in set(on_disk) - set(want):
                (folder / rel).unlink()
        atomic_write_text(self.store / "WORKTREE", new + "\n")

    def _move_head(self, version: str, kind: Literal["checkout", "rollback"], reason: str) -> str:
        with self._lock():
            self._recover_locked()
            self._refuse_dirty()
            old = self.head
            entry = HistoryEntry(
                kind=kind, version=version, parent=old, head_moved=True, reason=reason
            )
            self._journal_and_move(entry, version)
            return version

    def checkout(self, version: str, *, reason: str = "") -> str:
        """Move HEAD to an existing ``version`` (ref or prefix); rewrites the working copy."""
        vid = self.resolve(version)
        return self._move_head(vid, "checkout", reason or f"checkout {vid}")

    def rollback(self, *, reason: str = "") -> str:
        """Move HEAD back to the parent of the current HEAD version."""
        head = self.head
        parent = self.parent_of(head)
        if parent is None:
            raise LibraryError(f"{self.root}: {head} has no parent to roll back to")
        self.resolve(parent)  # raises if pruned
        return self._move_head(parent, "rollback", reason or f"rollback from {head}")

    def snapshot(
        self,
        *,
        reason: str = "snapshot of the working copy",
        step: int | None = None,
        proposed_by: str = "user",
    ) -> str:
        """Record hand edits in the working copy as a new version (HEAD moves to it)."""
        with self._lock():
            self._recover_locked()
            base = self.head
            st = self.status()
            if not any(st.values()):
                return base
            tree: dict[str, dict[str, str]] = {}
            for d in _skill_dirs(self.root):
                files = _skill_files(d)
                key = _skill_md_key(files)
                parse_skill_md(
                    files[key].decode("utf-8"),
                    path=d / key,
                    dir_name=d.name,
                    max_content_chars=self.max_content_chars,
                )
                tree[d.name] = {rel: self._put_blob(self.store, b) for rel, b in files.items()}
            vid = self._put_version(self.store, tree)
            ops = [OpRecord(op="add", name=n) for n in st["added"]]
            ops += [OpRecord(op="modify", name=n) for n in st["modified"]]
            ops += [OpRecord(op="delete", name=n) for n in st["deleted"]]
            entry = HistoryEntry(
                kind="commit",
                version=vid,
                parent=base,
                head_moved=True,
                operations=ops,
                reason=reason,
                step=step,
                proposed_by=proposed_by,
            )
            self._journal_and_move(entry, vid)
            return vid

    def append_event(
        self,
        event: Mapping[str, Any],
        *,
        reason: str = "",
        step: int | None = None,
        version: str | None = None,
    ) -> HistoryEntry:
        """Log a non-version event (e.g. a version-test decision) in the history."""
        entry = HistoryEntry(
            kind="event", version=version, reason=reason, step=step, extra=dict(event)
        )
        with self._lock():
            self._append(self.store, entry)
        return entry

    def prune(self, keep: int = 5, referenced: Iterable[str] = ()) -> list[str]:
        """Delete stored versions except HEAD, ``referenced``, and the ``keep`` newest.

        History lines stay (lineage is data); blobs no kept version uses are removed.
        Returns the removed version ids.
        """
        with self._lock():
            self._recover_locked()
            kept: set[str] = {self.head, self._read_ref("WORKTREE") or self.head}
            kept |= {self.resolve(r) for r in referenced}
            newest: list[str] = []
            for e in reversed(self.history()):
                if e.version and e.kind != "event" and e.version not in newest:
                    newest.append(e.version)
                if len(newest) >= keep:
                    break
            kept |= set(newest)
            removed = [v for v in self.versions() if v not in kept]
            for v in removed:
                (self.store / "versions" / f"{v}.json").unlink()
            live = {
                sha
                for v in kept
                for files in self._read_tree(self.root, v).values()
                for sha in files.values()
            }
            for p in (self.store / "objects").glob("*/*"):
                if p.name not in live:
                    p.unlink()
            for d in (self.store / "objects").iterdir():
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            if removed:
                self._append(
                    self.store,
                    HistoryEntry(kind="prune", reason=f"keep {keep}", extra={"removed": removed}),
                )
            return removed

    def export(self, dest: str | Path, version: str | None = None) -> list[Path]:
        """Write ``version``'s skill folders (all their files) as plain folders into ``dest``."""
        vid = self.head if version is None else self.resolve(version)
        dest = Path(dest)
        out = []
        for name, files in sorted(self._read_tree(self.root, vid).items()):
            for rel, sha in files.items():
                atomic_write_bytes(dest / name / rel, self._blob(self.root, sha))
            out.append(dest / name)
        return out


class _Held:
    """Context manager releasing an already-acquired file lock."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
