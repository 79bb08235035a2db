"""Shared fixtures for the local trainer tests: one loaded model per session, a tiny text env."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv


class ChainEnv(TextEnv):
    """A deterministic text env: do the task's steps in order; each correct step pays 0.5.

    Every command of the task is always admissible, so a score-mode policy always has a
    choice and a uniformly random agent wins sometimes (the GRPO groups get signal).
    """

    env_name = "chain"
    TASKS: dict[str, tuple[str, list[str], list[str]]] = {
        "door": ("open the door", ["take key", "open door"], ["look"]),
        "lamp": ("turn on the lamp", ["go to desk", "turn on lamp"], ["look"]),
    }

    def __init__(self, *, crash_at: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_at = crash_at
        self.closed = False

    def task_ids(self, split: str | None = None) -> list[str]:
        return sorted(self.TASKS)

    def _admissible(self) -> list[str]:
        _, plan, noise = self.TASKS[self._task]
        return sorted(plan + noise)

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if task_id not in self.TASKS:
            raise KeyError(f"unknown task {task_id!r}")
        self._task, self._progress, self._steps = task_id, 0, 0
        goal = self.TASKS[task_id][0]
        return f"You are in a small room. Your task is to: {goal}.", {
            "task": goal,
            "task_type": task_id,
            "admissible_actions": self._admissible(),
        }

    def _engine_step(self, action: str) -> EngineStep:
        self._steps += 1
        if self.crash_at is not None and self._steps >= self.crash_at:
            raise EngineCrashedError("engine process died (test)")
        _, plan, _ = self.TASKS[self._task]
        if action not in self._admissible():
            return EngineStep(
                "Nothing happens.",
                0.0,
                False,
                False,
                invalid_action=True,
                admissible_actions=self._admissible(),
            )
        if action == plan[self._progress]:
            self._progress += 1
            won = self._progress == len(plan)
            return EngineStep(
                f"You {action}.", 0.5, won, won, admissible_actions=self._admissible()
            )
        return EngineStep(
            f"You {action}. Nothing changes.",
            0.0,
            False,
            False,
            admissible_actions=self._admissible(),
        )

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="session")
def base_policy():
    """SmolLM2-135M loaded once per session (CPU fp32); tests that train get a copy."""
    from reskill_local.policy import load_policy

    return load_policy("smollm2", device="cpu", dtype="float32")


@pytest.fixture()
def fresh_policy(base_policy):
    """A policy whose weights a test may change (the session model stays untouched)."""
    from reskill_local.policy import Policy

    return Policy(
        model=copy.deepcopy(base_policy.model),
        tokenizer=base_policy.tokenizer,
        device=base_policy.device,
        stop_id=base_policy.stop_id,
    )


@pytest.fixture()
def chain_env_factory():
    made: list[ChainEnv] = []

    def make_env(task_id: str, version: str | None) -> ChainEnv:
        env = ChainEnv(max_turns=3)
        made.append(env)
        return env

    make_env.made = made  # type: ignore[attr-defined]
    return make_env


@pytest.fixture(scope="session")
def chain_env_cls() -> type[ChainEnv]:
    return ChainEnv
