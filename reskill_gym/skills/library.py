"""``SkillLibrary``: an on-disk, versioned, crash-safe skill store (the façade over its parts).

Exports ``SkillLibrary``, ``LibraryView``, ``Operation``, ``HistoryEntry``,
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

The parts, one concern each: ``reskill_gym.skills.store`` (objects, version trees, refs,
the lock, and the checks that make an untrusted store safe to read), ``.journal`` (the
write protocol: journal, commit point, crash recovery), ``.worktree`` (the working copy:
status, refusing to clobber untracked files, rewrites), ``.history`` (operations, the
lineage log, diffs) and ``.view`` (``LibraryView``, the immutable read side). This module
holds what ties them together: opening, reading refs, and the operations that change a
library (commit, checkout, rollback, snapshot, prune, export), each under the lock.

Hand edits: edit ``<root>/<name>/SKILL.md`` and call ``snapshot()`` (``reskill skills
snapshot``) to record them as a version; ``commit`` refuses to overwrite unrecorded edits.
Hidden files, caches or anything else left in a skill folder that a checkout would remove
make it refuse (``status()["untracked"]`` lists them).
"""

from __future__ import annotations

import difflib
import logging
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_bytes
from reskill_gym.safe_text import clip_text
from reskill_gym.skills import journal, store
from reskill_gym.skills.errors import LibraryError, SkillError, StoreError
from reskill_gym.skills.history import (
    HistoryEntry,
    LibraryDiff,
    Operation,
    OpRecord,
    append_history,
    diff_views,
    parent_map,
    read_history,
)
from reskill_gym.skills.model import MAX_SKILL_CONTENT_CHARS, Skill
from reskill_gym.skills.skillmd import decode_skill_text, parse_skill_md, render_skill_md
from reskill_gym.skills.store import STORE, content_version
from reskill_gym.skills.view import LibraryView
from reskill_gym.skills.worktree import worktree_status

__all__ = [
    "SkillLibrary",
    "LibraryView",
    "Operation",
    "HistoryEntry",
    "LibraryDiff",
    "content_version",
]

logger = logging.getLogger(__name__)

_REF_RE = re.compile(r"^HEAD(?:~(?P<n>\d*))?\Z")
_VIEWS_KEPT = 16


def _scan_for_init(root: Path, max_content_chars: int | None) -> dict[str, dict[str, bytes]]:
    """Every skill folder under ``root``, read and parsed (raises before any write)."""
    out: dict[str, dict[str, bytes]] = {}
    for d in store.skill_dirs(root):
        files = store.read_skill_folder(d)
        key = store.skill_md_key(files)
        parse_skill_md(
            decode_skill_text(files[key], d / key),
            path=d / key,
            dir_name=d.name,
            max_content_chars=max_content_chars,
        )
        out[d.name] = files
    return out


