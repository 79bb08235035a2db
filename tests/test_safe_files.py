"""``reskill_gym.safe_files``: links, FIFOs, devices and folders are refused; reads are capped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reskill_gym import safe_files
from reskill_gym.safe_files import UnsafeFileError, open_append, read_bytes, read_text


def test_reads_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("héllo")
    assert read_text(tmp_path / "a.txt") == "héllo"


def test_link_is_refused_naming_its_target(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafeFileError, match="symbolic link") as err:
        read_bytes(tmp_path / "link")
    assert err.value.filename == str(tmp_path / "link") and "secret" in err.value.strerror
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        open_append(tmp_path / "link")
    assert (tmp_path / "secret").read_text() == "s"


@pytest.mark.parametrize("opener", [read_bytes, open_append], ids=["read", "append"])
def test_fifo_is_refused_without_blocking(tmp_path: Path, opener) -> None:
    os.mkfifo(tmp_path / "pipe")
    t0 = time.perf_counter()
    with pytest.raises(UnsafeFileError, match="FIFO"):
        opener(tmp_path / "pipe")
    assert time.perf_counter() - t0 < 5


def test_folder_and_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises((UnsafeFileError, IsADirectoryError)):
        read_bytes(tmp_path)
    with pytest.raises(UnsafeFileError, match="character device"):
        read_bytes("/dev/null")


def test_size_cap(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(UnsafeFileError, match="over 100 bytes"):
        read_bytes(tmp_path / "big", max_bytes=100)
    assert read_bytes(tmp_path / "big", max_bytes=101) == b"x" * 101


def test_append_creates_and_appends(tmp_path: Path) -> None:
    for line in (b"a\n", b"b\n"):
        with open_append(tmp_path / "log.jsonl") as fh:
            fh.write(line)
    assert (tmp_path / "log.jsonl").read_bytes() == b"a\nb\n"


def test_copy_file_and_tree_refuse_links_and_fifos(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes(b"\x89PNG" + b"x" * (3 << 20))  # several copy chunks
    (src / "sub" / "b.txt").write_text("b")
    written = safe_files.copy_tree(src, tmp_path / "dest")
    assert sorted(p.relative_to(tmp_path / "dest").as_posix() for p in written) == [
        "a.png",
        "sub/b.txt",
    ]
    assert (tmp_path / "dest" / "a.png").read_bytes() == (src / "a.png").read_bytes()
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (src / "sub" / "link.png").symlink_to(outside)
    with pytest.raises(safe_files.UnsafeFileError, match="symbolic link.*link.png"):
        safe_files.copy_tree(src, tmp_path / "dest2")
    assert not (tmp_path / "dest2").exists()  # refused before anything was written
    with pytest.raises(safe_files.UnsafeFileError, match="symbolic link"):
        safe_files.copy_file(src / "sub" / "link.png", tmp_path / "c.png")
    (src / "sub" / "link.png").unlink()
    os.mkfifo(src / "pipe")
    with pytest.raises(safe_files.UnsafeFileError, match="FIFO"):
        safe_files.copy_tree(src, tmp_path / "dest3")


# ----- listing ---------------------------------------------------------------------------
def _tree_with_traps(tmp_path: Path) -> tuple[Path, Path]:
    """``root`` with a file, a sub-folder, a hidden file, a FIFO, a link to a file outside
    and a link to a folder outside (which holds a file that must never be listed)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (root / "a.txt").write_text("a")
    (root / ".hidden").write_text("h")
    (root / "sub" / "b.txt").write_text("b")
    os.mkfifo(root / "sub" / "pipe")
    (root / "file-link").symlink_to(outside / "secret.txt")
    (root / "sub" / "dir-link").symlink_to(outside)
    return root, outside


