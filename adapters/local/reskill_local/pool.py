"""Engines reused across rollouts: a pool behind the trainer's ``make_env(task_id, version)``.

Exports ``EnvPool``.

The trainer builds one env per rollout and closes it when the episode ends. For engines
that live in a worker process (ALFWorld's TextWorld worker, ScienceWorld's JVM) a fresh env
costs ~3 s of start-up while a ``reset`` on a running one costs ~0.3 s, so the pool hands out
*leases*: ``close()`` on a lease returns its engine to the pool, with the skill view of the
next rollout set through ``SkillWrapper.set_skills`` (which takes effect at ``reset``). An
env that raised in ``reset``/``step`` is never reused: its ``close()`` really closes it, so
a crashed worker is replaced by a fresh env on the next lease.

>>> from reskill_gym.envs.base import EngineStep, TextEnv
>>> class Echo(TextEnv):
...     def task_ids(self, split=None): return ["t0"]
...     def _engine_reset(self, task_id, seed, options):
...         return "hi", {"task": "echo", "task_type": "echo"}
...     def _engine_step(self, action): return EngineStep(action, 1.0, True, False)
>>> pool = EnvPool(lambda: Echo(max_turns=2), lambda version: None)
>>> env = pool("t0", None); _ = env.reset(seed=0); env.close()
>>> env2 = pool("t0", None); env2.env is env.env, pool.built
(True, 1)
>>> pool.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from reskill_gym.skills import LibraryView
from reskill_gym.wrapper import SkillWrapper

__all__ = ["EnvPool"]

logger = logging.getLogger(__name__)


class _Lease(gym.Wrapper):
    """One rollout's hold on a pooled env; ``close()`` gives the env back (or drops it)."""

    def __init__(self, env: gym.Env, pool: EnvPool) -> None:
        super().__init__(env)
        self._pool = pool
        self._broken = False
        self._released = False

    @property
    def spec(self) -> Any:
        return self._pool.spec if self._pool.spec is not None else self.env.spec

    def reset(self, **kwargs: Any) -> Any:
        try:
            return self.env.reset(**kwargs)
        except BaseException:
            self._broken = True
            raise

    def step(self, action: Any) -> Any:
        try:
            return self.env.step(action)
        except BaseException:
            self._broken = True
            raise

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        self._pool._release(self.env, broken=self._broken)


class EnvPool:
    """``make_env(task_id, version)`` that reuses idle envs (see the module docstring).

    Args:
        build: makes a fresh env; a ``SkillWrapper`` (outermost) gets each lease's skills.
        view: ``version -> LibraryView | None`` (e.g. ``CoEvolution.view``).
        spec: the ``EnvSpec`` leases report (episodes record ``spec.id``); default: the env's.
        max_idle: idle envs kept; extra ones are closed (``None``: keep all).
    """

    def __init__(
        self,
        build: Callable[[], gym.Env],
        view: Callable[[str | None], LibraryView | None],
        *,
        spec: Any = None,
        max_idle: int | None = None,
    ) -> None:
        self._build = build
        self._view = view
        self.spec = spec
        self.max_idle = max_idle
        self._idle: list[gym.Env] = []
        self._lock = threading.Lock()
        self.built = 0
        self.discarded = 0

    def __call__(self, task_id: str, version: str | None) -> gym.Env:
        with self._lock:
            env = self._idle.pop() if self._idle else None
        if env is None:
            env = self._build()
            self.built += 1
        if isinstance(env, SkillWrapper):
            env.set_skills(self._view(version))
        return _Lease(env, self)

    def _release(self, env: gym.Env, *, broken: bool) -> None:
        if broken:
            self.discarded += 1
            logger.info("env pool: discarding an env that raised (a fresh one replaces it)")
            _close_quietly(env)
            return
        with self._lock:
            if self.max_idle is None or len(self._idle) < self.max_idle:
                self._idle.append(env)
                return
        _close_quietly(env)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        """Close every idle env (leases still out close their env when they are closed)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for env in idle:
            _close_quietly(env)


def _close_quietly(env: gym.Env) -> None:
    try:
        env.close()
    except Exception as exc:  # a dead engine may fail to close; nothing to keep anyway
        logger.warning("env pool: close failed: %s: %s", type(exc).__name__, exc)
