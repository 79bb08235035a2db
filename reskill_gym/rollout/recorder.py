"""Turning a played episode into the one ``Episode`` record, and the invalid-action penalty.

Exports ``EpisodeRecorder`` and ``penalize_invalid``.

The recorder is filled by :class:`reskill_gym.rollout.RolloutSession` (and by nothing else):
``begin`` with the reset ``info``, ``add`` per turn, ``end``/``fail`` once. It takes bare
observations only (the skill block is its own prompt segment, never part of the record), so
the creator and the reports read what the env said, not what the library added.

>>> rec = EpisodeRecorder("e1", env_id="ReSkill-Search-v0", group_id="g0", arm="head", step=3)
>>> rec.begin({"task_id": "q1", "task": "who?", "task_type": "bridge", "split": "train",
...            "library_version": "v1"}, seed=7)
>>> from reskill_gym.episode import Turn
>>> rec.add(Turn(observation="?", action="<answer> x </answer>", reward=1.0, parse="passthrough"))
>>> ep = rec.end(won=True, final_observation="correct", stop_reason="done")
>>> ep.reward, ep.won, ep.library_version, ep.seed
(1.0, True, 'v1', 7)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from reskill_gym.episode import Episode, StopReason, Turn

__all__ = ["EpisodeRecorder", "penalize_invalid"]

T = TypeVar("T")


class EpisodeRecorder:
    """Collects one episode's turns and returns the ``Episode`` record."""

    def __init__(
        self,
        episode_id: str,
        *,
        env_id: str,
        group_id: str | None = None,
        arm: str | None = None,
        step: int = 0,
    ) -> None:
        self.episode = Episode(
            episode_id=episode_id, env_id=env_id, task_id="", group_id=group_id, arm=arm, step=step
        )
        self._ended = False

    def begin(
        self, info: Mapping[str, Any], *, seed: int | None = None, task_id: str | None = None
    ) -> None:
        """Task and library version from the reset ``info``."""
        ep = self.episode
        ep.task_id = str(info.get("task_id") or task_id or "")
        ep.task = str(info.get("task", ""))
        ep.task_type = str(info.get("task_type", ""))
        ep.split = str(info.get("split", "train"))
        ep.library_version = info.get("library_version")
        ep.seed = seed

    def add(self, turn: Turn) -> None:
        if self._ended:
            raise RuntimeError(f"episode {self.episode.episode_id} has ended; no more turns")
        self.episode.turns.append(turn)
        self.episode.reward += turn.reward

    def end(self, *, won: bool, final_observation: str, stop_reason: StopReason) -> Episode:
        """Close the episode (idempotent: a second call returns the same record)."""
        if not self._ended:
            self.episode.won = bool(won)
            self.episode.final_observation = final_observation
            self.episode.stop_reason = stop_reason
            self._ended = True
        return self.episode

    def fail(self, error: str) -> Episode:
        """Close the episode as dropped (``error`` set, not a success)."""
        if not self._ended:
            self.episode.error = error
            self.episode.won = False
            self.episode.stop_reason = "error"
            self._ended = True
        return self.episode


def penalize_invalid(advantage: T, invalid: Any, penalty: float) -> T:
    """The invalid-action penalty, the one definition both trainers apply: ``advantage -
    penalty * invalid``, in advantage units, *after* the group normalisation.

    ``invalid`` is 1 (or ``True``) where a reply carried no valid action: a turn's flag in the
    local trainer, a token mask of invalid replies in the veRL adapter (any numpy or torch
    array works). The published code subtracts the penalty from the reward before the
    normalisation instead, which divides it by the group's standard deviation (``-penalty /
    eps`` in a group whose episodes all scored alike). The env return, which the version
    tester sees, is never changed.

    >>> [penalize_invalid(1.0, not valid, 0.1) for valid in (True, False)]
    [1.0, 0.9]
    """
    return advantage - penalty * invalid
