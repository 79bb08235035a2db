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

Untrusted stores: a library folder may come from elsewhere, so everything read from
``.reskill/`` is validated before it is used for a write or a delete: version ids (12 hex
digits, equal to the hash of the tree they name), skill names (``validate_name``), file
paths (relative, no ``..``, no hidden parts, no backslashes), object hashes (64 hex digits,
and every blob read is re-hashed), and the store's own files and folders must not be
symbolic links. A store that fails is a ``StoreError`` naming the file; nothing outside
the library is read, written or deleted. The working copy is never written through a link
either, and a rewrite never deletes what the library does not track: hidden files, caches
or anything else left in a skill folder that a checkout would remove make it refuse
(``status()["untracked"]`` lists them).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reskill_gym.atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from reskill_gym.redaction import redact_obj
from reskill_gym.skills.bundle import (
    DEFAULT_BUDGET_CHARS,
    DEFAULT_MAX_ACTIVE_SKILLS,
    DEFAULT_TEMPLATE,
    Bundle,
    BundleSelector,
    BundleTemplate,
    TurnContext,
)
from reskill_gym.skills.errors import LibraryError, SkillError, StoreError
from reskill_gym.skills.model import MAX_SKILL_CONTENT_CHARS, Skill, validate_name
from reskill_gym.skills.skillmd import (
    MAX_FILE_BYTES,
    _link_message,
    decode_skill_text,
    find_skill_md,
    parse_skill_md,
    render_skill_md,
    skill_files,
)

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
MAX_VERSION_FILE_BYTES = 16 << 20
_VERSION_ID_RE = re.compile(r"^[0-9a-f]{12}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REF_RE = re.compile(r"^HEAD(?:~(?P<n>\d*))?$")
_STORE_FILES = ("HEAD", "WORKTREE", "PENDING.json", "history.jsonl", "lock")
_STORE_DIRS = ("versions", "objects")


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
    """Files of one skill folder (hidden files and caches skipped; links refused)."""
    return skill_files(folder)


def _skill_dirs(root: Path) -> list[Path]:
    """Skill folders directly under ``root``; a link that would be one is an error."""
    if not root.is_dir():
        raise LibraryError(f"{root}: not a folder")
    out = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink():
            if p.is_dir() and find_skill_md(p) is not None:
                raise SkillError(_link_message(p), path=p)
            continue
        if p.is_dir() and find_skill_md(p) is not None:
            out.append(p)
    return out


def _untracked(folder: Path) -> list[str]:
    """Entries of a skill folder the library never stores: hidden files, caches, links.

    Relative POSIX paths, sorted; a hidden or cache folder is one entry (its contents go
    with it).
    """
    out: list[str] = []
    stack = [(folder, "")]
    while stack:
        here, prefix = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        for e in entries:
            rel = prefix + e.name
            if e.name.startswith(".") or e.name == "__pycache__" or e.is_symlink():
                out.append(rel + ("/" if e.is_dir(follow_symlinks=False) else ""))
            elif e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), rel + "/"))
    return sorted(out)


