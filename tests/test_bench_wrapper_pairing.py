"""The wrapper-overhead benchmark compares fronts on identical episodes, or fails loudly.

Runs ``benchmarks/perf/wrapper_overhead.py`` on a small real ``TextEnv`` (no engine): a
deterministic one is measured with every front replaying the same episodes; an engine that
answers differently on a replay is cut to the prefix it repeats, or makes the run fail.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from reskill_gym.envs.base import EngineStep, TextEnv

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "wrapper_overhead.py"


@pytest.fixture(scope="module")
def wo() -> Any:
    spec = importlib.util.spec_from_file_location("bench_wrapper_overhead", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


_ACTIONS = ["go north", "go south", "look", "open drawer 1"]
_TICK = itertools.count()


class Corridor(TextEnv):
    """A walk along a corridor; ``noisy_reset`` / ``noisy_from`` make the engine non-deterministic
    (a fresh counter in the reset observation / in every answer from that step on)."""

    env_name = "corridor"

    def __init__(self, *, noisy_reset: bool = False, noisy_from: int | None = None) -> None:
        super().__init__(max_turns=6)
        self.noisy_reset = noisy_reset
        self.noisy_from = noisy_from
        self._pos = 0

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["c0", "c1", "c2", "c3"]

    def _engine_reset(self, task_id: str, seed: int, options: dict[str, Any]):
        self._pos = 0
        tick = f" (tick {next(_TICK)})" if self.noisy_reset else ""
        return f"Corridor {task_id}, seed {seed}{tick}.", {
            "task": f"reach the end of {task_id}",
            "task_type": "walk",
            "admissible_actions": list(_ACTIONS),
        }

    def _engine_step(self, action: str) -> EngineStep:
        self._pos += {"go north": 1, "go south": -1}.get(action, 0)
        text = f"You are at {self._pos}."
        if self.noisy_from is not None and self._turn >= self.noisy_from:
            text += f" (tick {next(_TICK)})"
        return EngineStep(
            text, float(self._pos >= 3), self._pos >= 3, self._pos >= 3, False, list(_ACTIONS)
        )


def test_every_front_replays_the_same_episodes(wo: Any) -> None:
    res = wo.measure("corridor", 8, 3, env=Corridor())
    assert len(res.rounds) == 3 and res.notes == []
    for blocks in res.rounds:
        assert set(blocks) == set(wo.FRONTS)
        assert len({b.steps for b in blocks.values()}) == 1  # same work on every front
        assert blocks["raw"].skills_fired == 0 and blocks["1000"].skills_fired > 0
    summary = wo.summarise(res)
    assert summary["skills_per_turn/1000"] > 0 and summary["rounds"] == 3


def test_a_replay_that_differs_fails_loudly(wo: Any) -> None:
    script = wo.Script("c0", 1, ("look",), ("Corridor c0.", "You are at 0."), (0.0,), (False,))
    same = wo.Trace(["Corridor c0.", "You are at 0."], [0.0], [False])
    assert wo.check_pairing("seed", "corridor", [script], [same]) == 0
    other = wo.Trace(["Corridor c0.", "You are at 1."], [0.0], [False])
    with pytest.raises(wo.PairingError, match=r"task c0, seed 1.*step 0 \('look'\)"):
        wo.check_pairing("1000", "corridor", [script], [other])
    with pytest.raises(wo.PairingError, match="played 0 episodes"):
        wo.check_pairing("raw", "corridor", [script], [])
    # another reward after the same observation is different work as well
    paid = wo.Trace(["Corridor c0.", "You are at 0."], [1.0], [False])
    with pytest.raises(wo.PairingError):
        wo.check_pairing("seed", "corridor", [script], [paid])


def test_line_order_is_free_only_where_the_engine_shuffles_it(wo: Any) -> None:
    room = "You see:\n\ta lead plane\n\ta wood plane"
    swapped = "You see:\n\ta wood plane\n\ta lead plane"
    script = wo.Script("t", 0, (), (room,), (), ())
    trace = wo.Trace([swapped], [], [])
    assert wo.check_pairing("1000", "scienceworld", [script], [trace]) == 1
    with pytest.raises(wo.PairingError):
        wo.check_pairing("1000", "alfworld", [script], [trace])
    missing = wo.Trace(["You see:\n\ta wood plane"], [], [])
    with pytest.raises(wo.PairingError):
        wo.check_pairing("1000", "scienceworld", [script], [missing])


def test_non_deterministic_engine_is_cut_or_refused(wo: Any) -> None:
    with pytest.raises(wo.PairingError, match="non-deterministic"):
        wo.measure("corridor", 6, 2, env=Corridor(noisy_reset=True))
    res = wo.measure("corridor", 8, 2, env=Corridor(noisy_from=2))
    assert res.notes and all("replaying its first 2 of" in n for n in res.notes)
    assert all(len({b.steps for b in r.values()}) == 1 for r in res.rounds)
    assert all(b.steps < 8 for r in res.rounds for b in r.values())
