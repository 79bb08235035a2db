"""Gymnasium registration of the ReSkill environment ids.

Exports ``ENV_IDS`` (short name -> Gymnasium id), ``ENV_CLASSES``, ``register_envs``,
``make_skill_env`` and ``seed_library_path``.

Each id's entry point is :func:`make_skill_env` bound to an env name: it builds the raw
engine env and wraps it in :class:`~reskill_gym.wrapper.SkillWrapper` with the seed library
of that env (``skills/<env>/``). Engines are imported only inside ``gym.make``, so
``import reskill_gym`` stays light and ``gymnasium.pprint_registry()`` lists the ids.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from reskill_gym.envs.base import TextEnv
    from reskill_gym.wrapper import SkillWrapper

__all__ = ["ENV_IDS", "ENV_CLASSES", "register_envs", "make_skill_env", "seed_library_path"]

ENV_IDS: dict[str, str] = {
    "alfworld": "ReSkill-ALFWorld-v0",
    "scienceworld": "ReSkill-ScienceWorld-v0",
    "search": "ReSkill-Search-v0",
}

ENV_CLASSES: dict[str, str] = {
    "alfworld": "reskill_gym.envs.alfworld:ALFWorldEnv",
    "scienceworld": "reskill_gym.envs.scienceworld:ScienceWorldEnv",
    "search": "reskill_gym.envs.search:SearchEnv",
}

SEED = "seed"
_WRAPPER_KEYS = ("version", "max_active_skills", "skill_budget_chars", "template")


def seed_library_path(env_name: str) -> Path:
    """Where the seed skill library of ``env_name`` lives.

    ``$RESKILL_SKILLS_DIR/<env>`` first, then the repository's ``skills/<env>`` (editable
    installs and checkouts), then the copy shipped inside the package.
    """
    candidates = []
    if os.environ.get("RESKILL_SKILLS_DIR"):
        candidates.append(Path(os.environ["RESKILL_SKILLS_DIR"]) / env_name)
    here = Path(__file__).resolve().parent.parent  # reskill_gym/
    candidates += [here.parent / "skills" / env_name, here / "seed_skills" / env_name]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"no seed skill library for {env_name!r}; looked in: " + ", ".join(map(str, candidates))
    )


def env_class(env_name: str) -> type[TextEnv]:
    """Import the raw environment class of ``env_name`` (this imports its engine module)."""
    try:
        module, _, attr = ENV_CLASSES[env_name].partition(":")
    except KeyError:
        raise ValueError(f"unknown env {env_name!r}; known: {', '.join(ENV_CLASSES)}") from None
    return getattr(importlib.import_module(module), attr)


def make_skill_env(env_name: str, skills: Any = SEED, **kwargs: Any) -> SkillWrapper:
    """Build ``env_name`` wrapped with skills.

    ``skills``: ``"seed"`` (default: the env's seed library), a path, a ``LibraryView`` /
    ``SkillLibrary``, or ``None`` for no skills. Wrapper options: ``version``,
    ``max_active_skills``, ``skill_budget_chars``, ``template``; every other keyword goes to
    the environment (``split``, ``max_turns``, env-specific options).
    """
    from reskill_gym.wrapper import SkillWrapper

    wrapper_kwargs = {k: kwargs.pop(k) for k in _WRAPPER_KEYS if k in kwargs}
    env = env_class(env_name)(**kwargs)
    if isinstance(skills, str) and skills == SEED:
        skills = seed_library_path(env_name)
    try:
        return SkillWrapper(env, skills, **wrapper_kwargs)
    except Exception:
        env.close()
        raise


def register_envs() -> None:
    """Register every ReSkill id once; calling again is a no-op."""
    for name, env_id in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=functools.partial(make_skill_env, name),
            disable_env_checker=True,
        )