def _read_store_object(p: Path, max_bytes: int = 2 * MAX_FILE_BYTES) -> bytes:
    """A store object's bytes: never through a link, never more than ``max_bytes``.

    ``FileNotFoundError`` passes through (the caller names what referenced the object).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{p}: cannot read ({exc.strerror}); a link or not a file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{p}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise StoreError(f"{p}: object over {max_bytes} bytes")
    return data


def _check_rel_path(rel: object) -> str:
    """A stored file path: relative POSIX, no ``..``/``.``/hidden parts, no backslash."""
    if not isinstance(rel, str) or not rel or len(rel) > 1024:
        raise ValueError(f"file path {rel!r} is not a non-empty string")
    parts = rel.split("/")
    bad = (
        rel.startswith("/")
        or "\\" in rel
        or "\x00" in rel
        or any(not p or p.startswith(".") or p == "__pycache__" for p in parts)
        or not rel.isprintable()
    )
    if bad:
        raise ValueError(f"file path {rel!r} is not a plain relative path inside a skill folder")
    return rel


def _skill_md_key(files: Mapping[str, Any]) -> str:
    return "SKILL.md" if "SKILL.md" in files else "skill.md"


def _no_links_below(base: Path, rel_parts: Iterable[str]) -> Path:
    """``base/part/...`` after checking that no existing component below ``base`` is a link
    or (for folders on the way) a file. ``base`` itself is the caller's choice and trusted.
    """
    here = base
    parts = list(rel_parts)
    for i, part in enumerate(parts):
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode):
            raise LibraryError(f"{here}: is a symbolic link; refusing to write through it")
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise LibraryError(f"{here}: is a file where a folder is needed")
    return base.joinpath(*parts)


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
            text = decode_skill_text(files[key], d / key)
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
        self._check_layout(self.store)
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
        if root.exists() and not root.is_dir():
            raise LibraryError(f"{root}: is a file, not a library folder")
        cls._check_layout(store)
        if not (store / "HEAD").is_file():
            if not create:
                raise LibraryError(
                    f"{root}: not a skill library (no {STORE}/HEAD); pass create=True to "
                    "initialise it from the skill folders there"
                )
            # Read and check every skill before creating anything: a bad folder must not
            # leave a half-made store behind.
            tree_files = cls._scan_for_init(root, max_content_chars) if root.is_dir() else {}
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"{root}: cannot create the library folder: {exc}") from None
            made_store = not store.exists()
            try:
                store.mkdir(exist_ok=True)
                with cls._lock_for(store, lock_timeout):
                    if not (store / "HEAD").is_file():
                        cls._initialise(root, tree_files, reason, proposed_by)
            except BaseException:
                if made_store and not (store / "HEAD").exists() and not store.is_symlink():
                    shutil.rmtree(store, ignore_errors=True)
                raise
        lib = cls(root, lock_timeout=lock_timeout, max_content_chars=max_content_chars)
        lib.recover()
        return lib

    @staticmethod
    def _check_layout(store: Path) -> None:
        """Refuse a store whose folders or files are links (a write would land elsewhere)."""
        for p in (store, *(store / n for n in _STORE_DIRS), *(store / n for n in _STORE_FILES)):
            if p.is_symlink():
                raise StoreError(f"{p}: is a symbolic link; a library store holds none")
        for n in _STORE_DIRS:
            if (store / n).exists() and not (store / n).is_dir():
                raise StoreError(f"{store / n}: is a file, expected a folder")

    @classmethod
    def _lock_for(cls, store: Path, timeout: float) -> Any:
        from filelock import FileLock

        cls._check_layout(store)
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

    @staticmethod
    def _scan_for_init(root: Path, max_content_chars: int | None) -> dict[str, dict[str, bytes]]:
        """Every skill folder under ``root``, read and parsed (raises before any write)."""
        out: dict[str, dict[str, bytes]] = {}
        for d in _skill_dirs(root):
            files = _skill_files(d)
            key = _skill_md_key(files)
            parse_skill_md(
                decode_skill_text(files[key], d / key),
                path=d / key,
                dir_name=d.name,
                max_content_chars=max_content_chars,
            )
            out[d.name] = files
        return out

    @classmethod
    def _initialise(
        cls,
        root: Path,
        tree_files: Mapping[str, Mapping[str, bytes]],
        reason: str,
        proposed_by: str,
    ) -> None:
        store = root / STORE
        tree: dict[str, dict[str, str]] = {}
        for name, files in tree_files.items():
            tree[name] = {rel: cls._put_blob(store, data) for rel, data in files.items()}
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
        sub = store / "objects" / sha[:2]
        if sub.is_symlink():
            raise StoreError(f"{sub}: is a symbolic link; a library store holds none")
        p = sub / sha
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
    def _entry_json(entry: HistoryEntry) -> str:
        """One history record as JSON, credentials redacted (history is shared and kept)."""
        return json.dumps(redact_obj(entry.model_dump(mode="json")), ensure_ascii=False)

    @classmethod
    def _append(cls, store: Path, entry: HistoryEntry) -> None:
        line = cls._entry_json(entry) + "\n"
        p = store / "history.jsonl"
        if p.is_symlink():
            raise StoreError(f"{p}: is a symbolic link; a library store holds none")
        with open(p, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _read_ref(self, name: str) -> str | None:
        p = self.store / name
        if p.is_symlink():
            raise StoreError(f"{p}: is a symbolic link; a library store holds none")
        try:
            with open(p, "rb") as fh:
                raw = fh.read(256)
        except FileNotFoundError:
            return None
        value = raw.decode("utf-8", "replace").strip()
        if not value:
            return None
        if not _VERSION_ID_RE.match(value):
            raise StoreError(f"{p}: {value[:40]!r} is not a version id (12 hex digits)")
        return value

    @staticmethod
    def _read_tree(root: Path, version: str) -> dict[str, dict[str, str]]:
        """The ``{name: {path: sha}}`` map of a stored version, validated entry by entry.

        Raises ``StoreError`` naming the version file when anything in it could not have
        been written by this library (see the module docstring); nothing is used before
        the whole file passed.
        """
        if not isinstance(version, str) or not _VERSION_ID_RE.match(version):
            raise LibraryError(f"{root}: {str(version)[:40]!r} is not a version id")
        p = root / STORE / "versions" / f"{version}.json"
        if p.is_symlink():
            raise StoreError(f"{p}: is a symbolic link; a library store holds none")
        try:
            with open(p, "rb") as fh:
                raw = fh.read(MAX_VERSION_FILE_BYTES + 1)
        except FileNotFoundError:
            raise LibraryError(f"{root}: version {version} does not exist (pruned?)") from None
        except OSError as exc:
            raise StoreError(f"{p}: cannot read ({exc.strerror})") from None
        try:
            if len(raw) > MAX_VERSION_FILE_BYTES:
                raise ValueError(f"over {MAX_VERSION_FILE_BYTES} bytes")
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("skills"), dict):
                raise ValueError("expected an object with a 'skills' map")
            tree: dict[str, dict[str, str]] = {}
            for name, files in data["skills"].items():
                try:
                    validate_name(name)
                except SkillError:
                    raise ValueError(f"skill name {str(name)[:80]!r} is invalid") from None
                if not isinstance(files, dict) or not files:
                    raise ValueError(f"skill {name!r}: expected a non-empty map of files")
                clean: dict[str, str] = {}
                for rel, sha in files.items():
                    _check_rel_path(rel)
                    if not isinstance(sha, str) or not _SHA_RE.match(sha):
                        raise ValueError(f"{name}/{rel}: {str(sha)[:80]!r} is not a sha256")
                    clean[rel] = sha
                if "SKILL.md" not in clean and "skill.md" not in clean:
                    raise ValueError(f"skill {name!r} has no SKILL.md")
                tree[name] = clean
            if data.get("version") != version or content_version(tree) != version:
                raise ValueError(f"its content does not hash to {version}")
        except (ValueError, RecursionError) as exc:
            raise StoreError(f"{p}: tampered or corrupt version file: {exc}") from None
        return tree

    @staticmethod
    def _blob(root: Path, sha: str, where: str = "") -> bytes:
        """A stored file's bytes, checked against its hash (a changed blob is an error)."""
        if not _SHA_RE.match(sha):
            raise StoreError(f"{where or root}: {sha[:80]!r} is not a sha256")
        p = root / STORE / "objects" / sha[:2] / sha
        try:
            data = _read_store_object(p)
        except FileNotFoundError:
            raise StoreError(
                f"{p}: missing object (referenced by {where or 'a version'})"
            ) from None
        if _sha(data) != sha:
            raise StoreError(
                f"{p}: tampered or corrupt object (its content does not hash to its name)"
            )
        return data

    @classmethod
    def _read_view(cls, root: Path, version: str) -> LibraryView:
        tree = cls._read_tree(root, version)
        vfile = f"{root / STORE / 'versions' / version}.json"
        skills, texts = [], {}
        for name, files in sorted(tree.items()):
            key = _skill_md_key(files)
            where = f"{vfile}:{name}/{key}"
            text = decode_skill_text(cls._blob(root, files[key], where), where)
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
        return sorted(
            p.stem for p in (self.store / "versions").glob("*.json") if _VERSION_ID_RE.match(p.stem)
        )

    def resolve(self, ref: str) -> str:
        """A version id from ``HEAD``, ``HEAD~N`` (``HEAD~`` is ``HEAD~1``, as in git), a full
        id or a unique prefix (>= 4 hex digits)."""
        if not isinstance(ref, str) or not ref.strip():
            raise LibraryError(
                "empty version; give HEAD, HEAD~N, a version id or a prefix of >= 4 hex digits"
            )
        ref = ref.strip()
        if ref.upper().startswith("HEAD"):
            m = _REF_RE.match(ref)
            if m is None:
                raise LibraryError(
                    f"{ref!r} is not a version: use HEAD or HEAD~N with N = 0, 1, 2, ..."
                )
            digits = m.group("n")
            n = 0 if digits is None else int(digits or 1)
            v: str | None = self.head
            for _ in range(n):
                v = self.parent_of(v)  # type: ignore[arg-type]
                if v is None:
                    raise LibraryError(f"{ref}: history is shorter than {n} versions")
            if not _VERSION_ID_RE.match(v):  # type: ignore[arg-type]
                raise StoreError(
                    f"{self.store / 'history.jsonl'}: parent {str(v)[:40]!r} is not a version id"
                )
            return v  # type: ignore[return-value]
        known = self.versions()
        if ref in known:
            return ref
        if not re.fullmatch(r"[0-9a-fA-F]{1,64}", ref):
            raise LibraryError(
                f"{self.root}: unknown version {ref[:80]!r} (versions are hex ids, HEAD or HEAD~N)"
            )
        ref = ref.lower()
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
        if last is not None and (not isinstance(last, int) or last < 0):
            raise LibraryError(f"last must be a non-negative integer, got {last!r}")
        p = self.store / "history.jsonl"
        if not p.exists():
            return []
        if last == 0:
            return []
        lines = p.read_bytes().decode("utf-8", "replace").splitlines()
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
        """Hand edits in the working copy relative to the version it was written from.

        ``added`` / ``modified`` / ``deleted``: skills (a commit or checkout refuses while
        any is non-empty). ``untracked``: ``name/path`` of what sits in a skill folder but
        is never stored (hidden files and folders such as ``.notes`` or ``.git/``, caches);
        a checkout that would remove such a folder refuses instead of deleting them.
        """
        base = self._read_ref("WORKTREE") or self.head
        tree = self._read_tree(self.root, base)
        on_disk = {d.name: d for d in _skill_dirs(self.root)}
        st: dict[str, list[str]] = {"added": [], "modified": [], "deleted": [], "untracked": []}
        for name in sorted(set(on_disk) | set(tree)):
            if name not in tree:
                st["added"].append(name)
            elif name not in on_disk:
                st["deleted"].append(name)
            else:
                files = {r: _sha(b) for r, b in _skill_files(on_disk[name]).items()}
                if files != tree[name]:
                    st["modified"].append(name)
            if name in on_disk:
                st["untracked"] += [f"{name}/{rel}" for rel in _untracked(on_disk[name])]
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
                try:
                    ch.skill.check_content_limit(self.max_content_chars)
                except SkillError as exc:
                    raise exc.at(path=f"skill {ch.name!r}") from None
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
        dirty = {k: v for k, v in st.items() if v and k != "untracked"}
        if dirty:
            desc = "; ".join(f"{k}: {', '.join(v)}" for k, v in dirty.items())
            raise LibraryError(
                f"{self.root}: the working copy has edits not recorded in a version ({desc}); "
                "record them with snapshot() / `reskill skills snapshot`, or revert them"
            )

    def _journal_and_move(self, entry: HistoryEntry, new_head: str | None) -> None:
        old_head = self.head
        if new_head is not None:  # refuse before the commit point, not half-way through
            self._check_worktree(self._read_ref("WORKTREE") or old_head, new_head)
        atomic_write_text(self.store / "PENDING.json", self._entry_json(entry))
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

    def _check_worktree(self, old: str | None, new: str) -> None:
        """Raise ``LibraryError`` if rewriting the working copy from ``old`` to ``new`` would
        delete or overwrite anything the library does not track, or write through a link.

        Runs before the commit point, so a refusal changes nothing.
        """
        old_tree = self._read_tree(self.root, old) if old else {}
        new_tree = self._read_tree(self.root, new)
        problems: list[str] = []
        for name in sorted(set(old_tree) | set(new_tree)):
            folder = self.root / name
            if folder.is_symlink():
                problems.append(f"{name} (a symbolic link)")
                continue
            if not folder.exists():
                continue
            if not folder.is_dir():
                problems.append(f"{name} (a file where a skill folder goes)")
                continue
            tracked = set(old_tree.get(name, {}))
            if name not in new_tree:  # the folder goes: everything in it must be tracked
                problems += [f"{name}/{rel}" for rel in _untracked(folder)]
                try:
                    files = _skill_files(folder)
                except SkillError as exc:
                    problems.append(f"{name} ({exc.message})")
                    continue
                problems += [f"{name}/{rel}" for rel in files if rel not in tracked]
                continue
            for rel, sha in new_tree[name].items():
                try:
                    target = _no_links_below(self.root, [name, *rel.split("/")])
                except LibraryError as exc:
                    problems.append(f"{name}/{rel} ({exc})")
                    continue
                if rel in tracked or not os.path.lexists(target):
                    continue
                if not target.is_file() or _sha(target.read_bytes()) != sha:
                    problems.append(f"{name}/{rel} (untracked, would be overwritten)")
        if problems:
            shown = ", ".join(problems[:10]) + (
                f", ... (+{len(problems) - 10})" if len(problems) > 10 else ""
            )
            raise LibraryError(
                f"{self.root}: refusing to rewrite the working copy ({old} -> {new}): it would "
                f"delete or overwrite files the library does not track: {shown}. Move them "
                "out of the skill folders (or remove them) and run the command again"
            )

    def _sync_worktree(self, old: str | None, new: str) -> None:
        """Make the working copy equal ``new``, touching only files the library tracks."""
        self._check_worktree(old, new)
        old_tree = self._read_tree(self.root, old) if old else {}
        new_tree = self._read_tree(self.root, new)
        for name in sorted(set(old_tree) | set(new_tree)):
            folder = self.root / name
            tracked = old_tree.get(name, {})
            if name not in new_tree:
                if folder.is_dir() and not folder.is_symlink():
                    self._remove_tracked(folder, tracked)
                continue
            on_disk = _skill_files(folder) if folder.is_dir() else {}
            want = new_tree[name]
            for rel, sha in want.items():
                if rel not in on_disk or _sha(on_disk[rel]) != sha:
                    target = _no_links_below(self.root, [name, *rel.split("/")])
                    atomic_write_bytes(target, self._blob(self.root, sha, f"version {new}"))
                    _crash_point("worktree-file-written")
            for rel in set(on_disk) - set(want):
                if rel in tracked:  # only what the old version put there
                    (folder / rel).unlink()
        atomic_write_text(self.store / "WORKTREE", new + "\n")

    @staticmethod
    def _remove_tracked(folder: Path, tracked: Mapping[str, str]) -> None:
        """Delete a skill folder's tracked files, then the folders they leave empty.

        Never ``rmtree``: whatever else is there stays (``_check_worktree`` refused first,
        so normally nothing is).
        """
        on_disk = _skill_files(folder)
        dirs: set[Path] = {folder}
        for rel in on_disk:
            if rel in tracked:
                (folder / rel).unlink()
                parent = (folder / rel).parent
                while parent != folder:
                    dirs.add(parent)
                    parent = parent.parent
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                logger.warning("%s: left in place (holds files the library does not track)", d)

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
        if not isinstance(keep, int) or keep < 0:
            raise LibraryError(f"keep must be a non-negative integer, got {keep!r}")
        with self._lock():
            self._recover_locked()
            kept: set[str] = {self.head, self._read_ref("WORKTREE") or self.head}
            kept |= {self.resolve(r) for r in referenced}
            newest: list[str] = []
            stored = set(self.versions())
            for e in reversed(self.history()):
                if len(newest) >= keep:
                    break
                if e.version in stored and e.kind != "event" and e.version not in newest:
                    newest.append(e.version)
            kept |= set(newest)
            # Read (and so validate) every kept version before deleting anything.
            live = {
                sha
                for v in sorted(kept & stored)
                for files in self._read_tree(self.root, v).values()
                for sha in files.values()
            }
            removed = [v for v in sorted(stored) if v not in kept]
            for v in removed:
                (self.store / "versions" / f"{v}.json").unlink()
            objects = self.store / "objects"
            for d in sorted(objects.iterdir()) if objects.is_dir() else []:
                if d.is_symlink() or not d.is_dir():  # not ours: never follow, never delete
                    logger.warning("%s: not an object folder; left alone", d)
                    continue
                for p in d.iterdir():
                    if p.name not in live and _SHA_RE.match(p.name) and not p.is_symlink():
                        p.unlink()
                if not any(d.iterdir()):
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
        if dest.exists() and not dest.is_dir():
            raise LibraryError(f"{dest}: is a file; export writes skill folders into a folder")
        tree = self._read_tree(self.root, vid)
        blobs = {
            (name, rel): self._blob(self.root, sha, f"version {vid}")
            for name, files in tree.items()
            for rel, sha in files.items()
        }  # every blob checked before the first write
        targets = {key: _no_links_below(dest, [key[0], *key[1].split("/")]) for key in blobs}
        out = []
        try:
            for name in sorted(tree):
                for rel in tree[name]:
                    atomic_write_bytes(targets[(name, rel)], blobs[(name, rel)])
                out.append(dest / name)
        except OSError as exc:
            raise LibraryError(f"{dest}: cannot write the export: {exc}") from None
        return out


class _Held:
    """Context manager releasing an already-acquired file lock."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
