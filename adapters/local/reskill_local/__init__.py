"""Single-machine GRPO trainer adapter (CPU or one GPU) for reskill-gym.

Exports ``GRPOConfig``, ``GRPOTrainer``, ``StepResult``, ``Policy``, ``load_policy``,
``RolloutSpec`` and ``run_rollouts``.

Modules: :mod:`reskill_local.grpo` (the loop, readable top to bottom),
:mod:`reskill_local.policy` (model loading, what the model computes in ``score`` /
``generate`` mode), :mod:`reskill_local.rollout` (batched multi-turn rollouts over the turn
contract ``reskill_gym.rollout``), :mod:`reskill_local.train` (the ``reskill train`` run:
configs, run folder, checkpoints, resume, report), :mod:`reskill_local.cli` (the command,
attached to ``reskill`` by entry point). Co-evolution is ``reskill_gym.coevolve``
(``CoEvolution`` / ``NoCoEvolution``), used directly.

The exports are imported on first use, so loading the ``reskill train`` command (and with
it ``reskill --help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "StepResult",
    "Policy",
    "load_policy",
    "RolloutSpec",
    "run_rollouts",
]

_HOME = {
    "GRPOConfig": "reskill_local.grpo",
    "GRPOTrainer": "reskill_local.grpo",
    "StepResult": "reskill_local.grpo",
    "Policy": "reskill_local.policy",
    "load_policy": "reskill_local.policy",
    "RolloutSpec": "reskill_local.rollout",
    "run_rollouts": "reskill_local.rollout",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'reskill_local' has no attribute {name!r}")
