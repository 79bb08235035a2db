"""The ``.reskill`` store of a skill library: content-addressed objects, version trees, refs, lock.

Exports ``STORE``, ``VERSION_ID_CHARS``, ``content_version``, ``sha256_hex``, ``is_sha``,
``is_version_id``, ``check_layout``, ``hold_lock``, ``read_store_file``, ``read_ref``,
``write_ref``, ``put_blob``, ``put_version``, ``stored_versions``, ``read_tree``,
``read_blob``, ``read_version_blobs``, ``skill_dirs``, ``read_skill_folder``,
``skill_md_key``, ``check_rel_path`` and ``no_links_below``.

Layout (see ``reskill_gym.skills.library`` for the whole folder)::

    <root>/.reskill/
      HEAD                       the live version id
      WORKTREE                   the version the working copy was last written from
      PENDING.json               journal of a commit in flight (reskill_gym.skills.journal)
      versions/<id>.json         {name: {relative path: blob sha256}}, immutable
      objects/<sh>/<sha256>      file contents, content-addressed, immutable
      history.jsonl              lineage (reskill_gym.skills.history)
      lock                       file lock; every write holds it

A version id is the first 12 hex digits of the SHA-256 of the canonical JSON of its
``{name: {path: blob}}`` map: the same skills give the same id, here or from a plain folder.

Untrusted stores: a library folder may come from elsewhere, so everything read here is
validated before it is used for a write or a delete: version ids (12 hex digits, equal to
the hash of the tree they name), skill names, file paths (relative, no ``..``, no hidden
parts, no backslashes), object hashes (64 hex digits; every blob read is re-hashed), and no
file or folder of the store may be a symbolic link. A store that fails is a ``StoreError``
naming the file.

``_crash_point(name)`` is called between the steps of every write (here, in the journal
and the working-copy sync); it does nothing, and tests replace it to kill a writer there.

>>> content_version({}) == content_version({})
True
>>> is_version_id(content_version({"a": {"SKILL.md": "00"}}))
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_bytes, atomic_write_text
from reskill_gym.skills.errors import LibraryError, SkillError, StoreError
from reskill_gym.skills.model import validate_name
from reskill_gym.skills.skillmd import (
    MAX_FILE_BYTES,
    MAX_FILES_PER_SKILL,
    _link_message,
    find_skill_md,
    skill_files,
    stored_path_problem,
)

__all__ = [
    "STORE",
    "VERSION_ID_CHARS",
    "content_version",
    "sha256_hex",
    "is_sha",
    "is_version_id",
    "check_layout",
    "hold_lock",
    "read_store_file",
    "read_ref",
    "write_ref",
    "put_blob",
    "put_version",
    "stored_versions",
    "read_tree",
    "read_blob",
    "read_version_blobs",
    "skill_dirs",
    "read_skill_folder",
    "skill_md_key",
    "check_rel_path",
    "no_links_below",
]

STORE = ".reskill"
VERSION_ID_CHARS = 12
MAX_VERSION_FILE_BYTES = 16 << 20
_VERSION_ID_RE = re.compile(r"^[0-9a-f]{12}\Z")  # \Z: "$" lets a trailing newline in
_SHA_RE = re.compile(r"^[0-9a-f]{64}\Z")
_STORE_FILES = ("HEAD", "WORKTREE", "PENDING.json", "history.jsonl", "lock")
_STORE_DIRS = ("versions", "objects")

Tree = dict[str, dict[str, str]]


def _crash_point(name: str) -> None:
    """No-op marker between the steps of a write; tests replace it to kill a process there."""


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (object names)."""
    return hashlib.sha256(data).hexdigest()


def is_sha(value: object) -> bool:
    """Whether ``value`` is a 64-hex-digit object name."""
    return isinstance(value, str) and bool(_SHA_RE.match(value))


def is_version_id(value: object) -> bool:
    """Whether ``value`` has the shape of a version id (12 lowercase hex digits)."""
    return isinstance(value, str) and bool(_VERSION_ID_RE.match(value))


def content_version(tree: Mapping[str, Mapping[str, str]]) -> str:
    """Version id of a ``{skill name: {relative path: blob sha256}}`` map.

    >>> len(content_version({"a": {"SKILL.md": "00"}}))
    12
    """
    canon = json.dumps(
        {n: dict(sorted(f.items())) for n, f in sorted(tree.items())},
        sort_keys=True,
        separators=(",", ":"),
    )
    return sha256_hex(canon.encode())[:VERSION_ID_CHARS]