class SkillLibrary:
    """On-disk versioned skill store (see the module docstring for the layout).

    Examples:
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
        store.check_layout(self.store)
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
        path_ = root / STORE
        if root.exists() and not root.is_dir():
            raise LibraryError(f"{root}: is a file, not a library folder")
        store.check_layout(path_)
        if not (path_ / "HEAD").is_file():
            if not create:
                raise LibraryError(
                    f"{root}: not a skill library (no {STORE}/HEAD); pass create=True to "
                    "initialise it from the skill folders there"
                )
            # Read and check every skill before creating anything: a bad folder must not
            # leave a half-made store behind.
            tree_files = _scan_for_init(root, max_content_chars) if root.is_dir() else {}
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"{root}: cannot create the library folder: {exc}") from None
            made_store = not path_.exists()
            try:
                path_.mkdir(exist_ok=True)
                with store.hold_lock(path_, lock_timeout):
                    if not (path_ / "HEAD").is_file():
                        journal.initialise(root, tree_files, reason=reason, proposed_by=proposed_by)
            except BaseException:
                if made_store and not (path_ / "HEAD").exists() and not path_.is_symlink():
                    shutil.rmtree(path_, ignore_errors=True)
                raise
        lib = cls(root, lock_timeout=lock_timeout, max_content_chars=max_content_chars)
        lib.recover()
        return lib

    def _lock(self) -> Any:
        return store.hold_lock(self.store, self.lock_timeout)

    def recover(self) -> None:
        """Finish or discard a write interrupted by a killed process (idempotent)."""
        if journal.needs_recovery(self.root):
            with self._lock():
                journal.recover(self.root)

    # ---- reading ------------------------------------------------------------------
    @property
    def head(self) -> str:
        """The live version id (read from disk each time: other processes may move it)."""
        v = store.read_ref(self.store, "HEAD")
        if v is None:
            raise LibraryError(f"{self.store / 'HEAD'}: empty")
        return v

    def versions(self) -> list[str]:
        """Ids of all stored (not pruned) versions."""
        return store.stored_versions(self.store)

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
            v = self.head
            if n:
                parents = parent_map(self.history())
                seen = {v}
                for _ in range(n):
                    parent = parents.get(v)
                    if parent is None:
                        raise LibraryError(f"{ref}: history is shorter than {n} versions")
                    if parent in seen:
                        raise StoreError(
                            f"{self.store / 'history.jsonl'}: the parents of {self.head} "
                            f"form a cycle at {str(parent)[:40]!r} (tampered history)"
                        )
                    seen.add(parent)
                    v = parent
            if not store.is_version_id(v):
                raise StoreError(
                    f"{self.store / 'history.jsonl'}: parent {str(v)[:40]!r} is not a version id"
                )
            return v
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
            view = LibraryView.from_store(self.root, vid)
            self._views[vid] = view
            if len(self._views) > _VIEWS_KEPT:
                self._views.popitem(last=False)
        return view

    def history(self, *, last: int | None = None) -> list[HistoryEntry]:
        """History entries, oldest first (``last``: only the newest N)."""
        if last is not None and (not isinstance(last, int) or last < 0):
            raise LibraryError(f"last must be a non-negative integer, got {last!r}")
        return read_history(self.store, last=last)

    def parent_of(self, version: str) -> str | None:
        """The version ``version`` was committed on top of (None for the first)."""
        return parent_map(self.history()).get(version)

    def diff(self, old: str, new: str) -> LibraryDiff:
        """Skills added, removed and modified from ``old`` to ``new``, with patches."""
        return diff_views(self.view(old), self.view(new))

    def status(self) -> dict[str, list[str]]:
        """Hand edits in the working copy relative to the version it was written from.

        ``added`` / ``modified`` / ``deleted``: skills (a commit or checkout refuses while
        any is non-empty). ``untracked``: ``name/path`` of what sits in a skill folder but
        is never stored (hidden files and folders such as ``.notes`` or ``.git/``, caches);
        a checkout that would remove such a folder refuses instead of deleting them.
        """
        return worktree_status(self.root, store.read_ref(self.store, "WORKTREE") or self.head)

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
            journal.recover(self.root)
            base_id = self.head if base is None else self.resolve(base)
            if set_head:
                self._refuse_dirty()
            tree = {n: dict(f) for n, f in store.read_tree(self.root, base_id).items()}
            old_view = self.view(base_id)
            ops = self._normalise(changes, old_view, replace)
            records: list[OpRecord] = []
            for op in ops:
                if op.op == "delete":
                    tree.pop(op.name)
                else:
                    skill = self._complete(op, old_view, base_id, reason, step, proposed_by)
                    try:
                        text = render_skill_md(skill)
                    except SkillError as exc:
                        raise exc.at(path=f"skill {op.name!r}") from None
                    files = dict(tree.get(op.name, {})) if op.op == "modify" else {}
                    files.pop("skill.md", None)
                    files["SKILL.md"] = store.put_blob(self.store, text.encode("utf-8"))
                    tree[op.name] = files
                records.append(OpRecord(op=op.op, name=op.name))
            store._crash_point("blobs-written")
            vid = store.put_version(self.store, tree)
            store._crash_point("version-written")
            if vid == base_id:
                logger.info("commit %r changes nothing; version stays %s", reason, vid)
                return vid
            # triggers that cannot run together: refuse now, not on the first reset()
            _ = LibraryView.from_store(self.root, vid).selector
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
            journal.journal_and_move(self.root, entry, vid if set_head else None)
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
        from reskill_gym.redaction import redact

        rationale = prov.rationale or clip_text(reason.replace("---", "-").strip(), 1000)
        filled = {
            "proposed_by": prov.proposed_by or proposed_by,
            # the reason may quote an endpoint's echo: SKILL.md is shared, so it is redacted
            "rationale": redact(rationale) if rationale else None,
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

    def _move_head(self, version: str, kind: Literal["checkout", "rollback"], reason: str) -> str:
        with self._lock():
            journal.recover(self.root)
            self._refuse_dirty()
            old = self.head
            # parse every skill (blobs are checked too) and build its trigger index
            # before HEAD moves: a version that cannot run must not become live
            _ = LibraryView.from_store(self.root, version).selector
            entry = HistoryEntry(
                kind=kind, version=version, parent=old, head_moved=True, reason=reason
            )
            journal.journal_and_move(self.root, entry, version)
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
            journal.recover(self.root)
            base = self.head
            st = self.status()
            if not any(st.values()):
                return base
            tree: dict[str, dict[str, str]] = {}
            for d in store.skill_dirs(self.root):
                files = store.read_skill_folder(d)
                key = store.skill_md_key(files)
                parse_skill_md(
                    files[key].decode("utf-8"),
                    path=d / key,
                    dir_name=d.name,
                    max_content_chars=self.max_content_chars,
                )
                tree[d.name] = {rel: store.put_blob(self.store, b) for rel, b in files.items()}
            vid = store.put_version(self.store, tree)
            if vid == base:  # only untracked entries differ: nothing to record
                return base
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
            journal.journal_and_move(self.root, entry, vid)
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
            append_history(self.store, entry)
        return entry

    def prune(self, keep: int = 5, referenced: Iterable[str] = ()) -> list[str]:
        """Delete stored versions except HEAD, ``referenced``, and the ``keep`` newest.

        History lines stay (lineage is data); blobs no kept version uses are removed.
        Returns the removed version ids.
        """
        if not isinstance(keep, int) or keep < 0:
            raise LibraryError(f"keep must be a non-negative integer, got {keep!r}")
        with self._lock():
            journal.recover(self.root)
            kept: set[str] = {self.head, store.read_ref(self.store, "WORKTREE") or self.head}
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
                for files in store.read_tree(self.root, v).values()
                for sha in files.values()
            }
            removed = [v for v in sorted(stored) if v not in kept]
            for v in removed:
                (self.store / "versions" / f"{v}.json").unlink()
            objects = self.store / "objects"
            listed = safe_files.list_folder(
                objects, links="include", special="include", missing_ok=True
            )
            for item in listed:
                d = item.path
                if item.kind != "folder":  # not ours: never follow, never delete
                    logger.warning("%s: not an object folder; left alone", d)
                    continue
                # only regular files named like objects go; anything else stays
                for f in safe_files.list_folder(d, links="skip", special="skip"):
                    if f.name not in live and store.is_sha(f.name) and f.kind == "file":
                        f.path.unlink()
                if not safe_files.list_folder(d, links="include", special="include"):
                    d.rmdir()
            if removed:
                append_history(
                    self.store,
                    HistoryEntry(kind="prune", reason=f"keep {keep}", extra={"removed": removed}),
                )
            return removed

    def export(
        self, dest: str | Path, version: str | None = None, *, history: bool = False
    ) -> list[Path]:
        """Write ``version``'s skill folders (all their files) as plain folders into ``dest``.

        ``history=True`` also copies the version store, so ``dest`` opens as this library
        with its history (``reskill export`` ships a run's library that way); the store is
        copied file by file, and a link or special file in it is an error before any of it is
        copied.
        """
        vid = self.head if version is None else self.resolve(version)
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise LibraryError(f"{dest}: is a file; export writes skill folders into a folder")
        tree = store.read_tree(self.root, vid)
        blobs = {
            (name, rel): store.read_blob(self.root, sha, f"version {vid}")
            for name, files in tree.items()
            for rel, sha in files.items()
        }  # every blob checked before the first write
        targets = {key: store.no_links_below(dest, [key[0], *key[1].split("/")]) for key in blobs}
        out = []
        try:
            for name in sorted(tree):
                for rel in tree[name]:
                    atomic_write_bytes(targets[(name, rel)], blobs[(name, rel)])
                out.append(dest / name)
            if history:
                store.copy_store(self.root, dest)
        except OSError as exc:
            raise LibraryError(f"{dest}: cannot write the export: {exc}") from None
        return out
