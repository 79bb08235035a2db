"""Gymnasium registration of the ReSkill environment ids.

Exports ``ENV_IDS`` (short name -> Gymnasium id) and ``register_envs``. Entry points are
strings, so Gymnasium imports an engine only when ``gym.make`` is called.
"""

from __future__ import annotations

import gymnasium as gym

__all__ = ["ENV_IDS", "ENTRY_POINTS", "register_envs"]

ENV_IDS: dict[str, str] = {
    "alfworld": "ReSkill-ALFWorld-v0",
    "scienceworld": "ReSkill-ScienceWorld-v0",
    "search": "ReSkill-Search-v0",
}

ENTRY_POINTS: dict[str, str] = {
    "alfworld": "reskill_gym.envs.alfworld:ALFWorldEnv",
    "scienceworld": "reskill_gym.envs.scienceworld:ScienceWorldEnv",
    "search": "reskill_gym.envs.search:SearchEnv",
}


def register_envs() -> None:
    """Register every ReSkill id once; calling again is a no-op."""
    for name, env_id in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=ENTRY_POINTS[name], disable_env_checker=True)