# ---- plain folders of skills ----------------------------------------------------------
def skill_dirs(root: Path) -> list[Path]:
    """Skill folders directly under ``root``; a link that would be one is an error."""
    if not root.is_dir():
        raise LibraryError(f"{root}: not a folder")
    out = []
    # root was named by the user (a link there is theirs); links inside are checked here
    for e in safe_files.list_folder(
        root, links="include", special="skip", hidden=False, follow_links=True
    ):
        p = e.path
        if e.kind == "link":
            if p.is_dir() and find_skill_md(p) is not None:
                raise SkillError(_link_message(p), path=p)
            continue
        if p.is_dir() and find_skill_md(p) is not None:
            out.append(p)
    return out


def read_skill_folder(folder: Path) -> dict[str, bytes]:
    """Files of one skill folder (hidden files and caches skipped; links refused)."""
    return skill_files(folder)


def skill_md_key(files: Mapping[str, Any]) -> str:
    """The SKILL.md entry of a skill's file map (``skill.md`` is accepted as well)."""
    return "SKILL.md" if "SKILL.md" in files else "skill.md"


def check_rel_path(rel: object) -> str:
    """A stored file path: relative POSIX, no ``..``/``.``/hidden parts, no backslash (the
    rule ``skill_files`` applies when a folder is read, so what a library stores passes)."""
    problem = stored_path_problem(rel)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(rel, str)
    return rel


def no_links_below(base: Path, rel_parts: Iterable[str]) -> Path:
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


# ---- the store folder -----------------------------------------------------------------
def check_layout(store: Path) -> None:
    """Refuse a store whose folders or files are links (a write would land elsewhere) or
    whose files are FIFOs, sockets or devices (a read would block)."""
    for p in (store, *(store / n for n in _STORE_DIRS), *(store / n for n in _STORE_FILES)):
        if p.is_symlink():
            raise StoreError(f"{p}: is a symbolic link; a library store holds none")
    for n in _STORE_DIRS:
        if (store / n).exists() and not (store / n).is_dir():
            raise StoreError(f"{store / n}: is a file, expected a folder")
    for n in _STORE_FILES:  # a FIFO or device would block or mislead the first read
        if os.path.lexists(store / n) and not stat.S_ISREG(os.lstat(store / n).st_mode):
            raise StoreError(f"{store / n}: not a regular file; a library store holds only files")


def _file_lock(store: Path, timeout: float) -> Any:
    """The store's ``filelock.FileLock`` (not acquired), after the layout check."""
    from filelock import FileLock

    check_layout(store)
    return FileLock(str(store / "lock"), timeout=timeout)


def hold_lock(store: Path, timeout: float) -> _Held:
    """Acquire the store's lock: a context manager that releases it.

    Waiting longer than ``timeout`` seconds is a ``LibraryError`` naming the lock file.
    """
    from filelock import Timeout

    lock = _file_lock(store, timeout)
    try:
        lock.acquire()
    except Timeout:
        raise LibraryError(
            f"{store / 'lock'}: another process holds the library lock for more than {timeout}s"
        ) from None
    return _Held(lock)


