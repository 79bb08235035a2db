"""The published ScienceWorld task subset (Electricity topic) through the env's own kwargs.

Published (amazon-science/reskill configs/scienceworld.yaml + environments/scienceworld/
envs.py): training draws from the engine's *train* variations of ``power-component`` and
``test-conductivity``; validation from the *dev* variations of
``power-component-renewable-vs-nonrenewable-energy`` and
``test-conductivity-of-unknown-substances``. Our preset says so with ``tasks``,
``held_out_tasks`` and ``eval_variations``; no JVM needed to check the pools.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reskill_gym.envs.scienceworld.env import ScienceWorldEnv
from reskill_gym.envs.scienceworld.tasks import load_task_table

ROOT = Path(__file__).resolve().parents[3]
PRESET = ROOT / "configs" / "verl" / "published" / "scienceworld.yaml"
TRAIN_TASKS = ("power-component", "test-conductivity")
VAL_TASKS = (
    "power-component-renewable-vs-nonrenewable-energy",
    "test-conductivity-of-unknown-substances",
)


def _pool(tasks: tuple[str, ...], which: str) -> list[str]:
    """The published flat (task, variation) pool: every variation of the set, per task."""
    table = load_task_table()
    return [f"{t}:{v}" for t in tasks for v in table[t].variations(which)]  # type: ignore[arg-type]


def test_scienceworld_published_preset_selects_the_electricity_pools() -> None:
    kwargs = yaml.safe_load(PRESET.read_text())["reskill"]["env_kwargs"]
    env = ScienceWorldEnv(**kwargs)  # no JVM until the first reset
    try:
        assert env.simplifications == "easy" and env.max_turns == 30
        assert env.task_ids("train") == _pool(TRAIN_TASKS, "train")
        assert env.task_ids("unseen") == _pool(VAL_TASKS, "dev")
        # 10 + 450 training and 5 + 150 validation variations (scienceworld 1.2.3 table)
        assert (len(env.task_ids("train")), len(env.task_ids("unseen"))) == (460, 155)
        # `seen` (dev variations of the training tasks) exists but is not what was validated
        assert {t.split(":")[0] for t in env.task_ids("seen")} == set(TRAIN_TASKS)
    finally:
        env.close()


def test_scienceworld_unknown_task_in_subset_is_named() -> None:
    with pytest.raises(ValueError, match="power-componnent.*did you mean power-component"):
        ScienceWorldEnv(tasks=["power-componnent"], held_out_tasks=())
