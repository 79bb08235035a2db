"""Trigger regexes RE2 cannot run are rejected when a skill loads; matching stays linear."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reskill_gym.skills import (
    LibraryView,
    Skill,
    SkillError,
    Trigger,
    TurnContext,
    UnsafePatternError,
    read_skill,
)
from reskill_gym.skills.triggers import compile_pattern

BACKTRACKING = [
    r".*.*.*.*.*.*(?=zqzq)",  # the pattern that made an ALFWorld reset() take 20 s
    r".*.*.*.*.*.*.*.*(?=zqzq)",  # eight of them never finished on Python re
    r"(?<=go to )desk",
    r"(?!open)\w+ \d",
    r"(a)\1",
    r"(a+)+$",
    r"x{2000}",
]


@pytest.mark.parametrize("pattern", BACKTRACKING)
def test_unrunnable_or_catastrophic_patterns_are_rejected_at_load(
    kit, tmp_path: Path, pattern: str
) -> None:
    with pytest.raises(UnsafePatternError):
        compile_pattern(pattern)
    with pytest.raises(ValueError, match="RE2|quantifier|back-references"):
        Trigger(type="observation_pattern", pattern=pattern)
    quoted = "'" + pattern.replace("'", "''") + "'"
    front = (
        "name: bad-trigger\ndescription: d\nmetadata:\n"
        f"  reskill.trigger.type: observation_pattern\n  reskill.trigger.pattern: {quoted}\n"
    )
    folder = kit.write_raw_skill(tmp_path / "src", "bad-trigger", front)
    with pytest.raises(SkillError, match="reskill.trigger.pattern") as err:
        read_skill(folder)
    assert "bad-trigger/SKILL.md" in str(err.value)
    kit.user_error(kit.cli("skills", "import", tmp_path / "src", "-L", tmp_path / "lib"), "pattern")
    assert not (tmp_path / "lib" / "bad-trigger").exists()


def test_accepted_patterns_match_in_linear_time_on_huge_observations() -> None:
    skills = [
        Skill(
            name=f"s{i}",
            description="d",
            content="c",
            trigger=Trigger(type="observation_pattern", pattern=".*" * 8 + f"zq{i}"),
        )
        for i in range(20)
    ]
    view = LibraryView("0" * 12, skills)
    huge = "a" * 2_000_000
    t = time.perf_counter()
    for turn in range(20):
        view.select(TurnContext(turn, "look", huge + str(turn), "task"))
    assert time.perf_counter() - t < 1.0
