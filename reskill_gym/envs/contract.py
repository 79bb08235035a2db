"""``reskill env check``: does an env give train, evolve, eval and veRL what they read.

Exports ``ContractLine``, ``check_env_contract`` and ``resolve_env``.

Each check is one :class:`ContractLine`: the piece, whether it is there, and what to add when
it is not. The checks build the env as the runners do (:func:`~reskill_gym.envs.make_env`),
list its tasks per split, reset on a task, step, and run
:func:`~reskill_gym.checker.check_skill_env` on it wrapped with skills; nothing raises out of
here, every failure is a line.

>>> lines = check_env_contract("no-such-env")
>>> lines[0].ok, lines[0].piece
(False, 'registered')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

__all__ = ["ContractLine", "check_env_contract", "resolve_env"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContractLine:
    """One piece of the contract: ``ok``, or what is missing and what to add."""

    piece: str
    ok: bool
    message: str
    required: bool = True

    def render(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "note")
        return f"{mark} {self.piece}: {self.message}"


def resolve_env(name: str, kwargs: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``(registered name, kwargs)`` for a registered name/id, or a Gymnasium id nobody
    registered with reskill-gym (then the ``gym`` adapter, ``kwargs`` its options)."""
    from reskill_gym.envs.registration import find_spec, get_spec

    kwargs = dict(kwargs or {})
    spec = find_spec(name)
    if spec is not None:
        return spec.name, kwargs
    if name in gym.registry:
        return "gym", {**kwargs, "gym_id": name}
    get_spec(name)  # raises the one-line unknown-name error
    raise AssertionError("unreachable")


def _err(exc: BaseException) -> str:
    from reskill_gym.safe_text import error_line

    return error_line(exc, limit=300)


