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
