"""Text environments, the env registry and their Gymnasium registration.

Exports ``EnvSpec``, ``register``, ``get_spec``, ``env_names``, ``make_env``,
``make_skill_env``, ``list_tasks``, ``register_envs``, ``UnknownEnvError`` and
``EnvPluginError``.

Engines are imported lazily by each environment module so ``import reskill_gym.envs`` stays
light; plugins (the ``reskill_gym.envs`` entry-point group) load on first lookup.
"""

from __future__ import annotations

from reskill_gym.envs import base as _base  # noqa: F401  (registers FreeText shared memory)
from reskill_gym.envs.registration import (
    EnvPluginError,
    UnknownEnvError,
    env_names,
    get_spec,
    list_tasks,
    make_env,
    make_skill_env,
    register,
    register_envs,
)
from reskill_gym.envs.spec import EnvSpec

__all__ = [
    "EnvSpec",
    "register",
    "get_spec",
    "env_names",
    "make_env",
    "make_skill_env",
    "list_tasks",
    "register_envs",
    "UnknownEnvError",
    "EnvPluginError",
]
