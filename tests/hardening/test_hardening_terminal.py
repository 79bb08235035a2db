"""Untrusted text on the terminal: markup prints as itself, escapes and control characters
never reach it, and huge values are clipped so listing stays fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reskill_gym.skills import SkillLibrary, Trigger

MARKUP = "[/x] [bold red]loud[/] [link=file:///etc]x"
ANSI = "visible\x1b[2K\rHIDDEN\x1b]0;title\x07\x1b[31m"


def _lib_with(kit, tmp_path: Path, content: str | None = None, **fields) -> SkillLibrary:
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    lib.commit([kit.skill("a", content, **fields)], reason=fields.get("description", "r"))
    return lib


@pytest.mark.parametrize("text", [MARKUP, ANSI], ids=["markup", "ansi"])
def test_listings_print_untrusted_text_inert(kit, tmp_path: Path, text: str) -> None:
    trig = Trigger(type="observation_pattern", pattern=r"\[/x\]")
    lib = _lib_with(kit, tmp_path, description=f"d {text}", trigger=trig, content=f"do {text}")
    lib.commit([kit.skill("b")], reason=f"reason {text}")
    for args in (("ls",), ("log",), ("show", "a"), ("diff", "HEAD~2"), ("status",)):
        res = kit.cli("skills", *args, "-L", lib.root)
        assert res.exit_code == 0, (args, res.output)
        assert "\x1b" not in res.output and "\r" not in res.output and "\x07" not in res.output
    shown = kit.cli("skills", "show", "a", "-L", lib.root).output
    if text == MARKUP:
        assert "[bold red]loud[/]" in shown
    else:
        assert "visible" in shown and "HIDDEN" in shown


def test_validate_prints_markup_in_errors(kit, tmp_path: Path) -> None:
    front = "name: a\ndescription: '[/x]'\nmetadata:\n  reskill.version: '[/y]'\n"
    kit.write_raw_skill(tmp_path, "a", front)
    res = kit.cli("skills", "validate", tmp_path / "a")
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output and "[/y]" in res.output


def test_error_lines_carry_no_escapes(kit, tmp_path: Path) -> None:
    folder = tmp_path / "src" / "b\x1b[2K\rHIDDEN"
    kit.write_raw_skill(folder.parent, folder.name, "name: b\ndescription: d\n")
    res = kit.cli("skills", "import", tmp_path / "src", "-L", tmp_path / "lib")
    line = kit.user_error(res, "folder name")
    assert "\x1b" not in res.output and "\r" not in res.output and "HIDDEN" in line


def test_huge_reason_is_clipped_and_log_stays_fast(kit, tmp_path: Path) -> None:
    lib = _lib_with(kit, tmp_path)
    lib.commit([kit.skill("b")], reason="r" * 3_000_000)
    last = json.loads((lib.store / "history.jsonl").read_text().splitlines()[-1])
    assert len(last["reason"]) == 8000 and last["reason"].endswith("chars]")
    # a 60 MB line written by hand is skipped (with a warning), not rendered
    with open(lib.store / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"kind": "event", "reason": "x" * 60_000_000}) + "\n")
    t0 = time.perf_counter()
    res = kit.cli("skills", "log", "-L", lib.root)
    assert res.exit_code == 0 and time.perf_counter() - t0 < 10
    assert len(res.output) < 50_000
