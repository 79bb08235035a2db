"""reskill-gym's veRL adapter: multi-turn skill-env rollouts, co-evolution per training step.

Modules (import them directly; this package's ``__init__`` imports neither verl nor ray):

- ``agent_loop``: ``ReskillEnvAgentLoop``, the agent loop registered as ``reskill_env``
  (one ``reskill_gym.rollout.RolloutSession`` per trajectory; per_turn or concat samples);
- ``coevolution_actor``: ``CoEvolutionService`` and the named Ray actor around it;
- ``trainer``: ``ReskillTrainer``, veRL's sync V1 trainer + ``end_step`` per step, the
  invalid-action penalty and double normalisation (``trainer.v1.trainer_mode=reskill_sync``);
- ``advantage``: ``per_turn_grpo_advantages``, the pure advantage function the trainer uses;
- ``runlog``: ``config.yaml``/``metrics.jsonl``/``events.jsonl`` for ``reskill report``;
- ``plugin``: what veRL imports (``verl.plugins`` entry point or ``VERL_USE_EXTERNAL_MODULES``)
  to register both in the processes that use them;
- ``prepare``: dataset rows (parquet) for veRL's ``RLHFDataset``;
- ``config``: the ``reskill:`` config section (``reskill.rollout`` is the turn contract);
- ``preflight``: the memory plan per GPU and the checks on every node (``reskill verl
  preflight``);
- ``cli``: ``reskill verl prepare|preflight|train``.

Exports ``TESTED_VERL`` (the veRL versions this adapter was written and tested against).
"""

from __future__ import annotations

__all__ = ["TESTED_VERL"]

TESTED_VERL = ">=0.9.1,<0.10"
