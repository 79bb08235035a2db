"""Text environments (ALFWorld, ScienceWorld, Search QA) and their Gymnasium registration.

Engines are imported lazily by each environment module so ``import reskill_gym.envs`` stays light.
"""

from __future__ import annotations

from reskill_gym.envs import base as _base  # noqa: F401  (registers FreeText shared memory)
from reskill_gym.envs.registration import ENV_IDS, make_skill_env, register_envs

__all__ = ["ENV_IDS", "make_skill_env", "register_envs"]
