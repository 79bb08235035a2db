"""Gymnasium registration of the ReSkill environment ids.

Exports ``ENV_IDS`` (short name -> Gymnasium id), ``ENV_CLASSES``, ``register_envs``,
``make_skill_env``, ``check_env_kwargs`` and ``seed_library_path``.

Each id's entry point is :func:`make_skill_env` bound to an env name: it builds the raw
engine env and wraps it in :class:`~reskill_gym.wrapper.SkillWrapper` with the seed library
of that env (``skills/<env>/``). Engines are imported only inside ``gym.make``, so
``import reskill_gym`` stays light and ``gymnasium.pprint_registry()`` lists the ids.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from reskill_gym.envs.base import TextEnv
    from reskill_gym.wrapper import SkillWrapper

__all__ = [
    "ENV_IDS",
    "ENV_CLASSES",
    "register_envs",
    "make_skill_env",
    "check_env_kwargs",
    "seed_library_path",
]

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


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


def check_env_kwargs(env_name: str, kwargs: Mapping[str, Any], where: str = "env.kwargs") -> None:
    """Refuse options the env's constructor does not take, and non-finite numbers.

    Run and eval configs pass ``kwargs`` straight to the env class; checked when the config
    loads, a typo (``difficulti``) is a one-line error naming the key and the closest
    option instead of a ``TypeError`` from deep inside the first rollout, and
    ``max_turns: nan`` is an error instead of an episode with no horizon. ``ValueError``.
    """
    init = env_class(env_name).__init__
    params = inspect.signature(init).parameters
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation that cannot be resolved: names are still checked
        hints = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names: list[str] | None = None
    else:
        names = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_POSITIONAL]
    for key, value in kwargs.items():
        if names is not None and key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known: {', '.join(names)}"
            raise ValueError(f"{where}: {env_name} has no option {str(key)!r}{hint}")
        if _non_finite(value):
            raise ValueError(f"{where}.{key}: must be a finite number (got {value!r})")
        problem = _type_problem(hints.get(str(key)), value)
        if problem:
            raise ValueError(f"{where}.{key}: {problem} (got {value!r:.80})")


def _type_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not fit the constructor's annotation ``hint`` (None if it does, or
    if pydantic cannot check that annotation)."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    if hint is None:
        return None
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(
            hint, config=ConfigDict(allow_inf_nan=False, arbitrary_types_allowed=True)
        )
    except Exception:  # an annotation pydantic has no schema for: the constructor decides
        return None
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


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
