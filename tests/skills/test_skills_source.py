"""Skill references: the one way a view, a live library or a seeded library is opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reskill_gym.skills import LibraryError, LibraryView, SkillError, SkillLibrary
from reskill_gym.skills.source import (
    is_library,
    open_source,
    open_view,
    parse_skill_ref,
    resolve_ref,
    seed_library,
)

from .conftest import make_skill


def _library(folder: Path) -> tuple[SkillLibrary, str, str]:
    """A library over ``folder`` with two versions: (library, first, second)."""
    lib = SkillLibrary.open(folder, create=True)
    v1 = lib.head
    v2 = lib.commit([make_skill("newcomer")], reason="test", step=1)
    return lib, v1, v2


def test_parse_keeps_an_at_sign_of_an_existing_path(tmp_path: Path) -> None:
    odd = tmp_path / "lib@home"
    assert parse_skill_ref(f"{tmp_path}/lib@home") == (f"{tmp_path}/lib", "home")
    odd.mkdir()
    assert parse_skill_ref(str(odd)) == (str(odd), None)
    assert parse_skill_ref("a@b/c") == ("a@b/c", None)  # a version has no slash


def test_resolve_seed_none_and_pins(tmp_path: Path) -> None:
    calls: list[str] = []

    def seed() -> Path:
        calls.append("seed")
        return tmp_path

    assert resolve_ref("none") == (None, None)
    assert resolve_ref("lib@HEAD~1", seed=seed) == (Path("lib"), "HEAD~1")
    assert calls == []  # the seed folder is looked up only when asked for
    assert resolve_ref("seed@abcd", seed=seed) == (tmp_path, "abcd") and calls == ["seed"]
    with pytest.raises(LibraryError, match="no env was given"):
        resolve_ref("seed")
    with pytest.raises(LibraryError, match="pins version"):
        resolve_ref("lib@abcd", "ef01")
    with pytest.raises(LibraryError, match="no versions"):
        resolve_ref("none@HEAD")


def test_open_source_live_library_and_pinned_views(skill_folder: Path) -> None:
    lib, v1, v2 = _library(skill_folder)
    view, live = open_source(str(skill_folder))
    assert view is None and live is not None and live.head == v2 and is_library(skill_folder)
    assert open_source(lib) == (None, lib)
    for ref, version in ((f"{skill_folder}@{v1}", None), (skill_folder, v1), (lib, v1)):
        pinned, none = open_source(ref, version)
        assert none is None and pinned is not None and pinned.version == v1
    assert open_view(f"{skill_folder}@HEAD~1").version == v1  # type: ignore[union-attr]
    frozen = open_view(skill_folder)
    lib.commit([make_skill("later")], reason="test", step=2)
    assert frozen is not None and frozen.version == v2 and "later" not in frozen.names
    with pytest.raises(LibraryError, match="unknown version"):
        open_source(skill_folder, "deadbeef0000")


def test_open_source_plain_folder(skill_folder: Path) -> None:
    content = LibraryView.from_folder(skill_folder).version
    assert not is_library(skill_folder)
    for ref in (skill_folder, f"{skill_folder}@HEAD", f"{skill_folder}@{content[:6]}"):
        view, live = open_source(ref)
        assert live is None and view is not None and view.version == content
    with pytest.raises(LibraryError, match="plain skill folder"):
        open_source(skill_folder, "0123456789ab")
    assert not (skill_folder / ".reskill").exists()  # opening writes nothing


def test_open_source_views_none_and_errors(tmp_path: Path, skill_folder: Path) -> None:
    view = LibraryView.from_folder(skill_folder)
    assert open_source(view) == (view, None) and open_source(None) == (None, None)
    assert open_source("none") == (None, None)
    with pytest.raises(LibraryError, match="not 0123"):
        open_source(view, "0123")
    with pytest.raises(ValueError, match="skills=None"):
        open_source(None, "HEAD")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source(tmp_path / "missing")
    seeded = open_view("seed", seed=lambda: skill_folder)
    assert seeded is not None and seeded.version == view.version


def test_seed_library_from_a_plain_folder_copies_every_file(
    tmp_path: Path, skill_folder: Path
) -> None:
    (skill_folder / "plan-first" / "notes.txt").write_text("extra file\n")
    lib = seed_library(str(skill_folder), tmp_path / "run" / "skills", reason="copied")
    assert lib.head == LibraryView.from_folder(skill_folder).version  # same content, same id
    assert (lib.root / "plan-first" / "notes.txt").read_text() == "extra file\n"
    (entry,) = lib.history()
    assert entry.kind == "init" and entry.reason == "copied"
    assert not is_library(skill_folder)  # the source is only read


def test_seed_library_from_a_pinned_library_version(tmp_path: Path, skill_folder: Path) -> None:
    _, v1, _ = _library(skill_folder)
    lib = seed_library(f"{skill_folder}@{v1}", tmp_path / "copy")
    assert lib.head == v1 and "newcomer" not in lib.view().names
    assert len(lib.history()) == 1  # the copy starts its own lineage at the source's id


def test_seed_library_empty_and_refusals(tmp_path: Path, skill_folder: Path) -> None:
    assert len(seed_library("none", tmp_path / "empty").view()) == 0
    assert len(seed_library(None, tmp_path / "empty2").view()) == 0
    busy = tmp_path / "busy"
    (busy / "x").mkdir(parents=True)
    with pytest.raises(LibraryError, match="new or empty folder"):
        seed_library(skill_folder, busy)
    with pytest.raises(FileNotFoundError):
        seed_library(tmp_path / "missing", tmp_path / "d1")
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(skill_folder / "plan-first", linked / "plan-first")
    with pytest.raises(SkillError, match="link"):
        seed_library(linked, tmp_path / "d2")
