"""Engines reused across rollouts: the one env pool of every trainer and the evaluator.

Exports ``EnvPool`` and ``EnvLease``.

Engines that live in a worker process (ALFWorld's TextWorld worker, ScienceWorld's JVM) take
seconds to start and ~0.3 s to reset, so rollouts *lease* an idle env instead of building
one: ``pool.lease(key, skills)`` pins the skill view of the next episode
(``SkillWrapper.set_skills``, effective at ``reset``) and ``lease.close()`` gives the env
back. An env that raised in ``reset``/``step`` (or was :meth:`EnvLease.discard`-ed) is never
reused: closing its lease really closes it, so a crashed worker is replaced by a fresh env
on the next lease. ``key`` separates envs built differently (veRL rows of several envs);
``build(key)`` makes a new one. Thread-safe (the veRL loop leases from a thread pool).

>>> from reskill_gym.envs.base import EngineStep, TextEnv
>>> class Echo(TextEnv):
...     def task_ids(self, split=None): return ["t0"]
...     def _engine_reset(self, task_id, seed, options):
...         return "hi", {"task": "echo", "task_type": "echo"}
...     def _engine_step(self, action): return EngineStep(action, 1.0, True, False)
>>> pool = EnvPool(lambda key: Echo(max_turns=2))
>>> env = pool.lease(); _ = env.reset(seed=0); env.close()
>>> env2 = pool.lease(); env2.env is env.env, pool.built
(True, 1)
>>> pool.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

import gymnasium as gym

__all__ = ["EnvPool", "EnvLease"]

logger = logging.getLogger(__name__)

_NO_SKILLS_CHANGE = object()


class EnvLease(gym.Wrapper):
    """One rollout's hold on a pooled env; ``close()`` gives the env back (or drops it)."""

    def __init__(self, env: gym.Env, pool: EnvPool, key: Hashable) -> None:
        super().__init__(env)
        self._pool = pool
        self._key = key
        self._broken = False
        self._released = False

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

    def discard(self) -> None:
        """Mark the env unusable (its state is unknown): closing really closes it."""
        self._broken = True

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        self._pool._release(self._key, self.env, broken=self._broken)


class EnvPool:
    """Idle envs per key, handed out as leases (see the module docstring).

    Args:
        build: ``build(key) -> env``; a ``SkillWrapper`` (outermost) gets each lease's skills.
        max_idle: idle envs kept per key; extras are closed (``None``: keep all).
    """

    def __init__(self, build: Callable[[Any], gym.Env], *, max_idle: int | None = None) -> None:
        self._build = build
        self.max_idle = max_idle
        self._idle: dict[Hashable, list[gym.Env]] = {}
        self._lock = threading.Lock()
        self.built = 0
        self.discarded = 0

    def lease(self, key: Hashable = None, skills: Any = _NO_SKILLS_CHANGE) -> EnvLease:
        """An idle env for ``key`` (else a new one) with ``skills`` pinned for its next reset.

        ``skills`` is anything ``SkillWrapper.set_skills`` takes (a ``LibraryView``, ``None``
        for no skills); leave it out to keep the env's current library.
        """
        with self._lock:
            idle = self._idle.get(key)
            env = idle.pop() if idle else None
        if env is None:
            env = self._build(key)
            with self._lock:
                self.built += 1
        if skills is not _NO_SKILLS_CHANGE:
            from reskill_gym.wrapper import SkillWrapper

            if not isinstance(env, SkillWrapper):
                raise TypeError(
                    f"EnvPool: skills given but the built env is {type(env).__name__}, not a "
                    "SkillWrapper (build the env with make_skill_env)"
                )
            env.set_skills(skills)
        return EnvLease(env, self, key)

    def _release(self, key: Hashable, env: gym.Env, *, broken: bool) -> None:
        if broken:
            with self._lock:
                self.discarded += 1
            logger.info("env pool: discarding an env that raised (a fresh one replaces it)")
            _close_quietly(env)
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if self.max_idle is None or len(idle) < self.max_idle:
                idle.append(env)
                return
        _close_quietly(env)

    def idle(self, key: Hashable = None) -> int:
        """Idle envs for ``key``."""
        with self._lock:
            return len(self._idle.get(key, []))

    def close(self) -> None:
        """Close every idle env (leases still out close their env when they are closed)."""
        with self._lock:
            envs = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
        for env in envs:
            _close_quietly(env)


def _close_quietly(env: gym.Env) -> None:
    try:
        env.close()
    except Exception as exc:  # a dead engine may fail to close; nothing to keep anyway
        logger.warning("env pool: close failed: %s: %s", type(exc).__name__, exc)
