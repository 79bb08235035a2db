"""Registers the ReSkill agent loop and trainer in the veRL processes that use them.

Exports ``load``, ``REGISTERED`` and ``WATCHED``.

veRL imports this module from ``verl/__init__.py``: through the ``verl.plugins`` entry point
(``reskill = "reskill_verl.plugin"``) or through ``VERL_USE_EXTERNAL_MODULES=reskill_verl.plugin``
(our configs set it in Ray's runtime environment, so it reaches every worker on every node).
That is every process that imports veRL, vLLM's engine workers included, so importing
here is kept to nothing: the registrations wait for the module that needs them.

- ``verl.experimental.agent_loop.agent_loop`` imported (agent-loop workers): the
  ``reskill_env`` entry goes into veRL's agent-loop registry as the
  ``{"_target_": ...}`` mapping ``register`` would write; Hydra imports
  :mod:`reskill_verl.agent_loop` when the first loop is built.
- ``verl.trainer.ppo.v1`` imported (the trainer's process, ``TaskRunnerV1``):
  :mod:`reskill_verl.trainer` is imported, which registers ``reskill_sync``.

A registration that fails is logged at ERROR (veRL swallows a failing entry-point plugin at
DEBUG level) and raised in the process that needed it, so a missing registration shows up
as one clear line there, not as "Agent loop reskill_env not registered" minutes later, and
never breaks a process that does not use it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["load", "REGISTERED", "WATCHED"]

logger = logging.getLogger("reskill_verl.plugin")

REGISTERED: dict[str, str] = {}
"""What this process registered: ``agent_loop`` -> loop name, ``trainer`` -> trainer mode."""

AGENT_LOOP_NAME = "reskill_env"  # == reskill_verl.config.AGENT_LOOP_NAME (no pydantic here)
AGENT_LOOP_TARGET = "reskill_verl.agent_loop.ReskillEnvAgentLoop"
TRAINER_MODE = "reskill_sync"  # == reskill_verl.trainer.TRAINER_MODE


def _register_agent_loop(module: ModuleType) -> None:
    registry = module._agent_loop_registry
    registry.setdefault(AGENT_LOOP_NAME, {"_target_": AGENT_LOOP_TARGET})
    REGISTERED["agent_loop"] = AGENT_LOOP_NAME


def _register_trainer(module: ModuleType) -> None:
    # reskill_verl.trainer imported first (it imports veRL's trainer package, which runs
    # this): its class decorator registers it as soon as its own import finishes
    if "reskill_verl.trainer" not in sys.modules:
        import reskill_verl.trainer  # noqa: F401  (registers reskill_sync)
    REGISTERED["trainer"] = TRAINER_MODE


WATCHED: dict[str, Callable[[ModuleType], None]] = {
    "verl.experimental.agent_loop.agent_loop": _register_agent_loop,
    "verl.trainer.ppo.v1": _register_trainer,
}
"""Module -> registration run right after that module finished importing."""


def _run(name: str, module: ModuleType) -> None:
    try:
        WATCHED[name](module)
    except Exception:
        logger.exception(
            "reskill_verl plugin: registering after %s failed: the reskill_env agent loop / "
            "reskill_sync trainer are NOT registered in this process",
            name,
        )
        raise


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of a watched module so that its
    registration runs once the module's code has run."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in WATCHED or getattr(self._busy, "name", None) == fullname:
            return None
        self._busy.name = fullname  # the real finders below must not find us again
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.name = None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _Loader(loader, fullname)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._inner.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        self._inner.exec_module(module)
        _run(self._name, module)

    def __getattr__(self, name: str) -> Any:  # get_code, is_package, get_resource_reader, ...
        return getattr(self._inner, name)


_FINDER = _AfterImport()


def load() -> None:
    """Arm the registrations: run now for watched modules already imported, else right
    after they are."""
    for name in WATCHED:
        module = sys.modules.get(name)
        if module is not None:
            _run(name, module)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


load()
