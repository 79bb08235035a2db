"""A checkout never deletes what the library does not track; ``status`` shows hidden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from reskill_gym.skills import LibraryError, Operation, SkillLibrary


def _dirty_b(library: SkillLibrary) -> str:
    """Bring skill b back (HEAD~1 has it), then leave untracked things in its folder.

    Returns the version without b (the HEAD before)."""
    without_b = library.head
    library.checkout("HEAD~1")
    b = library.root / "b"
    (b / ".notes").write_text("my notes, not in any version")
    (b / ".git").mkdir()
    (b / ".git" / "config").write_text("[core]\n")
    (b / "__pycache__").mkdir()
    return without_b


def test_status_lists_hidden_files(library: SkillLibrary) -> None:
    _dirty_b(library)
    st = library.status()
    assert st["untracked"] == ["b/.git/", "b/.notes", "b/__pycache__/"]
    assert st["added"] == st["modified"] == st["deleted"] == []


def test_checkout_refuses_to_delete_untracked_files(kit, library: SkillLibrary) -> None:
    v2 = _dirty_b(library)
    head = library.head
    with pytest.raises(LibraryError, match=r"b/\.notes") as err:
        library.checkout(v2)
    assert "b/.git/" in str(err.value) and "does not track" in str(err.value)
    line = kit.user_error(kit.cli("skills", "checkout", v2, "-L", library.root), "b/.notes")
    assert "does not track" in line
    kit.user_error(kit.cli("skills", "rollback", "-L", library.root), "b/.git/")
    # nothing changed: HEAD, working copy, the user's files
    assert library.head == head and not (library.store / "PENDING.json").exists()
    b = library.root / "b"
    assert (b / ".notes").read_text() == "my notes, not in any version"
    assert (b / ".git" / "config").is_file() and (b / "SKILL.md").is_file()
    st = kit.cli("skills", "status", "-L", library.root, "--json")
    assert st.exit_code == 0 and "b/.notes" in st.stdout
    # a commit that deletes b refuses as well
    with pytest.raises(LibraryError, match=r"b/\.notes"):
        library.commit([Operation.delete("b")], reason="drop b")
    # once the user moves their files away, the checkout goes through
    for p in (b / ".notes", b / ".git" / "config"):
        p.unlink()
    (b / ".git").rmdir()
    (b / "__pycache__").rmdir()
    assert library.checkout(v2) == v2 and not b.exists()


def test_commits_that_keep_the_folder_leave_hidden_files_alone(library: SkillLibrary) -> None:
    _dirty_b(library)
    library.commit([kit_skill("b", "new text")], reason="edit b")
    b = library.root / "b"
    assert (b / ".notes").is_file() and (b / ".git" / "config").is_file()
    assert "new text" in (b / "SKILL.md").read_text()


def test_untracked_file_that_would_be_overwritten_is_refused(library: SkillLibrary) -> None:
    # HEAD is {a}; HEAD~1 has b/SKILL.md. A plain (non-skill) folder b with a different
    # file of that name is not the library's: refuse rather than overwrite it.
    b = library.root / "b"
    b.mkdir()
    (b / "SKILL.md").write_bytes(b"\xff my own bytes")
    with pytest.raises(LibraryError):
        library.checkout("HEAD~1")
    assert (b / "SKILL.md").read_bytes() == b"\xff my own bytes"


def test_hand_deleted_folder_contents_do_not_block(library: SkillLibrary, tmp_path: Path) -> None:
    library.checkout("HEAD~1")
    (library.root / "b" / "SKILL.md").unlink()  # b is no longer a skill folder: "deleted"
    with pytest.raises(LibraryError, match="edits not recorded"):
        library.checkout("HEAD~1")


def kit_skill(name: str, content: str):
    from reskill_gym.skills import Skill, Trigger

    return Skill(
        name=name, description=f"Skill {name}.", content=content, trigger=Trigger(type="general")
    )
