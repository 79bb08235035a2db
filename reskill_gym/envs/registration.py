"""The env registry: names -> :class:`~reskill_gym.envs.spec.EnvSpec`, and their Gymnasium ids.

Exports ``register``, ``unregister``, ``load_plugins``, ``get_spec``, ``find_spec``, ``env_names``, ``specs``, ``plugin_errors``, ``make_env``,
``make_skill_env``, ``list_tasks``, ``check_env_kwargs``, ``seed_library_path``, ``register_envs``, ``gym_ids``,
``UnknownEnvError``, ``EnvPluginError`` and ``ENTRY_POINT_GROUP``.

An env is registered by name with :func:`register` (the built-in ALFWorld, ScienceWorld,
Search and TextWorld Cooking do so in :mod:`reskill_gym.envs.builtin`) or by a package's
entry point in the ``reskill_gym.envs`` group whose value is an ``EnvSpec`` or a callable
that returns one. Entry points are loaded on the first lookup of a name that is not yet
registered (or when every name is listed), so ``import reskill_gym`` imports no plugin; a
plugin that fails to import is an :class:`EnvPluginError` naming the plugin, raised when that
name is asked for and logged once otherwise.

Each spec's Gymnasium id is registered with :func:`make_skill_env` bound to the name: it
builds the raw env and wraps it in :class:`~reskill_gym.wrapper.SkillWrapper` with the env's
seed library. Engines are imported only inside ``gym.make``.

>>> get_spec("alfworld").gym_id
'ReSkill-ALFWorld-v0'
>>> get_spec("alfwrld")
Traceback (most recent call last):
...
reskill_gym.envs.registration.UnknownEnvError: unknown env 'alfwrld' (did you mean 'alfworld'?); registered: alfworld, gym, scienceworld, search, textworld
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import logging
import math
import os
import threading
import typing
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from reskill_gym.envs.spec import EnvSpec
from reskill_gym.envs.timeout import TIMEOUT_KEY

if TYPE_CHECKING:
    from reskill_gym.wrapper import SkillWrapper

__all__ = [
    "ENTRY_POINT_GROUP",
    "EnvPluginError",
    "UnknownEnvError",
    "register",
    "unregister",
    "load_plugins",
    "get_spec",
    "find_spec",
    "env_names",
    "specs",
    "plugin_errors",
    "make_env",
    "make_skill_env",
    "list_tasks",
    "check_env_kwargs",
    "seed_library_path",
    "register_envs",
    "gym_ids",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "reskill_gym.envs"
SEED = "seed"
_WRAPPER_KEYS = ("version", "max_active_skills", "skill_budget_chars", "template")

_SPECS: dict[str, EnvSpec] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_LOCK = threading.RLock()
_state = {"plugins_loaded": False, "builtins_loaded": False}


class UnknownEnvError(ValueError):
    """A name no spec is registered under (the message names a close match and the list)."""


class EnvPluginError(RuntimeError):
    """A ``reskill_gym.envs`` entry point that failed to load or gave no ``EnvSpec``."""


def register(spec: EnvSpec, *, replace: bool = False) -> EnvSpec:
    """Register ``spec`` under ``spec.name`` and its Gymnasium id; returns ``spec``.

    Registering another spec under a taken name is an error unless ``replace``; registering
    the same spec again is a no-op.
    """
    if not isinstance(spec, EnvSpec):
        raise TypeError(f"register() takes an EnvSpec, got {type(spec).__name__}")
    with _LOCK:
        old = _SPECS.get(spec.name)
        if old is not None and old != spec and not replace:
            raise ValueError(f"env {spec.name!r} is already registered (pass replace=True)")
        clash = [s.name for s in _SPECS.values() if s.gym_id == spec.gym_id and s.name != spec.name]
        if clash:
            raise ValueError(f"env {spec.name}: Gymnasium id {spec.gym_id} belongs to {clash[0]}")
        _SPECS[spec.name] = spec
        _PLUGIN_ERRORS.pop(spec.name, None)
        _register_gym_id(spec, replace=old is not None and old != spec)
    return spec


def _register_gym_id(spec: EnvSpec, *, replace: bool) -> None:
    if spec.gym_id in gym.registry and not replace:
        return
    if replace:
        gym.registry.pop(spec.gym_id, None)
    gym.register(
        id=spec.gym_id,
        entry_point=functools.partial(make_skill_env, spec.name),
        disable_env_checker=True,
    )


def _load_builtins() -> None:
    if not _state["builtins_loaded"]:
        _state["builtins_loaded"] = True
        importlib.import_module("reskill_gym.envs.builtin")


def unregister(name: str) -> None:
    """Remove ``name`` and its Gymnasium id (a notebook replacing its env; plugins reloaded)."""
    with _LOCK:
        spec = _SPECS.pop(name, None)
        if spec is not None:
            gym.registry.pop(spec.gym_id, None)


def load_plugins(*, reload: bool = False) -> None:
    """Load the ``reskill_gym.envs`` entry points (once; ``reload``: again, for a package
    installed since, whose earlier failure is forgotten)."""
    with _LOCK:
        if reload:
            _state["plugins_loaded"] = False
            _PLUGIN_ERRORS.clear()
    _load_plugins()


def _load_plugins() -> None:
    """Load every ``reskill_gym.envs`` entry point once (failures are kept per name)."""
    with _LOCK:
        if _state["plugins_loaded"]:
            return
        _state["plugins_loaded"] = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _SPECS:
                continue
            try:
                obj = ep.load()
                spec = obj() if callable(obj) and not isinstance(obj, EnvSpec) else obj
                if not isinstance(spec, EnvSpec):
                    raise TypeError(f"gave {type(spec).__name__}, not an EnvSpec")
                if spec.name != ep.name:
                    raise ValueError(f"its spec is named {spec.name!r}")
                register(spec)
            except Exception as exc:  # a broken plugin must not take the others down
                msg = _one_line(
                    f"env plugin {ep.name!r} (entry point {ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
                _PLUGIN_ERRORS[ep.name] = msg
                logger.warning("%s", msg)


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def env_names() -> list[str]:
    """Every registered env name (built-ins and plugins), sorted."""
    _load_builtins()
    _load_plugins()
    return sorted(_SPECS)


def plugin_errors() -> dict[str, str]:
    """Entry-point name -> the one-line error of each plugin that failed to load."""
    _load_plugins()
    return dict(sorted(_PLUGIN_ERRORS.items()))


def specs() -> list[EnvSpec]:
    """Every registered spec, by name."""
    return [_SPECS[n] for n in env_names()]


def get_spec(name: str) -> EnvSpec:
    """The spec of ``name`` or of a Gymnasium id; an :class:`UnknownEnvError` otherwise."""
    _load_builtins()
    spec = _SPECS.get(name) or _by_gym_id(name)
    if spec is None:
        _load_plugins()
        spec = _SPECS.get(name) or _by_gym_id(name)
    if spec is not None:
        return spec
    if name in _PLUGIN_ERRORS:
        raise EnvPluginError(_PLUGIN_ERRORS[name])
    known = sorted(_SPECS)
    close = difflib.get_close_matches(str(name), known + [s.gym_id for s in _SPECS.values()], 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    broken = f"; plugins that failed to load: {', '.join(sorted(_PLUGIN_ERRORS))}" * bool(
        _PLUGIN_ERRORS
    )
    raise UnknownEnvError(
        f"unknown env {_one_line(repr(name), 80)}{hint}; registered: {', '.join(known)}{broken}"
    )


def find_spec(name: str) -> EnvSpec | None:
    """The spec of ``name`` (or of a Gymnasium id), or ``None``: for envs handed over as
    objects (a test's toy env, a hand-wrapped env) whose name may be registered nowhere."""
    try:
        return get_spec(name)
    except (UnknownEnvError, EnvPluginError):
        return None


def _by_gym_id(name: str) -> EnvSpec | None:
    return next((s for s in _SPECS.values() if s.gym_id == name), None)


def _factory(spec: EnvSpec) -> Callable[..., Any]:
    if callable(spec.factory):
        return spec.factory
    module, _, attr = spec.factory.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise EnvPluginError(
            _one_line(
                f"env {spec.name}: factory {spec.factory} failed to import: "
                f"{type(exc).__name__}: {exc}"
            )
        ) from exc
    return obj


def make_env(name: str, **kwargs: Any) -> Any:
    """Build the raw env of ``name`` (no skills) with ``kwargs``.

    Where the spec has a success rule, ``info["won"]`` is set by it on every step.
    ``step_timeout_s`` (any env): each reset and step runs under that limit
    (:mod:`reskill_gym.envs.timeout`), unless the factory takes the keyword itself.
    """
    spec = get_spec(name)
    factory = _factory(spec)
    limit = None
    if TIMEOUT_KEY in kwargs and not _takes(factory, TIMEOUT_KEY):
        limit = kwargs.pop(TIMEOUT_KEY)

    def build() -> Any:
        env = factory(**kwargs)
        base = getattr(env, "unwrapped", env)
        if getattr(base, "env_name", None) != spec.name:
            # rollouts find the spec (prompt role, reply format) by the env's name
            try:
                base.env_name = spec.name
            except AttributeError:
                logger.debug("env %s: cannot set env_name on %s", spec.name, type(base).__name__)
        if spec.success is not None:
            from reskill_gym.envs.gym_adapter import SuccessRuleWrapper

            env = SuccessRuleWrapper(env, spec.is_success)
        return env

    if limit is None:
        return build()
    from reskill_gym.envs.timeout import StepTimeoutWrapper

    return StepTimeoutWrapper(build, float(limit), spec.name)


def _parameters(factory: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    # a class: its __init__ (mypy: __init__ of a value typed as a callable is "unsound")
    init = getattr(factory, "__init__") if isinstance(factory, type) else factory  # noqa: B009
    return inspect.signature(init).parameters


def _takes(factory: Callable[..., Any], key: str) -> bool:
    """Whether ``factory`` names ``key`` among its parameters (``**kwargs`` does not count)."""
    try:
        return key in _parameters(factory)
    except (TypeError, ValueError):  # no signature (a builtin): it takes no such keyword
        return False


def list_tasks(name: str, split: str, **kwargs: Any) -> list[str]:
    """Task ids of ``split``: the spec's ``list_tasks`` hook, else a built env's ``task_ids``."""
    spec = get_spec(name)
    if spec.list_tasks is not None:
        return [str(t) for t in spec.list_tasks(split, dict(kwargs))]
    env = make_env(name, **kwargs)
    try:
        return [str(t) for t in env.unwrapped.task_ids(split)]
    finally:
        env.close()


def seed_library_path(env_name: str) -> Path:
    """Where the seed skill library of ``env_name`` lives.

    ``$RESKILL_SKILLS_DIR/<env>`` first, then the spec's ``seed_skills``, then the
    repository's ``skills/<env>`` (editable installs and checkouts), then the copy shipped
    inside the package.
    """
    candidates = []
    if os.environ.get("RESKILL_SKILLS_DIR"):
        candidates.append(Path(os.environ["RESKILL_SKILLS_DIR"]) / env_name)
    spec = find_spec(env_name)  # an env handed over as an object may be registered nowhere
    if spec is not None and spec.seed_skills is not None:
        candidates.append(Path(spec.seed_skills))
    name = spec.name if spec is not None else env_name
    here = Path(__file__).resolve().parent.parent  # reskill_gym/
    candidates += [here.parent / "skills" / name, here / "seed_skills" / name]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"no seed skill library for {env_name!r} (give skills: none or a folder, or "
        "EnvSpec.seed_skills); looked in: " + ", ".join(map(str, candidates))
    )


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
    factory = _factory(get_spec(env_name))
    init = getattr(factory, "__init__") if isinstance(factory, type) else factory  # noqa: B009
    params = _parameters(factory)
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation that cannot be resolved: names are still checked
        hints = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names: list[str] | None = None
    else:
        names = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_POSITIONAL]
    for key, value in kwargs.items():
        if key == TIMEOUT_KEY and key not in params:  # every env takes it (make_env's)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{where}.{key}: must be a number of seconds > 0 (got {value!r})")
            continue
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
    env = make_env(env_name, **kwargs)
    try:
        if isinstance(skills, str) and skills == SEED:
            skills = seed_library_path(env_name)
        return SkillWrapper(env, skills, **wrapper_kwargs)
    except Exception:
        env.close()
        raise


def register_envs() -> None:
    """Register the built-in envs (and their Gymnasium ids) once; again is a no-op.

    Plugins register on first lookup (:func:`get_spec`, :func:`env_names`).
    """
    _load_builtins()


def gym_ids() -> Mapping[str, str]:
    """Name -> Gymnasium id of every registered env."""
    return {s.name: s.gym_id for s in specs()}