def test_list_folder_types_entries_without_following_links(tmp_path: Path) -> None:
    root, _ = _tree_with_traps(tmp_path)
    got = safe_files.list_folder(root, links="include")
    assert [(e.name, e.kind) for e in got] == [
        (".hidden", "file"),
        ("a.txt", "file"),
        ("file-link", "link"),
        ("sub", "folder"),
    ]
    assert got[1].path == root / "a.txt" and got[1].rel == "a.txt"
    assert [e.name for e in safe_files.list_folder(root, links="skip", hidden=False)] == [
        "a.txt",
        "sub",
    ]
    assert [e.name for e in safe_files.list_folder(root, links="skip", match="*.txt")] == ["a.txt"]
    sub = safe_files.list_folder(root / "sub", links="include", special="include")
    assert [(e.name, e.kind) for e in sub] == [
        ("b.txt", "file"),
        ("dir-link", "link"),
        ("pipe", "special"),
    ]


def test_list_folder_refuses_links_and_fifos_by_default(tmp_path: Path) -> None:
    root, _ = _tree_with_traps(tmp_path)
    with pytest.raises(UnsafeFileError, match="symbolic link.*secret.txt") as err:
        safe_files.list_folder(root)
    assert err.value.filename == str(root / "file-link")
    with pytest.raises(UnsafeFileError, match="symbolic link") as err:
        safe_files.list_folder(root / "sub", special="skip")
    assert err.value.filename == str(root / "sub" / "dir-link")
    t0 = time.perf_counter()
    with pytest.raises(UnsafeFileError, match=r"not a regular file or folder \(a FIFO\)"):
        safe_files.list_folder(root / "sub", links="skip")
    assert time.perf_counter() - t0 < 5
    # a refused link is refused even when its name does not match the pattern
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        safe_files.list_folder(root, match="*.txt")


def test_a_folder_that_is_a_link_is_refused_unless_typed_by_the_user(tmp_path: Path) -> None:
    root, outside = _tree_with_traps(tmp_path)
    (tmp_path / "linked").symlink_to(outside)
    for lister in (safe_files.list_folder, safe_files.walk_tree):
        with pytest.raises(UnsafeFileError, match="symbolic link") as err:
            lister(tmp_path / "linked")
        assert err.value.filename == str(tmp_path / "linked")
    got = safe_files.list_folder(tmp_path / "linked", follow_links=True)
    assert [e.name for e in got] == ["secret.txt"]
    with pytest.raises(NotADirectoryError):
        safe_files.list_folder(root / "a.txt")
    with pytest.raises(NotADirectoryError):
        safe_files.list_folder(root / "sub" / "pipe")  # no wait on the FIFO either
    with pytest.raises(FileNotFoundError):
        safe_files.list_folder(tmp_path / "missing")
    assert safe_files.list_folder(tmp_path / "missing", missing_ok=True) == []


def test_walk_tree_never_descends_through_a_link(tmp_path: Path) -> None:
    root, _ = _tree_with_traps(tmp_path)
    got = safe_files.walk_tree(root, links="include", special="skip", hidden=False)
    assert [(e.rel, e.kind) for e in got] == [
        ("a.txt", "file"),
        ("file-link", "link"),
        ("sub", "folder"),
        ("sub/b.txt", "file"),
        ("sub/dir-link", "link"),
    ]
    assert all("secret" not in e.rel for e in got)
    with pytest.raises(UnsafeFileError, match="FIFO") as err:
        safe_files.walk_tree(root, links="skip")
    assert err.value.filename == str(root / "sub" / "pipe")
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        safe_files.walk_tree(root, special="skip")


def test_listing_is_bounded(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    assert len(safe_files.list_folder(tmp_path, max_entries=5)) == 5
    with pytest.raises(safe_files.TooManyEntriesError, match="more than 4 entries") as err:
        safe_files.list_folder(tmp_path, max_entries=4)
    assert err.value.filename == str(tmp_path)
    # hidden and filtered-out entries count too: the bound is on the work, not the result
    with pytest.raises(safe_files.TooManyEntriesError):
        safe_files.list_folder(tmp_path, match="nothing", max_entries=4)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "g").write_text("x")
    assert len(safe_files.walk_tree(tmp_path, max_entries=7)) == 7
    with pytest.raises(safe_files.TooManyEntriesError):  # the bound is on the whole tree
        safe_files.walk_tree(tmp_path, max_entries=6)
