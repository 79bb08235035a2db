"""``step_timeout_s`` on any env (reskill_gym.envs.timeout): a registered TextEnv whose step
hangs times out, is dropped and rebuilt; unset, nothing wraps the env."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reskill_gym.envs import EnvSpec, register
from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv
from reskill_gym.envs.registration import check_env_kwargs, make_env, make_skill_env, unregister
from reskill_gym.envs.timeout import EnvStepTimeout, StepTimeoutWrapper

NAME = "stuck-test"


class StuckEnv(TextEnv):
    """``wait`` blocks the step until ``release`` is set (at most ``hang_s``); ``go`` works."""

    env_name = NAME
    built: list[StuckEnv] = []

    def __init__(self, *, hang_s: float = 5.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.hang_s = hang_s
        self.release = threading.Event()
        self.closed = False
        StuckEnv.built.append(self)

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["t0"]

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        return "A room.", {"task": "leave", "task_type": "room", "admissible_actions": ["go"]}

    def _engine_step(self, action: str) -> EngineStep:
        if action == "wait":
            self.release.wait(self.hang_s)
        return EngineStep("You left.", 1.0, True, action == "go")

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def stuck() -> Iterator[None]:
    StuckEnv.built.clear()
    register(EnvSpec(name=NAME, factory=StuckEnv))
    yield
    unregister(NAME)
    for env in StuckEnv.built:
        env.release.set()


def test_a_hanging_step_times_out_and_the_env_is_rebuilt() -> None:
    env = make_env(NAME, step_timeout_s=0.2)
    assert isinstance(env, StepTimeoutWrapper) and env.unwrapped.task_ids() == ["t0"]
    env.reset(seed=0)
    first = env.unwrapped
    t0 = time.monotonic()
    with pytest.raises(
        EnvStepTimeout, match="env stuck-test: step took longer than step_timeout_s=0.2"
    ):
        env.step("wait")
    assert time.monotonic() - t0 < 2.0
    assert isinstance(EnvStepTimeout("x"), EngineCrashedError)  # runners: an error episode
    with pytest.raises(RuntimeError, match="call reset\\(\\) after a step timeout"):
        env.step("go")
    # the next reset plays on a fresh env; the stuck one is closed once its call returns
    obs, info = env.reset(seed=0)
    assert obs == "A room." and env.unwrapped is not first and len(StuckEnv.built) == 2
    assert env.step("go")[4]["won"]
    assert not first.closed
    first.release.set()
    deadline = time.monotonic() + 5
    while not first.closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.closed
    env.close()
    assert env.unwrapped.closed


def test_no_timeout_no_wrapper_and_the_skill_env_takes_it() -> None:
    assert isinstance(make_env(NAME), StuckEnv)
    assert isinstance(make_env(NAME, step_timeout_s=None), StuckEnv)
    env = make_skill_env(NAME, skills=None, step_timeout_s=0.2)
    env.reset(seed=0)
    with pytest.raises(EnvStepTimeout):
        env.step("wait")
    env.close()


def test_every_env_accepts_the_option_and_checks_its_value() -> None:
    check_env_kwargs(NAME, {"step_timeout_s": 30})
    check_env_kwargs("textworld", {"step_timeout_s": 2.5, "difficulty": "tiny"})
    check_env_kwargs("gym", {"gym_id": "CartPole-v1", "step_timeout_s": None})  # the adapter's
    for bad in (0, -1, "fast", True, float("inf")):
        with pytest.raises(ValueError, match="env.kwargs.step_timeout_s: must be a"):
            check_env_kwargs(NAME, {"step_timeout_s": bad})


def test_eval_records_a_timed_out_step_as_an_error_episode(tmp_path) -> None:
    from reskill_gym.evaluation import EvalConfig, run_eval
    from reskill_gym.evaluation.agents import CallableAgent

    cfg = EvalConfig(
        env=NAME,
        env_kwargs={"step_timeout_s": 0.2, "hang_s": 2.0},
        agent="python:unused:act",
        tasks=1,
        seeds=[0, 1],
        baseline=True,
        skills=[],
    )
    agent = CallableAgent(lambda messages, info: "<action>wait</action>", name="waiter")
    run = run_eval(cfg, tmp_path, agent=agent)
    assert run.ran == 2 and run.errors == 2
    rows = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert all("step took longer than step_timeout_s=0.2" in r for r in rows)
