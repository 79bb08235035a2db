"""Turning a played episode into the one ``Episode`` record, and the training reward of a turn.

Exports ``EpisodeRecorder`` and ``turn_training_rewards``.

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
from typing import Any

from reskill_gym.episode import Episode, StopReason, Turn

__all__ = ["EpisodeRecorder", "turn_training_rewards"]


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


def turn_training_rewards(episode: Episode, invalid_action_penalty: float) -> list[float]:
    """The training reward of each turn sample: the episode return, minus the penalty on
    turns whose reply carried no valid action.

    Every turn sample of an episode carries the episode's return (GRPO groups are episodes of
    one task); the env return the version tester sees is never changed.

    >>> ep = Episode(episode_id="e", env_id="x", task_id="t", reward=1.0,
    ...              turns=[Turn(observation="o", action="a"), Turn(observation="o", action="",
    ...                     valid=False, parse="empty")])
    >>> turn_training_rewards(ep, 0.1)
    [1.0, 0.9]
    """
    return [
        episode.reward - (invalid_action_penalty if not t.valid else 0.0) for t in episode.turns
    ]
