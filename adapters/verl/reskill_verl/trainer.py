"""The per-step hook: veRL's synchronous V1 trainer plus one call to co-evolution per step.

Exports ``ReskillTrainer`` (registered as trainer mode ``reskill_sync``), ``TRAINER_MODE``
and ``CoEvolutionStepHook``.

We extend veRL through its own hooks instead of copying ``fit()`` (the published system
copies it and is pinned to veRL 0.6.1 because of that). veRL 0.9.1's V1 trainer calls
argument-less hooks from ``fit()``; per step the order is::

    on_step_begin -> step() (rollouts, reward, old/ref log-probs, advantages, update)
    -> checkpoint -> on_step_end -> metrics.update(_consume_sync_metrics())
    -> validation -> _compute_metrics -> logger.log(metrics, step)

``ReskillTrainer.on_step_end`` first runs ``PPOTrainerSync.on_step_end`` (the weight sync to
the rollout servers: must stay), then ``end_step(global_steps)`` on the co-evolution actor
(tester flush/decision, creator collect/submit, checkpoint). The step's metrics (per-arm
success, P(candidate), decisions, skill trigger rates, creator state) go into
``_pending_sync_metrics``, which ``fit()`` merges into that step's logged metrics, so they
reach every veRL logger backend (console, wandb, ...). In sync mode every training rollout of
step k has finished before ``on_step_end`` of step k, and validation rollouts come after it.

Two traps handled here (verified against veRL 0.9.1):

- several places in ``PPOTrainer`` test ``trainer_mode == "sync"`` literally (replay buffer
  choice, checkpointed prompt state), and the mode is read in ``__init__`` right before the
  replay buffer is built; a subclass registered under another name therefore resets the mode
  in ``_build_replay_buffer``, the first method ``__init__`` calls after reading it.
- the name ``sync`` cannot be re-registered (``register_trainer`` raises), so the trainer is
  selected with ``trainer.v1.trainer_mode=reskill_sync``.

The actor is created in ``on_init_end`` (after veRL loaded its checkpoint, so the resume step
is known, and before any rollout, validation-before-train included).
``CoEvolutionStepHook`` holds the logic so it can be tested without a GPU trainer.
"""

from __future__ import annotations

import logging
from typing import Any

from verl.trainer.ppo.v1 import PPOTrainerSync, register_trainer
from verl.utils.debug import marked_timer

from reskill_verl.agent_loop import default_root
from reskill_verl.config import ReskillVerlConfig

__all__ = ["ReskillTrainer", "TRAINER_MODE", "CoEvolutionStepHook"]

logger = logging.getLogger(__name__)

TRAINER_MODE = "reskill_sync"


class CoEvolutionStepHook:
    """Calls ``end_step`` on the co-evolution actor once per training step.

    ``actor`` is a Ray actor handle (or any object whose methods have ``.remote``); ``get``
    resolves a call's result (``ray.get``).
    """

    def __init__(self, actor: Any, get: Any) -> None:
        self.actor = actor
        self._get = get
        self.last_step: int | None = None
        self.events: list[dict[str, Any]] = []

    def end_step(self, step: int) -> dict[str, float]:
        """Close ``step`` on the actor; returns metrics (empty if this step was closed already)."""
        if self.last_step is not None and step <= self.last_step:
            logger.warning("reskill: on_step_end fired twice for step %d; ignored", step)
            return {}
        result = self._get(self.actor.end_step.remote(int(step)))
        self.last_step = step
        self.events = list(result.get("events", []))
        for e in self.events:
            logger.info("reskill step %s %s: %s", e.get("step"), e.get("kind"), e.get("message"))
        return {k: float(v) for k, v in result.get("metrics", {}).items()}

    def close(self) -> None:
        try:
            self._get(self.actor.close.remote())
        except Exception as exc:  # shutting down: report, do not mask the real exit reason
            logger.warning("reskill: closing the co-evolution actor failed: %s", exc)


@register_trainer(TRAINER_MODE)
class ReskillTrainer(PPOTrainerSync):
    """``PPOTrainerSync`` + co-evolution ``end_step`` after every step (see module docstring)."""

    reskill_hook: CoEvolutionStepHook | None = None

    def _build_replay_buffer(self) -> Any:
        # PPOTrainer.__init__ read trainer_mode from the config just before calling this.
        self.trainer_mode = "sync"
        self.parameter_sync_step = 1
        return super()._build_replay_buffer()

    def on_init_end(self) -> None:
        super().on_init_end()  # weight sync after checkpoint load
        self.reskill = ReskillVerlConfig.from_trainer_config(self.config)
        if not self.reskill.coevolution.enabled:
            logger.info("reskill: co-evolution disabled; fixed library %s", self.reskill.skills)
            return
        import ray

        from reskill_verl.coevolution_actor import get_or_create_actor

        actor = get_or_create_actor(
            self.reskill,
            default_root=default_root(self.config),
            resume_step=int(getattr(self, "global_steps", 0) or 0),
        )
        head = ray.get(actor.head.remote())  # fail here, not in the first rollout
        logger.info("reskill: co-evolution actor up, library HEAD %s", head)
        self.reskill_hook = CoEvolutionStepHook(actor, ray.get)

    def on_step_end(self) -> None:
        super().on_step_end()  # PPOTrainerSync: weight sync to the rollout replicas
        if self.reskill_hook is None:
            return
        with marked_timer("reskill_end_step", self.timing_raw):
            metrics = self.reskill_hook.end_step(int(self.global_steps))
        pending = getattr(self, "_pending_sync_metrics", None) or {}
        pending.update(metrics)
        self._pending_sync_metrics = pending

    def on_train_end(self) -> None:
        super().on_train_end()
        if self.reskill_hook is not None:
            self.reskill_hook.close()
