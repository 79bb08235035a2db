"""Playing an agent that sends ready commands through the turn contract.

Exports ``ScriptedAgent``, ``record_episode`` and ``record_episodes``.

A scripted agent decides on the bare observation and the env ``info`` and sends commands
the env takes as they are (``parse: scripted``): no prompt is built and no reply parsed, but
the episode still runs through :class:`reskill_gym.rollout.RolloutSession`, so its record
(bare observations, skills per turn, the env's verdict on each command) is the one every
trainer and ``reskill eval`` writes. ``reskill creator record`` builds a reservoir this way
with the mistake-making agents of ``reskill_gym.testing.agents``; tests and benchmarks use it
to get real trajectories from real engines without a model.

>>> from reskill_gym.envs.base import EngineStep, TextEnv
>>> class Count(TextEnv):
...     env_name = "count"
...     def task_ids(self, split=None): return ["t"]
...     def _engine_reset(self, task_id, seed, options):
...         return "Say 2.", {"task": "say 2", "task_type": "count"}
...     def _engine_step(self, action):
...         won = action == "2"
...         return EngineStep(f"You said {action}.", float(won), won, won)
>>> class Up:
...     reset_options = {}
...     def begin(self, env, info, rng): self.k = 0
...     def act(self, observation, info):
...         self.k += 1
...         return str(self.k)
>>> ep = record_episode(Count(max_turns=5), Up(), task_id="t", env_id="count")
>>> [t.action for t in ep.turns], ep.won
(['1', '2'], True)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from reskill_gym.episode import Episode
from reskill_gym.rollout.config import DEFAULT_GROUP_SIZE, TurnConfig
from reskill_gym.rollout.session import RolloutSession

__all__ = ["ScriptedAgent", "record_episode", "record_episodes"]


class ScriptedAgent(Protocol):
    """What ``record_episode`` drives: ``reset_options`` go to ``reset``; ``begin`` once per
    episode (with the env, the reset ``info`` and a seeded generator); ``act`` per turn."""

    reset_options: Mapping[str, Any]

    def begin(self, env: Any, info: Mapping[str, Any], rng: np.random.Generator) -> None: ...

    def act(self, observation: str, info: Mapping[str, Any]) -> str: ...


def record_episode(
    env: Any,
    agent: ScriptedAgent,
    *,
    task_id: str | None = None,
    seed: int = 0,
    episode_id: str | None = None,
    group_id: str | None = None,
    step: int = 0,
    env_id: str | None = None,
) -> Episode:
    """Play one episode of ``env`` (a ``TextEnv``, optionally inside ``SkillWrapper``).

    The scripted agent reads the bare observation and the env ``info`` and sends ready
    commands; its ``reset_options`` (e.g. ``expert=True``) go to ``reset``. ``env_id``
    overrides the id the session derives from the env.
    """
    session = RolloutSession(
        env,
        TurnConfig(),
        episode_id=episode_id or uuid.uuid4().hex[:12],
        group_id=group_id,
        step=step,
    )
    session.reset(task_id=task_id, seed=seed, options=agent.reset_options)
    agent.begin(session.env, session.info, np.random.default_rng(seed))
    while not session.done:
        session.act_command(agent.act(session.bare, session.info))
    episode = session.episode()
    if env_id is not None:
        episode.env_id = env_id
    return episode


def record_episodes(
    env: Any,
    agent: ScriptedAgent,
    task_ids: Iterable[str],
    *,
    group_size: int = DEFAULT_GROUP_SIZE,
    seed: int = 0,
    env_id: str | None = None,
) -> list[Episode]:
    """``group_size`` rollouts per task (a GRPO-like group), seeds ``seed``, ``seed+1``..."""
    out = []
    s = seed
    for tid in task_ids:
        gid = f"g-{tid}"
        for k in range(group_size):
            out.append(
                record_episode(
                    env,
                    agent,
                    task_id=tid,
                    seed=s,
                    episode_id=f"{tid.replace('/', '-')}-s{s}-{k}",
                    group_id=gid,
                    env_id=env_id,
                )
            )
            s += 1
    return out