class _Held:
    """Context manager releasing an already-acquired file lock."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def read_store_file(p: Path, max_bytes: int) -> bytes:
    """A store file's bytes: never through a link, never from a FIFO or device, never
    more than ``max_bytes``. ``FileNotFoundError`` passes through (the caller knows what
    a missing file means); everything else is a ``StoreError`` naming the file."""
    try:
        return safe_files.read_bytes(p, max_bytes=max_bytes)
    except FileNotFoundError:
        raise
    except safe_files.UnsafeFileError as exc:
        raise StoreError(f"{p}: {exc.strerror}; a library store holds only regular files") from None
    except OSError as exc:
        raise StoreError(f"{p}: cannot read ({exc.strerror})") from None


def read_ref(store: Path, name: str) -> str | None:
    """The version id in ``<store>/<name>`` (``HEAD``, ``WORKTREE``); None if absent or empty."""
    p = store / name
    try:
        raw = read_store_file(p, 256)
    except FileNotFoundError:
        return None
    value = raw.decode("utf-8", "replace").strip()
    if not value:
        return None
    if not _VERSION_ID_RE.match(value):
        raise StoreError(f"{p}: {value[:40]!r} is not a version id (12 hex digits)")
    return value


def write_ref(store: Path, name: str, version: str) -> None:
    """Point ``<store>/<name>`` at ``version`` (one atomic rename)."""
    atomic_write_text(store / name, version + "\n")


def put_blob(store: Path, data: bytes) -> str:
    """Store ``data`` as an object (once); returns its sha256."""
    sha = sha256_hex(data)
    sub = store / "objects" / sha[:2]
    if sub.is_symlink():
        raise StoreError(f"{sub}: is a symbolic link; a library store holds none")
    p = sub / sha
    if not p.exists():
        atomic_write_bytes(p, data)
    return sha


def put_version(store: Path, tree: Mapping[str, Mapping[str, str]]) -> str:
    """Store a version tree (once); returns its id."""
    vid = content_version(tree)
    p = store / "versions" / f"{vid}.json"
    if not p.exists():
        body = json.dumps({"version": vid, "skills": tree}, sort_keys=True, indent=1)
        atomic_write_text(p, body + "\n")
    return vid


def copy_store(src_root: Path, dest_root: Path) -> None:
    """Copy the version store of the library at ``src_root`` into ``dest_root``.

    Regular files and folders only: the store holds nothing else, so a link or a special file
    in it is an error, raised before anything is copied.
    """
    src, dest = src_root / STORE, dest_root / STORE
    entries = safe_files.walk_tree(src, links="include", special="include")
    for e in entries:
        if e.kind in ("link", "special"):
            raise StoreError(
                f"{e.path}: not a regular file or folder ({e.kind}); a library store "
                "holds nothing else"
            )
    dest.mkdir(parents=True, exist_ok=True)
    for e in entries:
        if e.kind == "folder":
            (dest / e.rel).mkdir(exist_ok=True)
        else:
            safe_files.copy_file(e.path, dest / e.rel)


def stored_versions(store: Path) -> list[str]:
    """Ids of all stored (not pruned) versions, sorted."""
    # a linked or special version file is listed: reading it is the error that names it
    found = safe_files.list_folder(
        store / "versions", links="include", special="include", match="*.json", missing_ok=True
    )
    return sorted(e.path.stem for e in found if _VERSION_ID_RE.match(e.path.stem))


def read_tree(root: Path, version: str) -> Tree:
    """The ``{name: {path: sha}}`` map of a stored version, validated entry by entry.

    Raises ``StoreError`` naming the version file when anything in it could not have
    been written by a library (see the module docstring); nothing is used before the
    whole file passed.
    """
    if not isinstance(version, str) or not _VERSION_ID_RE.match(version):
        raise LibraryError(f"{root}: {str(version)[:40]!r} is not a version id")
    p = root / STORE / "versions" / f"{version}.json"
    try:
        raw = read_store_file(p, MAX_VERSION_FILE_BYTES)
    except FileNotFoundError:
        raise LibraryError(f"{root}: version {version} does not exist (pruned?)") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("skills"), dict):
            raise ValueError("expected an object with a 'skills' map")
        tree: Tree = {}
        for name, files in data["skills"].items():
            try:
                validate_name(name)
            except SkillError:
                raise ValueError(f"skill name {str(name)[:80]!r} is invalid") from None
            if not isinstance(files, dict) or not files:
                raise ValueError(f"skill {name!r}: expected a non-empty map of files")
            if len(files) > MAX_FILES_PER_SKILL:
                raise ValueError(f"skill {name!r}: more than {MAX_FILES_PER_SKILL} files")
            clean: dict[str, str] = {}
            for rel, sha in files.items():
                check_rel_path(rel)
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


def read_blob(root: Path, sha: str, where: str = "") -> bytes:
    """A stored file's bytes, checked against its hash (a changed blob is an error)."""
    if not _SHA_RE.match(sha):
        raise StoreError(f"{where or root}: {sha[:80]!r} is not a sha256")
    sub = root / STORE / "objects" / sha[:2]
    if sub.is_symlink():
        raise StoreError(f"{sub}: is a symbolic link; a library store holds none")
    p = sub / sha
    try:
        data = read_store_file(p, 2 * MAX_FILE_BYTES)
    except FileNotFoundError:
        raise StoreError(f"{p}: missing object (referenced by {where or 'a version'})") from None
    if sha256_hex(data) != sha:
        raise StoreError(f"{p}: tampered or corrupt object (its content does not hash to its name)")
    return data


def read_version_blobs(root: Path, version: str) -> dict[str, bytes]:
    """Every blob of a stored version by sha, each read and checked against its hash.

    Called before a commit point that moves HEAD to ``version``: a corrupt or missing
    object is an error while nothing has changed yet, not a library wedged at a version
    that cannot be written out.
    """
    return {
        sha: read_blob(root, sha, f"version {version}")
        for files in read_tree(root, version).values()
        for sha in files.values()
    }
