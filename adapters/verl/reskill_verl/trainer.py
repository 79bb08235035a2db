"""The per-step hook: veRL's synchronous V1 trainer plus co-evolution, the invalid-action
penalty, double normalisation and the run log.

Exports ``ReskillTrainer`` (registered as trainer mode ``reskill_sync``), ``TRAINER_MODE``,
``CoEvolutionStepHook``, ``COEVOLUTION_SUBDIR``, ``check_failed_sessions``,
``freeze_policy_config``, ``resume_folder`` and ``rollout_log_probs_as_old``.

We extend veRL through its own hooks instead of copying ``fit()`` (the published system
copies it and is pinned to veRL 0.6.1 because of that). veRL 0.9.1's V1 trainer calls
argument-less hooks from ``fit()``; per step the order is::

    on_step_begin -> step() (rollouts, reward, old/ref log-probs, _compute_advantage, update)
    -> checkpoint -> on_step_end -> metrics.update(_consume_sync_metrics())
    -> validation -> _compute_metrics -> logger.log(metrics, step)

- ``_compute_advantage``: veRL's own pass first (episode-level GRPO over the turn samples of
  a ``uid``), then, when ``reskill.rollout.invalid_action_penalty > 0`` or
  ``reskill.grpo_double_normalize``, the advantages are recomputed from the rows by the pure
  :func:`reskill_verl.advantage.per_turn_grpo_advantages` and written back to TransferQueue.
  Nothing else of the algorithm is overridden.
- ``on_step_end`` first runs ``PPOTrainerSync.on_step_end`` (the weight sync to the rollout
  servers: must stay), then ``end_step(global_steps)`` on the co-evolution actor (tester
  flush/decision, creator collect/submit, checkpoint). The step's metrics — the shared
  namespace ``episode/*``, ``arms/*``, ``versions/*``, ``creator/*``, ``skills/*`` — go into
  ``_pending_sync_metrics``, which ``fit()`` merges into that step's logged metrics (every
  veRL logger backend), and into ``<trainer.default_local_dir>/reskill/metrics.jsonl`` (+
  ``events.jsonl``; ``config.yaml`` is written at start), the run folder ``reskill report``
  reads (:mod:`reskill_verl.runlog`). In sync mode every training rollout of step k has
  finished before ``on_step_end`` of step k, and validation rollouts come after it.

- ``_save_checkpoint`` (which ``fit`` calls before ``on_step_end``) closes the step on the
  actor first and writes the co-evolution checkpoint into ``global_step_<k>/reskill/``
  before veRL's own, so a resume pairs the policy and the library of the same step.
- ``on_sample_end`` / ``_validate`` stop training when more than
  ``reskill.max_failed_session_share`` of the step's (validation pass's) sessions failed;
  ``_validate`` adds the pass's success per split, task type and (ScienceWorld) topic to
  veRL's validation metrics (``reskill/val/...``) and to the run folder's
  ``validation.jsonl``.
- ``fit`` closes the actor however it ends (veRL's ``fit`` returns from inside its loop
  after the last step: its ``on_train_end`` never runs on a normal finish).
- a frozen policy (``reskill.update_policy: false``) hands veRL the rollout's log-probs as
  ``old_log_probs`` (:func:`rollout_log_probs_as_old`): veRL's rollout-correction step reads
  them every step.

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
import os
import time
from typing import Any

from verl.trainer.ppo.v1 import PPOTrainerSync, register_trainer
from verl.utils.debug import marked_timer

from reskill_verl.agent_loop import default_root
from reskill_verl.config import ReskillVerlConfig, check_trainer_config
from reskill_verl.runlog import RunLog, run_config

__all__ = [
    "ReskillTrainer",
    "TRAINER_MODE",
    "CoEvolutionStepHook",
    "COEVOLUTION_SUBDIR",
    "check_failed_sessions",
    "freeze_policy_config",
    "resume_folder",
    "rollout_log_probs_as_old",
]

logger = logging.getLogger(__name__)

TRAINER_MODE = "reskill_sync"
COEVOLUTION_SUBDIR = "reskill"
"""Folder of the co-evolution checkpoint inside veRL's ``global_step_<k>``."""


