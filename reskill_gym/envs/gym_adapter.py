"""Adapters from envs nobody wrote for this project to the ReSkill env contract.

Exports ``GymTextEnv``, ``GymEnvOptions``, ``SuccessRuleWrapper`` and ``EnvStepTimeout``.

``GymTextEnv`` is the factory of the built-in ``gym`` env: it plays any Gymnasium env whose
observations are text (or a mapping with a text field) and whose actions are text, unmodified,
and maps what the rest of the package reads from it:

==================  ========================================================================
``task``            ``info[task_key]`` at reset (default key ``task``); ``task_key:
                    observation`` takes the first observation as the task text
``admissible``      ``info[actions_key]`` (default ``admissible_actions``), when the env has it
``won``             ``info[won_key]`` (default ``won``) when present; else "terminated with
                    reward >= ``win_reward``" (default 1.0)
``task ids``        ``seed-<n>``: the env is reset with ``seed=n`` (train: seeds 0..99, seen:
                    0..19, unseen: 10000..10019, or ``tasks: {split: [...]}``); with
                    ``task_option`` set, ids go to ``reset(options={task_option: id})``
``observation``     a ``str``, or ``obs[obs_key]`` of a mapping observation
==================  ========================================================================

A step that raises becomes an :class:`~reskill_gym.envs.base.EngineCrashedError` naming the
env; a step slower than ``step_timeout_s`` an :class:`EnvStepTimeout` (the env is dropped and
rebuilt on the next reset), so a runner records an error episode and goes on. A missing
info key or a non-text observation is a one-line ``ValueError`` saying which option to set.

In a run config the short form ``env: {gym_id: ..., kwargs: {...}, task_key: ...}`` means
``env: {name: gym, kwargs: {gym_id: ..., env_kwargs: {...}, task_key: ...}}``.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field, field_validator

from reskill_gym.envs.base import SPLITS, EngineCrashedError, EngineStep, TextEnv
from reskill_gym.envs.timeout import EnvStepTimeout

__all__ = ["GymTextEnv", "GymEnvOptions", "SuccessRuleWrapper", "EnvStepTimeout"]

logger = logging.getLogger(__name__)

#: The adapter's own keyword arguments (the rest of a ``gym`` env's kwargs go to TextEnv).
ADAPTER_KEYS = frozenset(
    {
        "gym_id",
        "env_kwargs",
        "task_key",
        "actions_key",
        "won_key",
        "obs_key",
        "win_reward",
        "task_option",
        "tasks",
        "step_timeout_s",
    }
)

_DEFAULT_SEEDS: dict[str, list[int]] = {
    "train": list(range(100)),
    "seen": list(range(20)),
    "unseen": list(range(10_000, 10_020)),
}


class GymEnvOptions(BaseModel):
    """Where a Gymnasium env nobody wrote for this project keeps what ReSkill reads."""

    model_config = ConfigDict(extra="forbid")

    gym_id: str = Field(description="The Gymnasium id to gym.make (its package imported).")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of gym.make for that id."
    )
    task_key: str = Field(
        "task",
        description="Info key of the task text at reset; 'observation': the first "
        "observation is the task.",
    )
    actions_key: str | None = Field(
        "admissible_actions",
        description="Info key of the admissible actions (a list of str), or null: none.",
    )
    won_key: str | None = Field(
        "won",
        description="Info key of the win flag; when absent from info, an episode that "
        "terminates with reward >= win_reward is won.",
    )
    obs_key: str | None = Field(
        None, description="Key of the text in a mapping observation (null: str observations)."
    )
    win_reward: float = Field(1.0, description="Terminal reward that counts as a win.")
    task_option: str | None = Field(
        None,
        description="reset(options={task_option: task_id}) picks the task; null: task ids "
        "are seeds ('seed-<n>' resets with seed=n).",
    )
    tasks: dict[str, list[str]] | None = Field(
        None,
        description="Task ids per split (train/seen/unseen); null: seed-0..99 (train), "
        "seed-0..19 (seen), seed-10000..10019 (unseen).",
    )
    step_timeout_s: float | None = Field(
        60.0, gt=0, description="Longest a reset or step may take (null: no limit)."
    )

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is not None:
            bad = [s for s in v if s not in SPLITS]
            if bad:
                raise ValueError(f"tasks: splits {bad} not in {SPLITS}")
        return v


class GymTextEnv(TextEnv):
    """An unmodified Gymnasium text env behind the ReSkill contract (module docstring).

    >>> GymEnvOptions(gym_id="CartPole-v1").task_key
    'task'
    """

    env_name = "gym"

    def __init__(
        self,
        *,
        gym_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
        task_key: str = "task",
        actions_key: str | None = "admissible_actions",
        won_key: str | None = "won",
        obs_key: str | None = None,
        win_reward: float = 1.0,
        task_option: str | None = None,
        tasks: Mapping[str, list[str]] | None = None,
        step_timeout_s: float | None = 60.0,
        split: str = "train",
        max_turns: int = 50,
        max_action_chars: int = 512,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            max_action_chars=max_action_chars,
            render_mode=render_mode,
        )
        self.options = GymEnvOptions(
            gym_id=gym_id,
            env_kwargs=dict(env_kwargs or {}),
            task_key=task_key,
            actions_key=actions_key,
            won_key=won_key,
            obs_key=obs_key,
            win_reward=win_reward,
            task_option=task_option,
            tasks=dict(tasks) if tasks is not None else None,
            step_timeout_s=step_timeout_s,
        )
        if gym_id not in gym.registry:
            raise ValueError(
                f"env gym: {gym_id!r} is not a registered Gymnasium id (import the package "
                "that registers it first, e.g. through a reskill_gym.envs plugin)"
            )
        self._inner: gym.Env[Any, Any] | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._task_text = ""

    # ----- tasks ---------------------------------------------------------------------------
    def task_ids(self, split: str | None = None) -> list[str]:
        split = split or self.split
        if self.options.tasks is not None:
            return [str(t) for t in self.options.tasks.get(split, [])]
        return [f"seed-{n}" for n in _DEFAULT_SEEDS[split]]

    # ----- the inner env, called under the step timeout ------------------------------------
    def _env(self) -> gym.Env[Any, Any]:
        if self._inner is None:
            # the contract is checked here (and by `reskill env check`), not by Gymnasium's
            # passive checker, whose assertions would hide which option to set
            self._inner = gym.make(
                self.options.gym_id, disable_env_checker=True, **self.options.env_kwargs
            )
        return self._inner

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        limit = self.options.step_timeout_s
        if limit is None:
            try:
                return fn()
            except Exception as exc:
                raise self._crash(what, exc) from exc
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "reskill-gym-env")
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            # A thread cannot be stopped: leave it to finish on its own and drop the env.
            self._abandon()
            raise EnvStepTimeout(
                f"env {self.options.gym_id}: {what} took longer than step_timeout_s={limit:g}"
            ) from None
        except Exception as exc:
            raise self._crash(what, exc) from exc

    def _crash(self, what: str, exc: BaseException) -> EngineCrashedError:
        from reskill_gym.safe_text import error_line

        return EngineCrashedError(
            f"env {self.options.gym_id}: {what} raised {type(exc).__name__}: {error_line(exc)}"
        )

    def _abandon(self) -> None:
        pool, self._pool, self._inner = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # ----- mapping -------------------------------------------------------------------------
    def _text(self, obs: Any, where: str) -> str:
        key = self.options.obs_key
        if key is not None:
            if not isinstance(obs, Mapping) or key not in obs:
                raise ValueError(
                    f"env {self.options.gym_id}: {where} observation has no {key!r} "
                    f"(obs_key); it is a {type(obs).__name__}"
                )
            obs = obs[key]
        if not isinstance(obs, str):
            hint = " (set obs_key to its text field)" if isinstance(obs, Mapping) else ""
            raise ValueError(
                f"env {self.options.gym_id}: {where} observation is a {type(obs).__name__}, "
                f"not str{hint}"
            )
        return obs

    def _admissible(self, info: Mapping[str, Any]) -> list[str] | None:
        key = self.options.actions_key
        if key is None or key not in info:
            return None
        acts = info[key]
        if not isinstance(acts, list | tuple) or not all(isinstance(a, str) for a in acts):
            raise ValueError(
                f"env {self.options.gym_id}: info[{key!r}] (actions_key) is not a list of str"
            )
        return list(acts)

    # ----- TextEnv hooks -------------------------------------------------------------------
    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        opts = self.options
        reset_kwargs: dict[str, Any] = {}
        if opts.task_option is not None:
            reset_kwargs = {"seed": seed, "options": {**options, opts.task_option: task_id}}
        else:
            if not task_id.startswith("seed-") or not task_id[5:].isdigit():
                raise ValueError(
                    f"env {opts.gym_id}: task id {task_id!r} is not seed-<n> (set task_option "
                    "to pass task ids through reset options)"
                )
            reset_kwargs = {"seed": int(task_id[5:])}
            if options:
                reset_kwargs["options"] = dict(options)
        env = self._env()
        obs, info = self._call("reset", lambda: env.reset(**reset_kwargs))
        text = self._text(obs, "reset")
        info = dict(info)
        if opts.task_key == "observation":
            task = text
        elif opts.task_key in info:
            task = info.pop(opts.task_key)
        else:
            raise ValueError(
                f"env {opts.gym_id}: reset info has no {opts.task_key!r} (task_key; its keys: "
                f"{', '.join(sorted(map(str, info))) or 'none'}); set task_key to the key "
                "holding the goal text, or task_key: observation"
            )
        self._task_text = str(task)
        adm = self._admissible(info)
        out = {k: v for k, v in info.items() if isinstance(k, str) and _plain(v)}
        out.update(task=self._task_text, task_type=str(info.get("task_type", opts.gym_id)))
        if adm is not None:
            out["admissible_actions"] = adm
        return text, out

    def _engine_step(self, action: str) -> EngineStep:
        opts = self.options
        env = self._env()
        obs, reward, terminated, truncated, info = self._call("step", lambda: env.step(action))
        info = dict(info)
        if opts.won_key is not None and opts.won_key in info:
            won = bool(info[opts.won_key])
        else:
            won = bool(terminated) and float(reward) >= opts.win_reward
        extra = {
            k: v
            for k, v in info.items()
            if isinstance(k, str) and _plain(v) and k not in (opts.actions_key, opts.won_key)
        }
        return EngineStep(
            observation=self._text(obs, "step"),
            reward=float(reward),
            done=bool(terminated or truncated),
            won=won,
            admissible_actions=self._admissible(info),
            extra=extra,
        )

    def close(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            try:
                inner.close()
            except Exception as exc:
                logger.warning("env %s: close raised %s", self.options.gym_id, exc)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        super().close()


def _plain(value: Any) -> bool:
    """Info values that survive JSON (the episode record keeps info)."""
    return value is None or isinstance(value, str | int | float | bool)


class SuccessRuleWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """Set ``info["won"]`` from a spec's success rule ``rule(reward, info)`` on every step."""

    def __init__(self, env: gym.Env[Any, Any], rule: Callable[[float, Mapping[str, Any]], bool]):
        super().__init__(env)
        self._rule = rule

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["won"] = bool(self._rule(float(reward), info))
        return obs, float(reward), terminated, truncated, info

    def __getattr__(self, name: str) -> Any:
        # task_ids, lookahead, ...: the env's own methods stay reachable through the wrapper
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)
