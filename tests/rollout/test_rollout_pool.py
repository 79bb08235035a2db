"""EnvPool leases through a real library: skills per lease, reuse, crashed envs replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv
from reskill_gym.rollout import EnvPool
from reskill_gym.skills import Skill, SkillLibrary, Trigger
from reskill_gym.wrapper import SkillWrapper


class Counter(TextEnv):
    """Say a number; crashes on the step where the action is 'crash'."""

    env_name = "counter"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.closed = False

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["count"]

    def _engine_reset(self, task_id: str, seed: int, options: dict) -> tuple[str, dict]:
        return "Say a number.", {
            "task": "count to one",
            "task_type": "count",
            "admissible_actions": ["1", "crash"],
        }

    def _engine_step(self, action: str) -> EngineStep:
        if action == "crash":
            raise EngineCrashedError("worker died (test)")
        return EngineStep("ok", 1.0, True, False, admissible_actions=["1", "crash"])

    def close(self) -> None:
        self.closed = True


def _library(tmp_path: Path) -> tuple[SkillLibrary, str, str]:
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    a = lib.commit(
        [Skill(name="alpha", description="a", content="A.", trigger=Trigger(type="general"))],
        reason="a",
    )
    b = lib.commit(
        [Skill(name="beta", description="b", content="B.", trigger=Trigger(type="general"))],
        reason="b",
        set_head=False,
    )
    return lib, a, b


def test_pool_reuses_engines_and_sets_each_lease_skills(tmp_path: Path) -> None:
    lib, a, b = _library(tmp_path)
    made: list[Counter] = []

    def build(key: Any) -> SkillWrapper:
        made.append(Counter(max_turns=2))
        return SkillWrapper(made[-1], None)

    pool = EnvPool(build)
    e1, e2 = pool.lease(skills=lib.view(a)), pool.lease(skills=lib.view(b))
    _, i1 = e1.reset(seed=0)
    _, i2 = e2.reset(seed=0)
    assert (i1["library_version"], i2["library_version"]) == (a, b)
    e1.close(), e2.close()
    e3 = pool.lease(skills=lib.view(b))
    _, i3 = e3.reset(seed=1)
    assert i3["library_version"] == b and pool.built == 2 and len(made) == 2
    e3.close()
    pool.close()
    assert all(m.closed for m in made)


def test_pool_discards_an_env_that_raised(tmp_path: Path) -> None:
    lib, a, _ = _library(tmp_path)
    made: list[Counter] = []

    def build(key: Any) -> SkillWrapper:
        made.append(Counter(max_turns=2))
        return SkillWrapper(made[-1], None)

    pool = EnvPool(build)
    env = pool.lease(skills=lib.view(a))
    env.reset(seed=0)
    with pytest.raises(EngineCrashedError):
        env.step("crash")
    env.close()
    assert made[0].closed and pool.discarded == 1 and pool.idle() == 0
    env = pool.lease(skills=lib.view(a))
    env.reset(seed=0)
    assert env.step("1")[1] == 1.0 and pool.built == 2
    env.close()
    pool.close()