class CoEvolutionStepHook:
    """Closes each training step on the co-evolution actor, once.

    ``actor`` is a Ray actor handle (or any object whose methods have ``.remote``); ``get``
    resolves a call's result (``ray.get``). :meth:`close_step` runs the actor's ``end_step``
    and keeps its metrics/events until :meth:`take` hands them to the run log: the trainer
    closes a step early when veRL saves a checkpoint in it (so the co-evolution snapshot
    saved with veRL's is the state after that step), and publishes it in ``on_step_end``.
    """

    def __init__(self, actor: Any, get: Any) -> None:
        self.actor = actor
        self._get = get
        self.last_step: int | None = None
        self.events: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._closed = False

    def close_step(self, step: int) -> bool:
        """``end_step(step)`` on the actor unless this step (or a later one) is closed."""
        if self.last_step is not None and step <= self.last_step:
            return False
        result = self._get(self.actor.end_step.remote(int(step)))
        self.last_step = step
        self._pending = result
        for e in result.get("events", []):
            logger.info("reskill step %s %s: %s", e.get("step"), e.get("kind"), e.get("message"))
        return True

    def take(self) -> tuple[dict[str, float], list[dict[str, Any]]] | None:
        """The closed step's ``(metrics, events)``, once (None: nothing new)."""
        result, self._pending = self._pending, None
        if result is None:
            return None
        self.events = list(result.get("events", []))
        return {k: float(v) for k, v in result.get("metrics", {}).items()}, self.events

    def end_step(self, step: int) -> dict[str, float]:
        """Close ``step`` and return its metrics (empty if this step was closed already)."""
        if not self.close_step(step):
            logger.warning("reskill: on_step_end fired twice for step %d; ignored", step)
            return {}
        taken = self.take()
        return taken[0] if taken is not None else {}

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the co-evolution checkpoint into ``directory`` (beside veRL's)."""
        self._get(self.actor.save_checkpoint.remote(str(directory)))

    def failures(self) -> dict[str, Any]:
        """Sessions and failed sessions of this step's training rollouts."""
        return dict(self._get(self.actor.step_failures.remote()))

    def take_eval(self) -> dict[str, Any]:
        """The validation pass since the last call (then reset): sessions, failed sessions,
        errors and ``metrics`` (success per split, task type and topic)."""
        return dict(self._get(self.actor.take_eval.remote()))

    def close(self) -> None:
        """Stop the creator; idempotent (``fit`` ends through here on every exit)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._get(self.actor.close.remote())
        except Exception as exc:  # shutting down: report, do not mask the real exit reason
            logger.warning("reskill: closing the co-evolution actor failed: %s", exc)


def check_failed_sessions(stats: dict[str, Any], cap: float, where: str) -> None:
    """Raise when more than ``cap`` of the sessions in ``stats`` failed (env errors).

    A failed session yields no sample (veRL then trains on the rest of its group and leaves
    it out of validation averages), so a node without its data or engine would otherwise
    bias every number silently.

    >>> check_failed_sessions({"sessions": 10, "failed": 1, "errors": []}, 0.1, "step 3")
    >>> check_failed_sessions({"sessions": 10, "failed": 2, "errors": ["no data [node a]"]},
    ...                       0.1, "step 3")
    Traceback (most recent call last):
    ...
    RuntimeError: reskill: 2 of 10 sessions failed in step 3 (20%, more than reskill.max_failed_session_share=0.1): no data [node a]
    """
    n, failed = int(stats.get("sessions", 0)), int(stats.get("failed", 0))
    if n == 0 or failed / n <= cap:
        if failed:
            logger.warning("reskill: %d of %d sessions failed in %s", failed, n, where)
        return
    errors = "; ".join(str(e) for e in stats.get("errors", [])[:5]) or "(no message)"
    raise RuntimeError(
        f"reskill: {failed} of {n} sessions failed in {where} ({failed / n:.0%}, more than "
        f"reskill.max_failed_session_share={cap:g}): {errors}"
    )


FROZEN_WARMUP = 2**31 - 1
"""``trainer.critic_warmup`` of a frozen policy: veRL updates the actor only from that step."""


def freeze_policy_config(config: Any) -> None:
    """Edit a veRL config in place for ``reskill.update_policy: false`` (frozen policy).

    veRL 0.9.1's V1 step updates the actor only once ``trainer.critic_warmup <= global_steps``
    (``trainer_base._step_once``; checkpoints are saved outside that branch, so resume still
    works), and builds a reference worker only if ``actor.use_kl_loss`` or
    ``algorithm.use_kl_in_reward`` asks for one (``need_reference_policy``). The old-log-prob
    pass is replaced by :meth:`ReskillTrainer._compute_old_log_prob`.
    """
    from omegaconf import open_dict

    with open_dict(config):
        config.trainer.critic_warmup = FROZEN_WARMUP
        config.actor_rollout_ref.actor.use_kl_loss = False
        config.algorithm.use_kl_in_reward = False


def rollout_log_probs_as_old(batch: Any) -> Any:
    """veRL's bypass mode (``algorithm.rollout_correction.bypass_mode``) for one batch: the
    rollout's log-probs become ``old_log_probs``, no actor forward pass.

    A frozen policy skips the old-log-prob pass, but veRL 0.9.1's ``_compute_advantage``
    always runs its rollout-correction step when the batch has ``rollout_log_probs``
    (``rollout.calculate_log_probs``), and that step reads ``old_log_probs``
    (``rollout_corr_helper.compute_rollout_correction_and_add_to_batch``): without them it
    fails with a ``KeyError`` in the first step.
    """
    import transfer_queue as tq

    data = tq.kv_batch_get(
        keys=batch.keys, partition_id=batch.partition_id, select_fields=["rollout_log_probs"]
    )
    data["old_log_probs"] = data.pop("rollout_log_probs")
    tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=data)
    return batch


def resume_folder(config: Any, steps_done: int) -> str | None:
    """The ``global_step_<k>`` folder veRL resumed from (None: a fresh start), as
    ``PPOTrainer._load_checkpoint`` finds it."""
    trainer = config.trainer
    mode = str(trainer.get("resume_mode", "auto"))
    if steps_done <= 0 or mode == "disable":
        return None
    if mode == "resume_path" and trainer.get("resume_from_path"):
        return os.path.abspath(str(trainer.resume_from_path))
    return os.path.abspath(
        os.path.join(str(trainer.default_local_dir), f"global_step_{steps_done}")
    )


@register_trainer(TRAINER_MODE)
class ReskillTrainer(PPOTrainerSync):
    """``PPOTrainerSync`` + co-evolution, penalty/whitening and the run log (module docstring)."""

    reskill_hook: CoEvolutionStepHook | None = None
    run_log: RunLog | None = None

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        # before PPOTrainer.__init__ decides which workers (reference, ...) to build
        if not ReskillVerlConfig.from_trainer_config(config).update_policy:
            freeze_policy_config(config)
            logger.info("reskill.update_policy=false: frozen policy (no actor update, no ref)")
        super().__init__(config, *args, **kwargs)

    def _compute_old_log_prob(self, batch: Any, metrics: dict) -> Any:
        """A frozen policy trains nothing: the rollout's log-probs stand in (veRL's bypass)."""
        if self.reskill_settings.update_policy:
            return super()._compute_old_log_prob(batch, metrics)
        if bool(self.config.actor_rollout_ref.rollout.get("calculate_log_probs", False)):
            return rollout_log_probs_as_old(batch)
        return batch

    def _build_replay_buffer(self) -> Any:
        # PPOTrainer.__init__ read trainer_mode from the config just before calling this.
        self.trainer_mode = "sync"
        self.parameter_sync_step = 1
        return super()._build_replay_buffer()

    @property
    def reskill_settings(self) -> ReskillVerlConfig:
        settings = getattr(self, "reskill", None)
        if settings is None:
            settings = self.reskill = ReskillVerlConfig.from_trainer_config(self.config)
        return settings

    def _reskill_advantage_on(self) -> bool:
        s = self.reskill_settings
        return s.rollout.invalid_action_penalty > 0 or s.grpo_double_normalize

    def _check_algorithm(self) -> None:
        """The penalty and the whitening are defined on GRPO rewards straight from the env."""
        check_trainer_config(self.config, self.reskill_settings)
        if not self._reskill_advantage_on():
            return
        algo = self.config.algorithm
        if str(algo.adv_estimator) != "grpo":
            raise ValueError(
                f"algorithm.adv_estimator={algo.adv_estimator}: reskill's invalid-action penalty "
                "and grpo_double_normalize need grpo (or set "
                "reskill.rollout.invalid_action_penalty=0 reskill.grpo_double_normalize=false)"
            )
        if bool(algo.get("use_kl_in_reward", False)):
            raise ValueError(
                "algorithm.use_kl_in_reward=true: reskill's invalid-action penalty / "
                "grpo_double_normalize recompute advantages from the env rewards; use the KL "
                "loss (actor.use_kl_loss) instead"
            )

    def on_init_end(self) -> None:
        super().on_init_end()  # weight sync after checkpoint load
        settings = self.reskill_settings
        self._check_algorithm()
        root = default_root(self.config)
        steps_done = int(getattr(self, "global_steps", 0) or 0)
        self.run_log = RunLog(root)
        self.run_log.write_config(
            run_config(
                self.config, settings, total_steps=getattr(self, "total_training_steps", None)
            )
        )
        self.run_log.resume(steps_done)
        self._reskill_step_t0: float | None = None
        self._reskill_adv_metrics: dict[str, float] = {}
        if not settings.coevolution.enabled:
            logger.info("reskill: co-evolution disabled; fixed library %s", settings.skills)
        import ray

        from reskill_verl.coevolution_actor import get_or_create_actor

        folder = resume_folder(self.config, steps_done)
        actor = get_or_create_actor(
            settings,
            default_root=root,
            resume_step=steps_done,
            resume_from=os.path.join(folder, COEVOLUTION_SUBDIR) if folder else None,
        )
        head = ray.get(actor.head.remote())  # fail here, not in the first rollout
        logger.info("reskill: co-evolution actor up, library HEAD %s", head)
        self.reskill_hook = CoEvolutionStepHook(actor, ray.get)

    def fit(self, agent_loop_manager: Any) -> Any:
        """veRL's ``fit``; the co-evolution actor is closed however it ends.

        veRL 0.9.1's ``fit`` returns from inside its loop after the last step, so its
        ``on_train_end`` hook never runs on a normal finish.
        """
        try:
            return super().fit(agent_loop_manager)
        finally:
            if self.reskill_hook is not None:
                self.reskill_hook.close()

    def on_step_begin(self) -> None:
        super().on_step_begin()
        self._reskill_step_t0 = time.perf_counter()

    def on_sample_end(self) -> None:
        """The step's rollouts are all in: stop before training on too many failed sessions."""
        super().on_sample_end()
        self._check_failed_sessions()

    def _validate(self) -> dict[str, float]:
        """veRL's validation, then the pass's failure check and its success per split, task
        type and topic: into veRL's metrics (``reskill/val/...``) and the run folder's
        ``validation.jsonl`` (``reskill report``'s validation section)."""
        metrics = super()._validate()
        hook = self.reskill_hook
        if hook is None:
            return metrics
        step = int(getattr(self, "global_steps", 0) or 0)
        stats = hook.take_eval()
        check_failed_sessions(
            stats, self.reskill_settings.max_failed_session_share, f"the validation at step {step}"
        )
        val = {k: float(v) for k, v in (stats.get("metrics") or {}).items()}
        if val and self.run_log is not None:
            self.run_log.append_validation(step, val)
        return {**metrics, **{f"reskill/{k}": v for k, v in val.items()}}

    def _check_failed_sessions(self) -> None:
        hook = self.reskill_hook
        if hook is None:
            return
        step = int(getattr(self, "global_steps", 0) or 0)
        check_failed_sessions(
            hook.failures(), self.reskill_settings.max_failed_session_share, f"step {step}"
        )

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
        """veRL's GRPO, then the invalid-action penalty / batch whitening when configured."""
        batch = super()._compute_advantage(batch, metrics)
        if not self._reskill_advantage_on():
            return batch
        import transfer_queue as tq
        from tensordict import TensorDict
        from verl.workers.utils.padding import response_to_nested

        from reskill_verl.advantage import invalid_token_mask, per_turn_grpo_advantages

        s = self.reskill_settings
        data = tq.kv_batch_get(
            keys=batch.keys,
            partition_id=batch.partition_id,
            select_fields=["rm_scores", "response_mask", "extra_fields"],
        )
        extra = data.pop("extra_fields").tolist()
        nested_mask = data["response_mask"]
        padded = data.to_padded_tensor()
        mask = padded["response_mask"]
        invalid = invalid_token_mask(extra, mask)
        adv = per_turn_grpo_advantages(
            batch.keys,
            padded["rm_scores"].sum(-1),
            mask,
            invalid,
            penalty=s.rollout.invalid_action_penalty,
            norm_by_std=bool(self.config.algorithm.get("norm_adv_by_std_in_grpo", True)),
            double_normalize=s.grpo_double_normalize,
        )
        nested = response_to_nested(adv, nested_mask)
        out = TensorDict(
            {"advantages": nested, "returns": response_to_nested(adv, nested_mask)},
            batch_size=len(batch),
        )
        batch = tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=out)
        real = [not (tag or {}).get("is_padding", False) for tag in batch.tags]
        rows = sum(real)
        invalid_rows = sum(
            bool((e or {}).get("invalid_spans")) for e, keep in zip(extra, real) if keep
        )
        m = {
            "reskill/rows": float(rows),
            "reskill/invalid_row_share": invalid_rows / rows if rows else 0.0,
            "reskill/invalid_token_share": float(invalid.sum() / mask.sum().clamp(min=1)),
        }
        metrics.update(m)
        self._reskill_adv_metrics = m
        return batch

    def _save_checkpoint(self) -> None:
        """Co-evolution's checkpoint beside veRL's, as of the same step.

        ``fit`` saves before ``on_step_end``, so the step is closed on the actor here first;
        the snapshot goes into ``global_step_<k>/reskill/`` before veRL writes its actor
        weights and ``latest_checkpointed_iteration.txt``: whichever checkpoint veRL resumes
        from, the library, tester and reservoir resume from that same step.
        """
        hook = self.reskill_hook
        if hook is not None:
            step = int(self.global_steps)
            hook.close_step(step)
            hook.save(
                os.path.join(
                    os.path.abspath(str(self.config.trainer.default_local_dir)),
                    f"global_step_{step}",
                    COEVOLUTION_SUBDIR,
                )
            )
        super()._save_checkpoint()

    def on_step_end(self) -> None:
        super().on_step_end()  # PPOTrainerSync: weight sync to the rollout replicas
        hook = self.reskill_hook
        if hook is None:
            return
        step = int(self.global_steps)
        with marked_timer("reskill_end_step", self.timing_raw):
            hook.close_step(step)
        taken = hook.take()
        if taken is None:
            logger.warning("reskill: on_step_end fired twice for step %d; ignored", step)
            return
        metrics, events = taken
        pending = getattr(self, "_pending_sync_metrics", None) or {}
        pending.update(metrics)
        self._pending_sync_metrics = pending
        if self.run_log is not None:
            t0 = getattr(self, "_reskill_step_t0", None)
            row = {**metrics, **getattr(self, "_reskill_adv_metrics", {})}
            self.run_log.append(
                step,
                row,
                events,
                step_seconds=time.perf_counter() - t0 if t0 is not None else None,
            )
            self._reskill_adv_metrics = {}

    def on_train_end(self) -> None:
        super().on_train_end()
        if self.reskill_hook is not None:
            self.reskill_hook.close()
