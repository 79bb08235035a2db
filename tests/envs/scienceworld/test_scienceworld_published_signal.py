"""The published ScienceWorld signal (``reward="published"``) and per-turn action list
(``action_hint=True``) against the real engine, and against the ``scienceworld`` wheel's own
env, which the published system drives (``reskill/environments/scienceworld/envs.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("scienceworld", reason="needs the scienceworld extra")
if shutil.which("java") is None:
    pytest.skip("ScienceWorld needs Java on PATH", allow_module_level=True)

from reskill_gym.envs.scienceworld.env import (  # noqa: E402
    PUBLISHED_SCORE_THRESHOLD,
    PUBLISHED_STEP_LIMITS,
    PUBLISHED_WIN_REWARD,
    ScienceWorldEnv,
)

ROOT = Path(__file__).resolve().parents[3]
PRESET = ROOT / "configs" / "verl" / "published" / "scienceworld.yaml"
TASK = "power-component:0"


def test_published_constants_and_preset() -> None:
    assert (PUBLISHED_WIN_REWARD, PUBLISHED_SCORE_THRESHOLD) == (10.0, 70)
    assert len(PUBLISHED_STEP_LIMITS) == 30  # envs.py MAX_STEPS_PER_TASK: every task
    assert (
        PUBLISHED_STEP_LIMITS["power-component"] == PUBLISHED_STEP_LIMITS["test-conductivity"] == 30
    )
    assert PUBLISHED_STEP_LIMITS["boil"] == PUBLISHED_STEP_LIMITS["chemistry-mix"] == 50
    preset = yaml.safe_load(PRESET.read_text())["reskill"]
    assert preset["env_kwargs"]["reward"] == "published" and preset["env_kwargs"]["action_hint"]
    assert preset["coevolution"]["config"]["test_outcome"] == "won"
    with pytest.raises(ValueError, match="reward must be"):
        ScienceWorldEnv(reward="normalised")


@pytest.fixture(scope="module")
def env():
    e = ScienceWorldEnv(tasks=["power-component"], simplifications="easy", reward="published",
                        action_hint=True, max_turns=40)  # fmt: skip
    yield e
    e.close()


def test_published_reward_is_ten_on_completion_only(env: ScienceWorldEnv) -> None:
    _, info = env.reset(options={"task_id": TASK, "expert": True})
    rewards = []
    for action in info["expert_plan"]:
        _, r, terminated, truncated, info = env.step(action)
        rewards.append(r)
        if terminated or truncated:
            break
    assert terminated and info["won"] and info["raw_score"] == 100
    assert rewards[-1] == PUBLISHED_WIN_REWARD and set(rewards[:-1]) == {0.0}
    assert info["score"] == 1.0  # the normalised score is still reported


def test_published_step_limit_ends_the_episode_and_pays_above_seventy(
    env: ScienceWorldEnv,
) -> None:
    """Past the task's step limit (engine ticks) the published env is done; an episode that
    ends there above 70 earns 10 without being won (the published success is score 100)."""
    _, info = env.reset(options={"task_id": TASK, "expert": True})
    plan = info["expert_plan"]
    for action in plan:  # play the plan until the score is above 70 but the task not done
        _, r, terminated, _, info = env.step(action)
        assert r == 0.0 and not terminated
        if info["raw_score"] > PUBLISHED_SCORE_THRESHOLD:
            break
    assert PUBLISHED_SCORE_THRESHOLD < info["raw_score"] < 100
    steps = 0
    while not terminated:
        _, r, terminated, truncated, info = env.step("wait1")
        steps += 1
        assert not truncated and steps < 40
    assert info["moves"] > PUBLISHED_STEP_LIMITS["power-component"]
    assert r == PUBLISHED_WIN_REWARD and not info["won"]
    # below 70 at the limit: nothing
    env.reset(options={"task_id": TASK})
    terminated = False
    while not terminated:
        _, r, terminated, _, info = env.step("wait1")
    assert r == 0.0 and info["raw_score"] <= PUBLISHED_SCORE_THRESHOLD


def test_action_hint_and_first_observation_are_the_wheels(env: ScienceWorldEnv) -> None:
    """What the published system shows (``_build_actions_hint`` over the wheel's
    ``get_possible_actions``/``get_possible_objects``, and the wheel's reset observation)."""
    from scienceworld import ScienceWorldEnv as WheelEnv

    from reskill_gym.rollout import RolloutSession, TurnConfig

    session = RolloutSession(env, TurnConfig(format="published"), episode_id="e")
    session.reset(task_id=TASK)
    obs, info = session.bare, session.info
    wheel = WheelEnv(envStepLimit=30)
    try:
        wheel.load("power-component", 0, "easy")
        w_obs, w_info = wheel.reset()
        hint = (
            f"Valid_actions: {wheel.get_possible_actions()}, OBJ needs to be replaced with one of "
            f"the following objects: {wheel.get_possible_objects()}\n example: focus on door"
        )
        assert info["action_hint"] == hint
        assert "Task Description:\n" + info["task"] == w_info["taskDesc"]
        assert obs == f"{w_obs}\n\n{info['task']}"  # our env appends the task
        w_obs2, *_ = wheel.step("go to art studio")
        _, _, _, _, info2 = env.step("go to art studio")
        assert info2["action_hint"] == (
            f"Valid_actions: {wheel.get_possible_actions()}, OBJ needs to be replaced with one "
            f"of the following objects: {wheel.get_possible_objects()}\n example: focus on door"
        )
    finally:
        wheel.close()
    text = session.prompt().user_text()
    assert f"Your task is to: {w_info['taskDesc']}\nYour current observation is: {w_obs}\n" in text
    assert f"\nCurrent available actions:\n{hint}\n" in text
