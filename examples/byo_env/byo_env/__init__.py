"""A combination safe: a text env that knows nothing of reskill-gym but its TextEnv base.

Exports ``SafeEnv``, ``SPEC`` (its ``EnvSpec``, the package's ``reskill_gym.envs`` entry
point) and ``act`` (a scripted ``python:byo_env:act`` agent).

Turn the dial to each digit of the code in order (``turn dial to N``), then ``pull handle``.
The code is hidden; ``listen`` says whether the last digit clicked. A wrong pull ends the
episode as lost.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reskill_gym.envs import EnvSpec
from reskill_gym.envs.base import EngineStep, TextEnv

__all__ = ["SafeEnv", "SPEC", "act"]

_SPLITS = {"train": range(0, 40), "seen": range(100, 110), "unseen": range(200, 210)}


class SafeEnv(TextEnv):
    """Open the safe: a code of ``digits`` digits (0-4) drawn from the task's seed."""

    env_name = "safe"

    def __init__(self, *, digits: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.digits = digits

    def task_ids(self, split: str | None = None) -> list[str]:
        return [f"safe-{n}" for n in _SPLITS[split or self.split]]

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        rng = random.Random(task_id)
        self._code = [rng.randrange(5) for _ in range(self.digits)]
        self._entered: list[int] = []
        return "A steel safe with a dial (0-4) and a handle.", {
            "task": f"open the safe (a {self.digits}-digit code)",
            "task_type": "safe",
            "admissible_actions": self._actions(),
        }

    def _actions(self) -> list[str]:
        return [f"turn dial to {d}" for d in range(5)] + ["listen", "pull handle"]

    def _engine_step(self, action: str) -> EngineStep:
        if action.startswith("turn dial to ") and action[-1].isdigit():
            self._entered.append(int(action[-1]))
            obs = "The dial turns."
        elif action == "listen":
            i = len(self._entered) - 1
            good = i >= 0 and i < len(self._code) and self._entered[i] == self._code[i]
            obs = "Click." if good else "Silence."
        elif action == "pull handle":
            won = self._entered[-len(self._code) :] == self._code
            obs = "The door swings open!" if won else "The handle jams. The alarm rings."
            return EngineStep(obs, float(won), True, won, admissible_actions=self._actions())
        else:
            return EngineStep("Nothing happens.", 0.0, False, False, True, self._actions())
        return EngineStep(obs, 0.0, False, False, admissible_actions=self._actions())


SPEC = EnvSpec(
    name="safe",
    factory=SafeEnv,
    description="A combination safe (the examples/byo_env plugin).",
    seed_skills=Path(__file__).parent / "skills",
    system_prompt="You are a safecracker at a combination safe.",
    creator_vocabulary="Commands: turn dial to <0-4>, listen, pull handle.",
)

_RNG = random.Random(0)


def act(messages: list[dict[str, str]], info: Mapping[str, Any]) -> str:
    """A scripted agent: tries dial positions, listens, pulls; noisy."""
    adm = list(info.get("admissible_actions") or ["listen"])
    turn = int(info.get("turn", 0))
    choice = ["turn dial to 1", "listen", "pull handle"][turn % 3] if _RNG.random() < 0.7 else None
    return f"<action>{choice or _RNG.choice(adm)}</action>"