def check_env_contract(  # noqa: C901 - one flat list of checks reads best
    name: str, kwargs: Mapping[str, Any] | None = None, *, steps: int = 3
) -> list[ContractLine]:
    """Check ``name`` (a registered env or a Gymnasium id) with env ``kwargs``."""
    from reskill_gym.envs.base import SPLITS
    from reskill_gym.envs.registration import get_spec, make_env, seed_library_path

    out: list[ContractLine] = []
    try:
        env_name, kw = resolve_env(name, kwargs)
        spec = get_spec(env_name)
    except Exception as exc:
        return [ContractLine("registered", False, _err(exc))]
    out.append(ContractLine("registered", True, f"{spec.name} ({spec.gym_id})"))
    try:
        env = make_env(env_name, **kw)
    except Exception as exc:
        out.append(
            ContractLine("build", False, f"{_err(exc)} (the factory must accept split=, kwargs)")
        )
        return out
    base = env.unwrapped
    out.append(ContractLine("build", True, type(base).__name__))
    try:
        tasks: dict[str, list[str]] = {}
        lister = getattr(base, "task_ids", None)
        for split in SPLITS:
            try:
                ids = list(lister(split)) if callable(lister) else []
            except Exception as exc:
                out.append(ContractLine(f"tasks[{split}]", False, _err(exc)))
                continue
            tasks[split] = [str(t) for t in ids]
            required = split == "train"
            if not callable(lister):
                out.append(
                    ContractLine(
                        "tasks",
                        False,
                        "no task_ids(split): subclass reskill_gym.envs.base.TextEnv or give "
                        "EnvSpec.list_tasks",
                    )
                )
                break
            out.append(
                ContractLine(
                    f"tasks[{split}]",
                    bool(ids),
                    f"{len(ids)} tasks"
                    if ids
                    else f"none (train/evolve draw from train; eval defaults to unseen) - "
                    f"return ids from task_ids({split!r})",
                    required=required,
                )
            )
        train = tasks.get("train") or []
        if not train:
            return out
        first = train[0]
        try:
            obs, info = env.reset(seed=0, options={"task_id": first, "split": "train"})
        except Exception as exc:
            out.append(ContractLine("reset", False, f"task {first}: {_err(exc)}"))
            return out
        out.append(
            ContractLine(
                "observation",
                isinstance(obs, str),
                "str" if isinstance(obs, str) else f"a {type(obs).__name__}: return str",
            )
        )
        task = info.get("task")
        out.append(
            ContractLine(
                "info['task']",
                isinstance(task, str) and bool(task),
                "the goal text"
                if task
                else "missing at reset: put the goal text there "
                "(skills' retrieval triggers and the prompt read it)",
            )
        )
        out.append(
            ContractLine(
                "info['task_id']",
                info.get("task_id") == first,
                "reset honours options['task_id']"
                if info.get("task_id") == first
                else f"reset on {first!r} reported {info.get('task_id')!r}: honour "
                "reset(options={'task_id': ...})",
            )
        )
        others = tasks.get("train", [])[1:2]
        if others:
            obs2, info2 = env.reset(seed=0, options={"task_id": others[0], "split": "train"})
            same = (obs2, info2.get("task")) == (obs, task)
            out.append(
                ContractLine(
                    "task choice",
                    not same,
                    "different tasks start differently"
                    if not same
                    else f"tasks {first!r} and {others[0]!r} start identically: does reset "
                    "ignore the task id?",
                    required=False,
                )
            )
        obs_a, _ = env.reset(seed=0, options={"task_id": first, "split": "train"})
        out.append(
            ContractLine(
                "determinism",
                obs_a == obs,
                "same task and seed, same first observation"
                if obs_a == obs
                else "same task and seed gave another first observation: seed the engine "
                "from reset(seed=...)",
                required=False,
            )
        )
        adm = info.get("admissible_actions")
        has_adm = isinstance(adm, list) and all(isinstance(a, str) for a in adm) and bool(adm)
        out.append(
            ContractLine(
                "info['admissible_actions']",
                has_adm,
                f"{len(adm)} actions"
                if has_adm and adm is not None
                else "none: local agents in score mode and the expert metric need a list of "
                "str (generate mode works without)",
                required=spec.local_action_mode == "score",
            )
        )
        won_seen = True
        for _ in range(steps):
            action = adm[0] if has_adm and adm else "look"
            try:
                obs, reward, term, trunc, info = env.step(action)
            except Exception as exc:
                out.append(ContractLine("step", False, f"{action!r}: {_err(exc)}"))
                return out
            won_seen &= isinstance(info.get("won"), bool)
            adm = info.get("admissible_actions") or adm
            if term or trunc:
                break
        out.append(
            ContractLine(
                "step",
                isinstance(obs, str) and isinstance(reward, int | float),
                "str observation, numeric reward"
                if isinstance(obs, str)
                else f"observation is a {type(obs).__name__}: return str",
            )
        )
        out.append(
            ContractLine(
                "info['won']",
                won_seen,
                "a bool every step"
                if won_seen
                else "missing: set info['won'] every step (or EnvSpec.success / won_key)",
            )
        )
        if spec.expert is not None:
            try:
                _, einfo = env.reset(options={"task_id": first, "split": "train", "expert": True})
                ok = bool(einfo.get("expert_action")) and "expert_plan" in einfo
                msg = "reset(options={'expert': True}) gives expert_action and expert_plan"
            except Exception as exc:
                ok, msg = False, _err(exc)
            out.append(ContractLine("expert planner", ok, msg))
        try:
            seed = seed_library_path(spec.name)
            out.append(ContractLine("seed skills", True, str(seed), required=False))
        except FileNotFoundError:
            out.append(
                ContractLine(
                    "seed skills",
                    False,
                    "none: give EnvSpec.seed_skills, or run with skills: none / a folder",
                    required=False,
                )
            )
        out.append(_skill_env_line(env_name, kw))
    finally:
        env.close()
    return out


def _skill_env_line(env_name: str, kwargs: Mapping[str, Any]) -> ContractLine:
    from reskill_gym.checker import check_skill_env
    from reskill_gym.envs.registration import make_env
    from reskill_gym.skills import LibraryView
    from reskill_gym.wrapper import SkillWrapper

    env = None
    try:
        env = SkillWrapper(make_env(env_name, **kwargs), LibraryView("empty", []))
        check_skill_env(env)
    except Exception as exc:
        return ContractLine("check_skill_env", False, _err(exc))
    finally:
        if env is not None:
            env.close()
    return ContractLine("check_skill_env", True, "wrapped with skills, Gymnasium check_env")
