"""reskill-gym's veRL adapter: multi-turn skill-env rollouts, co-evolution per training step.

Modules (import them directly; this package's ``__init__`` imports neither verl nor ray):

- ``agent_loop``: ``ReskillEnvAgentLoop``, the agent loop registered as ``reskill_env``;
- ``coevolution_actor``: ``CoEvolutionService`` and the named Ray actor around it;
- ``trainer``: ``ReskillTrainer``, veRL's sync V1 trainer + ``end_step`` per step
  (``trainer.v1.trainer_mode=reskill_sync``);
- ``plugin``: what veRL imports (``verl.plugins`` entry point or ``VERL_USE_EXTERNAL_MODULES``)
  to register both in every process;
- ``prepare``: dataset rows (parquet) for veRL's ``RLHFDataset``;
- ``actions``, ``config``: reply parsing and the ``reskill:`` config section;
- ``cli``: ``reskill verl prepare|train``.

Exports ``TESTED_VERL`` (the veRL versions this adapter was written and tested against).
"""

from __future__ import annotations

__all__ = ["TESTED_VERL"]

TESTED_VERL = ">=0.9.1,<0.10"
