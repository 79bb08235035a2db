"""Links are never followed out of a skill folder, a library or its store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reskill_gym.skills import (
    LibraryView,
    SkillError,
    SkillLibrary,
    StoreError,
    read_skill,
    validate_skill_dir,
    write_skill,
)

SECRET = "TOP-SECRET-CONTENT outside the tree"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every library, holding a file an attacker wants read."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.md").write_text(f"---\nname: plan\ndescription: {SECRET}\n---\n{SECRET}\n")
    (d / "notes.txt").write_text(SECRET)
    return d


def _linked_skill_md(parent: Path, outside: Path) -> Path:
    folder = parent / "plan"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").symlink_to(outside / "secret.md")
    return folder


def test_symlinked_skill_md_is_refused_everywhere(kit, tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "src"
    folder = _linked_skill_md(src, outside)
    with pytest.raises(SkillError, match="symbolic link") as err:
        read_skill(folder)
    assert "plan/SKILL.md" in str(err.value) and "secret.md" in str(err.value)
    errors = validate_skill_dir(folder)
    assert len(errors) == 1 and "symbolic link" in errors[0] and SECRET not in errors[0]
    with pytest.raises(SkillError, match="symbolic link"):
        LibraryView.from_folder(src)

    res = kit.cli("skills", "validate", src, "--json")
    assert res.exit_code == 1 and SECRET not in res.output
    assert "symbolic link" in json.loads(res.stdout)["results"][0]["errors"][0]
    kit.user_error(
        kit.cli("skills", "import", src, "-L", tmp_path / "lib"), "plan/SKILL.md", "link"
    )
    res = kit.cli("skills", "show", "plan", "-L", src)
    kit.user_error(res, "plan/SKILL.md", "symbolic link")
    assert SECRET not in res.output
    kit.user_error(kit.cli("skills", "ls", "-L", src), "symbolic link")


def test_symlinked_extra_file_is_never_stored_or_exported(
    kit, tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "seed"
    write_skill(kit.skill("plan"), root)
    (root / "plan" / "reference.md").symlink_to(outside / "notes.txt")
    res = kit.cli("skills", "init", "-L", root)
    kit.user_error(res, "plan/reference.md", "symbolic link", "notes.txt")
    assert not (root / ".reskill").exists()  # refused before anything was created
    with pytest.raises(SkillError, match="reference.md"):
        SkillLibrary.open(root, create=True)
    assert "symbolic link" in " ".join(validate_skill_dir(root / "plan"))


def test_symlinked_folders_are_refused(kit, tmp_path: Path, outside: Path) -> None:
    # a skill folder that is a link, and a link to a folder inside a skill
    root = tmp_path / "seed"
    write_skill(kit.skill("a"), root)
    write_skill(kit.skill("plan"), outside)
    (root / "plan").symlink_to(outside / "plan")
    with pytest.raises(SkillError, match="symbolic link"):
        LibraryView.from_folder(root)
    (root / "plan").unlink()
    (root / "a" / "refs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SkillError, match="refs"):
        LibraryView.from_folder(root)


def test_fifo_named_skill_md_is_not_read(kit, tmp_path: Path) -> None:
    folder = tmp_path / "plan"
    folder.mkdir()
    os.mkfifo(folder / "SKILL.md")  # reading it would block forever
    with pytest.raises(SkillError, match="not a regular file"):
        read_skill(folder)


def test_checkout_and_export_never_write_through_links(
    kit, tmp_path: Path, library: SkillLibrary, outside: Path
) -> None:
    before = kit.snapshot_tree(outside)
    # working copy: the folder of a skill the checkout brings back is a link to outside
    (library.root / "b").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Exception, match="symbolic link"):
        library.checkout("HEAD~1")
    kit.user_error(kit.cli("skills", "checkout", "HEAD~1", "-L", library.root), "symbolic link")
    (library.root / "b").unlink()
    # export: a link inside the destination
    dest = tmp_path / "export"
    dest.mkdir()
    (dest / "a").symlink_to(outside, target_is_directory=True)
    kit.user_error(kit.cli("skills", "export", dest, "-L", library.root), "symbolic link")
    assert kit.snapshot_tree(outside) == before


@pytest.mark.parametrize("name", ["history.jsonl", "lock", "HEAD", "versions", "objects"])
def test_store_entries_that_are_links_are_refused(
    kit, tmp_path: Path, library: SkillLibrary, outside: Path, name: str
) -> None:
    victim = outside / "notes.txt"
    target = library.store / name
    if target.is_dir():
        os.rename(target, outside / "moved")
        target.symlink_to(outside / "moved", target_is_directory=True)
    else:
        target.unlink(missing_ok=True)
        target.symlink_to(victim)
    before = kit.snapshot_tree(outside)
    with pytest.raises(StoreError, match=f"{name}: is a symbolic link"):
        lib = SkillLibrary.open(library.root)
        lib.commit([kit.skill("c")], reason="would append through the link")
    kit.user_error(kit.cli("skills", "prune", "-L", library.root, "--keep", "0"), "symbolic link")
    assert kit.snapshot_tree(outside) == before  # not truncated, appended to, or pruned


def test_import_of_a_parent_folder_refuses_a_linked_skill_folder(
    kit, tmp_path: Path, outside: Path
) -> None:
    """``skills import PARENT`` used to read a skill folder that is a link like its own."""
    write_skill(kit.skill("plan"), outside)
    src = tmp_path / "src"
    write_skill(kit.skill("a"), src)
    (src / "plan").symlink_to(outside / "plan", target_is_directory=True)
    lib = tmp_path / "lib"
    kit.user_error(kit.cli("skills", "import", src, "-L", lib), "src/plan", "symbolic link")
    assert not lib.exists()
    res = kit.cli("skills", "validate", src)  # validate reports it with the other folders
    assert res.exit_code == 1 and "symbolic link" in res.output
