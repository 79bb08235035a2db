"""The working copy of a skill library: the plain ``<root>/<name>/`` folders people edit.

Exports ``untracked_entries``, ``worktree_status``, ``check_worktree`` and ``sync_worktree``.

The working copy is the version named by ``.reskill/WORKTREE``, written out as spec-valid
skill folders so any Claude-compatible tool reads them. Hand edits there are recorded with
``SkillLibrary.snapshot``; a commit or checkout refuses while there are unrecorded edits.
A rewrite touches only files the library wrote: it never writes through a link, never
deletes what the library does not store (hidden files, caches, ``.git/`` ...), and never
replaces a file that holds neither the old nor the new version's bytes (somebody's
unrecorded edit). Commands that move HEAD refuse such files before their commit point
(``check_worktree``); a re-sync after a crash or a hand-edited ``HEAD`` keeps them in
place and names them (``sync_worktree``).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / ".notes").write_text("mine")
4
>>> untracked_entries(d)
['.notes']
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_bytes
from reskill_gym.skills import store
from reskill_gym.skills.errors import LibraryError, SkillError

__all__ = ["untracked_entries", "worktree_status", "check_worktree", "sync_worktree"]

logger = logging.getLogger(__name__)


def untracked_entries(folder: Path) -> list[str]:
    """Entries of a skill folder the library never stores: hidden files, caches, links.

    Relative POSIX paths, sorted; a hidden or cache folder is one entry (its contents go
    with it).
    """
    out: list[str] = []
    stack = [(folder, "")]
    while stack:
        here, prefix = stack.pop()
        try:
            entries = safe_files.list_folder(here, links="include", special="include")
        except OSError:
            continue  # unreadable: nothing to report from it (reading the skill says why)
        for e in entries:
            rel = prefix + e.name
            if e.name.startswith(".") or e.name == "__pycache__" or e.kind == "link":
                out.append(rel + ("/" if e.kind == "folder" else ""))
            elif e.kind == "folder":
                stack.append((e.path, rel + "/"))
    return sorted(out)


def worktree_status(root: Path, base: str) -> dict[str, list[str]]:
    """Hand edits in ``root``'s working copy relative to version ``base``.

    ``added`` / ``modified`` / ``deleted``: skill names. ``untracked``: ``name/path`` of
    what sits in a skill folder but is never stored.
    """
    tree = store.read_tree(root, base)
    on_disk = {d.name: d for d in store.skill_dirs(root)}
    st: dict[str, list[str]] = {"added": [], "modified": [], "deleted": [], "untracked": []}
    for name in sorted(set(on_disk) | set(tree)):
        if name not in tree:
            st["added"].append(name)
        elif name not in on_disk:
            st["deleted"].append(name)
        else:
            files = {
                r: store.sha256_hex(b) for r, b in store.read_skill_folder(on_disk[name]).items()
            }
            if files != tree[name]:
                st["modified"].append(name)
        if name in on_disk:
            st["untracked"] += [f"{name}/{rel}" for rel in untracked_entries(on_disk[name])]
    return st


def check_worktree(root: Path, old: str | None, new: str) -> None:
    """Raise ``LibraryError`` if rewriting the working copy from ``old`` to ``new`` would
    delete or overwrite anything the library does not track, or write through a link.

    Runs before a commit point, so a refusal changes nothing.
    """
    old_tree = store.read_tree(root, old) if old else {}
    new_tree = store.read_tree(root, new)
    problems: list[str] = []
    for name in sorted(set(old_tree) | set(new_tree)):
        folder = root / name
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
            problems += [f"{name}/{rel}" for rel in untracked_entries(folder)]
            try:
                files = store.read_skill_folder(folder)
            except SkillError as exc:
                problems.append(f"{name} ({exc.message})")
                continue
            problems += [f"{name}/{rel}" for rel in files if rel not in tracked]
            continue
        for rel, sha in new_tree[name].items():
            try:
                target = store.no_links_below(root, [name, *rel.split("/")])
            except LibraryError as exc:
                problems.append(f"{name}/{rel} ({exc})")
                continue
            if rel in tracked or not os.path.lexists(target):
                continue
            if not target.is_file() or store.sha256_hex(safe_files.read_bytes(target)) != sha:
                problems.append(f"{name}/{rel} (untracked, would be overwritten)")
    if problems:
        shown = ", ".join(problems[:10]) + (
            f", ... (+{len(problems) - 10})" if len(problems) > 10 else ""
        )
        raise LibraryError(
            f"{root}: refusing to rewrite the working copy ({old} -> {new}): it would "
            f"delete or overwrite files the library does not track: {shown}. Move them "
            "out of the skill folders (or remove them) and run the command again"
        )


def sync_worktree(root: Path, old: str | None, new: str) -> list[str]:
    """Make the working copy equal ``new`` as far as it is the library's to change; then
    point ``WORKTREE`` at ``new``. Returns what it kept (``name/path``, sorted).

    A file is rewritten or removed only while it holds what ``old`` or ``new`` put there
    (or is missing): anything else in its place is somebody's unrecorded edit and stays
    where it is, with a warning naming it; ``status()`` then shows it as a change to
    record (``snapshot``) or revert. Commands that move HEAD refuse such edits before
    their commit point (``check_worktree`` and the library's dirty check), so this is
    what keeps them when the working copy is re-synced after a crash past the commit
    point or after ``HEAD`` was edited by hand. Every blob of ``new`` is read and
    checked before the first write.
    """
    old_tree = store.read_tree(root, old) if old else {}
    new_tree = store.read_tree(root, new)
    blobs = store.read_version_blobs(root, new)
    kept: list[str] = []
    for name in sorted(set(old_tree) | set(new_tree)):
        folder = root / name
        ours = old_tree.get(name, {})
        want = new_tree.get(name, {})
        if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
            kept.append(f"{name} (not a folder)")
            continue
        try:
            on_disk = store.read_skill_folder(folder) if folder.is_dir() else {}
        except SkillError as exc:
            kept.append(f"{name} ({exc.message})")
            continue
        disk = {rel: store.sha256_hex(data) for rel, data in on_disk.items()}
        for rel, sha in want.items():
            have = disk.get(rel)
            if have == sha:
                continue
            if have is not None and have != ours.get(rel):
                kept.append(f"{name}/{rel}")
                continue
            try:
                target = store.no_links_below(root, [name, *rel.split("/")])
            except LibraryError:
                kept.append(f"{name}/{rel} (a link on the way)")
                continue
            atomic_write_bytes(target, blobs[sha])
            store._crash_point("worktree-file-written")
        gone = [rel for rel in disk if rel not in want and rel in ours]
        kept += [f"{name}/{rel}" for rel in gone if disk[rel] != ours[rel]]
        _remove_files(folder, [rel for rel in gone if disk[rel] == ours[rel]], name in new_tree)
    if kept:
        shown = ", ".join(kept[:10]) + (f", ... (+{len(kept) - 10})" if len(kept) > 10 else "")
        logger.warning(
            "%s: kept %d file(s) holding edits not recorded in any version: %s "
            "(`reskill skills status` lists them; `reskill skills snapshot` records them)",
            root,
            len(kept),
            shown,
        )
    store.write_ref(root / store.STORE, "WORKTREE", new)
    return sorted(kept)


def _remove_files(folder: Path, rels: list[str], keep_folder: bool) -> None:
    """Delete ``rels`` from a skill folder, then the folders they leave empty (the skill
    folder itself too unless ``keep_folder``).

    Never ``rmtree``: whatever else is there stays.
    """
    dirs: set[Path] = set() if keep_folder else {folder}
    for rel in rels:
        (folder / rel).unlink()
        parent = (folder / rel).parent
        while parent != folder:
            dirs.add(parent)
            parent = parent.parent
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty: somebody's files are in it
            if not keep_folder:
                logger.warning("%s: left in place (holds files the library does not track)", d)
