"""A per-step time limit for any env: ``step_timeout_s``.

Exports ``EnvStepTimeout``, ``StepTimeoutWrapper`` and ``TIMEOUT_KEY``.

An engine that hangs (a deadlocked simulator, a retriever that never answers) would stall a
whole training step, since every live episode waits for the slowest one. Every env built by
:func:`reskill_gym.envs.registration.make_env` takes ``step_timeout_s`` (in a run config
``env.kwargs.step_timeout_s``, in ``reskill eval`` ``--env-kwargs``, in veRL
``reskill.env_kwargs``): each ``reset`` and ``step`` then runs in a worker thread, and one
that does not return in time raises :class:`EnvStepTimeout` (an
:class:`~reskill_gym.envs.base.EngineCrashedError`, so runners record an error episode and go
on). A thread cannot be stopped: the stuck env is dropped (closed once its call returns) and
the next ``reset`` builds a fresh one with the env's factory. Unset (the default), no wrapper
is added and a step costs nothing more.

An env whose factory takes ``step_timeout_s`` itself (the ``gym`` adapter) keeps its own;
ALFWorld (``step_timeout``) and ScienceWorld (``engine_timeout_s``) also kill their engine
process on their own, longer, limits.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from reskill_gym.envs.base import EngineCrashedError

__all__ = ["EnvStepTimeout", "StepTimeoutWrapper", "TIMEOUT_KEY"]

logger = logging.getLogger(__name__)

#: The env keyword every env takes (see the module docstring).
TIMEOUT_KEY = "step_timeout_s"


class EnvStepTimeout(EngineCrashedError):
    """A step (or reset) that did not return within ``step_timeout_s``."""


class StepTimeoutWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """Run ``reset``/``step`` of the env ``build()`` makes under a time limit; on a timeout
    drop that env and build a fresh one at the next ``reset``.

    >>> import gymnasium as gym
    >>> env = StepTimeoutWrapper(lambda: gym.make("CartPole-v1"), 5.0, "cartpole")
    >>> env.reset(seed=0)[0].shape
    (4,)
    >>> env.close()
    """

    def __init__(self, build: Callable[[], gym.Env[Any, Any]], limit_s: float, name: str):
        if not limit_s > 0:
            raise ValueError(f"env {name}: {TIMEOUT_KEY} must be > 0, got {limit_s}")
        super().__init__(build())
        self._build, self._limit, self._name = build, float(limit_s), name
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._dropped = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self._dropped:
            self.env = self._build()
            self._dropped = False
        return self._call("reset", lambda: self.env.reset(**kwargs))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._dropped:
            raise RuntimeError(f"env {self._name}: call reset() after a step timeout")
        return self._call("step", lambda: self.env.step(action))

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "reskill-env-step")
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=self._limit)
        except concurrent.futures.TimeoutError:
            self._drop()
            raise EnvStepTimeout(
                f"env {self._name}: {what} took longer than {TIMEOUT_KEY}={self._limit:g}"
            ) from None

    def _drop(self) -> None:
        """Forget the stuck env; its worker closes it once the stuck call returns."""
        pool, self._pool, self._dropped = self._pool, None, True
        if pool is not None:
            pool.submit(_close_quietly, self.env, self._name)
            pool.shutdown(wait=False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if not self._dropped:
            self.env.close()

    def __getattr__(self, name: str) -> Any:
        # task_ids, lookahead, ...: the env's own methods stay reachable through the wrapper
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)


def _close_quietly(env: gym.Env[Any, Any], name: str) -> None:
    try:
        env.close()
    except Exception as exc:  # a stuck engine may fail to close; it is dropped either way
        logger.warning("env %s: closing an env dropped after a timeout raised %s", name, exc)
