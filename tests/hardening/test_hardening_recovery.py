"""The store never overwrites what it did not write; HEAD moves only to a version that was
read and checked whole; a store file that is a FIFO is refused, not waited on."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from reskill_gym.skills import LibraryError, Operation, SkillError, SkillLibrary, StoreError
from reskill_gym.skills import store as store_mod


class _Killed(BaseException):
    """Stands in for kill -9 at a crash point: nothing after it runs, nothing is undone."""


def _kill_at(monkeypatch: pytest.MonkeyPatch, phase: str) -> None:
    def hook(name: str) -> None:
        if name == phase:
            raise _Killed(name)

    monkeypatch.setattr(store_mod, "_crash_point", hook)


def _edit(path: Path, text: str) -> None:
    path.write_text(path.read_text().replace("Do what", text))


def test_hand_edited_head_keeps_unrecorded_edits(kit, library: SkillLibrary) -> None:
    # HEAD = {a}; the user edits a, then points HEAD by hand at HEAD~1 = {a, b}
    a_md = library.root / "a" / "SKILL.md"
    _edit(a_md, "MY EDIT: do what")
    v1 = library.resolve("HEAD~1")
    (library.store / "HEAD").write_text(v1 + "\n")
    res = kit.cli("skills", "status", "-L", library.root, "--json")  # read-only, recovers
    assert res.exit_code == 0, res.output
    assert "MY EDIT" in a_md.read_text()  # kept, not overwritten
    assert json.loads(res.stdout)["modified"] == ["a"]
    assert (library.root / "b" / "SKILL.md").is_file()  # what was ours is synced
    lib = SkillLibrary.open(library.root)
    assert lib.head == v1 and lib.status()["modified"] == ["a"]
    vid = lib.snapshot(reason="keep my edit")  # and the way out records them
    assert "MY EDIT" in lib.view(vid).get("a").content


def test_edits_after_a_kill_past_the_commit_point_are_kept(
    monkeypatch: pytest.MonkeyPatch, kit, library: SkillLibrary
) -> None:
    before = library.head
    _kill_at(monkeypatch, "head-moved")
    with pytest.raises(_Killed):
        library.commit([Operation.delete("a"), kit.skill("c")], reason="killed")
    monkeypatch.undo()
    # the user edits the working copy before anything recovers: a (which the new HEAD
    # deletes) and a plain folder c of their own (which the new HEAD adds)
    _edit(library.root / "a" / "SKILL.md", "MINE: do what")
    (library.root / "a" / "notes.md").write_text("my notes")
    (library.root / "c").mkdir()
    (library.root / "c" / "SKILL.md").write_text("my own c, not the library's")
    lib = SkillLibrary.open(library.root)  # recovery
    assert lib.head != before and store_mod.read_ref(lib.store, "WORKTREE") == lib.head
    assert "MINE" in (library.root / "a" / "SKILL.md").read_text()
    assert (library.root / "a" / "notes.md").read_text() == "my notes"
    assert (library.root / "c" / "SKILL.md").read_text() == "my own c, not the library's"
    # and nothing wedges: every command works, status shows what to record
    st = lib.status()
    assert st["added"] == ["a"]
    res = kit.cli("skills", "ls", "-L", library.root)
    assert res.exit_code == 0, res.output


def test_half_synced_working_copy_is_finished_without_warnings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, library: SkillLibrary, kit
) -> None:
    _kill_at(monkeypatch, "worktree-file-written")
    with pytest.raises(_Killed):
        library.commit([kit.skill("c"), kit.skill("d"), kit.skill("a", "new a")], reason="x")
    monkeypatch.undo()
    lib = SkillLibrary.open(library.root)
    assert "kept" not in caplog.text
    assert lib.status() == {"added": [], "modified": [], "deleted": [], "untracked": []}


def test_checkout_reads_every_blob_before_head_moves(kit, library: SkillLibrary) -> None:
    # HEAD~1 has b; corrupt b's blob (a shared blob would corrupt HEAD too)
    v1 = library.resolve("HEAD~1")
    tree = store_mod.read_tree(library.root, v1)
    sha = tree["b"]["SKILL.md"]
    blob = library.store / "objects" / sha[:2] / sha
    blob.write_bytes(blob.read_bytes() + b"tampered")
    head = library.head
    with pytest.raises(StoreError, match="does not hash"):
        library.checkout(v1)
    assert library.head == head
    kit.user_error(kit.cli("skills", "rollback", "-L", library.root), "does not hash")
    assert library.head == head and not (library.store / "PENDING.json").exists()
    for args in (("status",), ("ls",), ("checkout", head)):  # not wedged
        res = kit.cli("skills", *args, "-L", library.root)
        assert res.exit_code == 0, (args, res.output)


def test_checkout_of_an_unparsable_version_leaves_head(kit, library: SkillLibrary) -> None:
    bad = b"---\nname: a\n---\nno description\n"
    sha = store_mod.put_blob(library.store, bad)
    vid = kit.forge_version(library, {"a": {"SKILL.md": sha}}, move_head=False)
    head = library.head
    with pytest.raises(SkillError, match="description"):
        library.checkout(vid)
    assert library.head == head and kit.cli("skills", "ls", "-L", library.root).exit_code == 0


def test_version_with_too_many_files_is_refused(kit, library: SkillLibrary) -> None:
    tree = store_mod.read_tree(library.root, library.head)
    sha = tree["a"]["SKILL.md"]
    files = {"SKILL.md": sha, **{f"f{i}.md": sha for i in range(1001)}}
    vid = kit.forge_version(library, {"a": files}, move_head=False)
    with pytest.raises(StoreError, match="more than 256 files"):
        library.checkout(vid)
    assert not (library.root / "a" / "f0.md").exists()


def test_parent_cycle_in_history_is_an_error_not_a_walk(kit, library: SkillLibrary) -> None:
    hist = library.store / "history.jsonl"
    entries = [json.loads(line) for line in hist.read_text().splitlines()]
    head, v1 = library.head, library.resolve("HEAD~1")
    for e in entries:
        if e.get("version") == v1 and e["kind"] in ("init", "commit"):
            e["parent"] = head  # v1's parent is HEAD, whose parent is v1
    hist.write_text("".join(json.dumps(e) + "\n" for e in entries))
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match="cycle"):
        library.resolve("HEAD~200000")
    assert time.perf_counter() - t0 < 5
    kit.user_error(kit.cli("skills", "show", "a", "-V", "HEAD~200000", "-L", library.root), "cycle")


def test_init_refuses_a_path_the_store_would_call_tampered(kit, tmp_path: Path) -> None:
    root = tmp_path / "lib"
    folder = kit.write_raw_skill(root, "a", "name: a\ndescription: d\n")
    deep = folder
    for _ in range(8):
        deep = deep / ("d" * 150)
    deep.mkdir(parents=True)
    (deep / "x.md").write_text("deep")
    with pytest.raises(SkillError, match="over 1024 characters"):
        SkillLibrary.open(root, create=True)
    assert not (root / ".reskill").exists()
    kit.user_error(kit.cli("skills", "init", "-L", root), "over 1024 characters")


@pytest.mark.parametrize(
    "where",
    ["HEAD", "WORKTREE", "PENDING.json", "history.jsonl", "version", "object"],
)
def test_fifo_in_the_store_is_refused_not_waited_on(kit, library: SkillLibrary, where: str) -> None:
    tree = store_mod.read_tree(library.root, library.head)
    sha = tree["a"]["SKILL.md"]
    target = {
        "version": library.store / "versions" / f"{library.head}.json",
        "object": library.store / "objects" / sha[:2] / sha,
    }.get(where, library.store / where)
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    t0 = time.perf_counter()
    res = kit.cli("skills", "ls", "-L", library.root)
    assert time.perf_counter() - t0 < 10
    kit.user_error(res, target.name, "regular file")


def test_linked_object_folder_is_not_read(kit, tmp_path: Path, library: SkillLibrary) -> None:
    tree = store_mod.read_tree(library.root, library.head)
    sha = tree["a"]["SKILL.md"]
    sub = library.store / "objects" / sha[:2]
    elsewhere = tmp_path / "elsewhere"
    sub.rename(elsewhere)
    sub.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(LibraryError, match="symbolic link"):
        SkillLibrary(library.root).view()
