"""Single-machine GRPO trainer adapter (CPU or one GPU) for reskill-gym.

Exports ``GRPOConfig``, ``GRPOTrainer``, ``StepResult``, ``Policy``, ``load_policy``,
``RolloutSpec`` and ``run_rollouts``.

Modules: :mod:`reskill_local.grpo` (the loop, readable top to bottom),
:mod:`reskill_local.policy` (model loading, ``score``/``generate`` action modes),
:mod:`reskill_local.rollout` (batched multi-turn rollouts), :mod:`reskill_local.pool`
(ALFWorld/ScienceWorld engines reused across rollouts), :mod:`reskill_local.train` (the
``reskill train`` run: configs, run folder, checkpoints, resume, report). Co-evolution is
``reskill_gym.coevolve`` (``CoEvolution`` / ``NoCoEvolution``), used directly.
Importing this package imports torch.
"""

from __future__ import annotations

from reskill_local.grpo import GRPOConfig, GRPOTrainer, StepResult
from reskill_local.policy import Policy, load_policy
from reskill_local.rollout import RolloutSpec, run_rollouts

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "StepResult",
    "Policy",
    "load_policy",
    "RolloutSpec",
    "run_rollouts",
]
