"""Fixtures: tiny real skills and libraries on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from reskill_gym.skills import Skill, Trigger, write_skill

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "skills"


def make_skill(name: str, kind: str = "general", pattern: str | None = None, **kw) -> Skill:
    """A valid skill with a one-line action."""
    kw.setdefault("description", f"Skill {name}.")
    kw.setdefault("content", f"Do what {name} says.")
    return Skill(name=name, trigger=Trigger(type=kind, pattern=pattern), **kw)


@pytest.fixture
def skill_folder(tmp_path: Path) -> Path:
    """A folder holding three ReSkill skills of different trigger types."""
    root = tmp_path / "seed"
    write_skill(make_skill("plan-first", "beginning"), root)
    write_skill(make_skill("open-closed", "observation_pattern", r"\bis closed\b"), root)
    write_skill(make_skill("after-take", "action_pattern", r"^take \S+ \d+ from "), root)
    return root
