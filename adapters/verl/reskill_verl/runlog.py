"""The run folder of a veRL run, in the layout ``reskill report`` reads.

Exports ``RunLog`` and ``run_config``.

The local trainer writes ``config.yaml``, ``metrics.jsonl`` and ``events.jsonl`` into its run
folder; the veRL adapter writes the same three files into ``<trainer.default_local_dir>/reskill``
(the co-evolution actor adds ``episodes/``, see ``reskill_gym.step_episodes``)
(next to the co-evolution checkpoint and the working library ``library/``), so
``reskill report <default_local_dir>/reskill`` draws the same report and plots for both.
``metrics.jsonl`` has one row per training step in the shared metric namespace
(``episode/*``, ``arms/*``, ``versions/*``, ``creator/*``, ``skills/*``; see
``reskill_gym.rollout.episode_metrics`` and ``reskill_gym.coevolve.coevolution_metrics``)
plus ``step`` (veRL's ``global_steps``, from 1), ``time`` and ``time/step_s``.
``validation.jsonl`` has one row per validation pass (``step`` 0: before training) with its
success per split, task type and topic (``reskill_gym.rollout.validation_metrics``).

On resume, rows and events of steps after the checkpoint veRL resumed from are dropped (they
are replayed), as the local trainer does.

>>> import tempfile
>>> log = RunLog(tempfile.mkdtemp())
>>> log.append(1, {"episode/reward_mean": 0.5}, [{"kind": "test_started", "message": "m"}])["step"]
1
>>> log.resume(0); log.rows()
[]
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text
from reskill_gym.runfolder import append_jsonl

__all__ = ["RunLog", "run_config"]

logger = logging.getLogger(__name__)

#: Events the report does not need (the checkpoint is written every step).
_SKIPPED_EVENTS = frozenset({"checkpoint"})


def _get(config: Any, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        if node is None:
            return None
        getter = getattr(node, "get", None)
        node = getter(part) if getter is not None else getattr(node, part, None)
    return node


def _plain(value: Any) -> Any:
    if hasattr(value, "_metadata"):  # an OmegaConf node
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def run_config(trainer_config: Any, settings: Any, *, total_steps: int | None = None) -> dict:
    """What ``config.yaml`` holds: ``run``/``env`` (the keys the report reads), the whole
    ``reskill`` section and a few veRL facts."""
    co = settings.coevolution
    if co.enabled:
        mode = "coevolve"
    else:
        mode = "none" if settings.skills is None else "frozen"
    steps = total_steps or _get(trainer_config, "trainer.total_training_steps")
    facts = {
        "model": _get(trainer_config, "actor_rollout_ref.model.path"),
        "trainer_mode": _get(trainer_config, "trainer.v1.trainer_mode"),
        "use_v1": _get(trainer_config, "trainer.use_v1"),
        "adv_estimator": _get(trainer_config, "algorithm.adv_estimator"),
        "norm_adv_by_std_in_grpo": _get(trainer_config, "algorithm.norm_adv_by_std_in_grpo"),
        "rollout_n": _get(trainer_config, "actor_rollout_ref.rollout.n"),
        "train_batch_size": _get(trainer_config, "data.train_batch_size"),
        "prompt_length": _get(trainer_config, "actor_rollout_ref.rollout.prompt_length"),
        "response_length": _get(trainer_config, "actor_rollout_ref.rollout.response_length"),
        "ppo_mini_batch_size": _get(trainer_config, "actor_rollout_ref.actor.ppo_mini_batch_size"),
        "lr": _get(trainer_config, "actor_rollout_ref.actor.optim.lr"),
        "kl_loss_coef": _get(trainer_config, "actor_rollout_ref.actor.kl_loss_coef"),
        "n_gpus_per_node": _get(trainer_config, "trainer.n_gpus_per_node"),
        "nnodes": _get(trainer_config, "trainer.nnodes"),
        "project_name": _get(trainer_config, "trainer.project_name"),
        "experiment_name": _get(trainer_config, "trainer.experiment_name"),
        "default_local_dir": _get(trainer_config, "trainer.default_local_dir"),
    }
    try:
        from importlib.metadata import version

        facts["verl_version"] = version("verl")
    except Exception:  # not installed as a distribution (a source checkout)
        facts["verl_version"] = None
    return {
        "run": {
            "trainer": "verl",
            "name": facts["experiment_name"],
            "steps": int(steps) if steps is not None else None,
            "skills_mode": mode,
        },
        "env": {"name": settings.env, "kwargs": dict(settings.env_kwargs)},
        "reskill": settings.model_dump(mode="json"),
        "verl": {k: _plain(v) for k, v in facts.items()},
    }


class RunLog:
    """``config.yaml``, ``metrics.jsonl`` and ``events.jsonl`` under ``root`` (see module doc)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.root / "metrics.jsonl"
        self.events_path = self.root / "events.jsonl"
        self.validation_path = self.root / "validation.jsonl"
        self.config_path = self.root / "config.yaml"

    def write_config(self, data: Mapping[str, Any]) -> Path:
        """Write ``config.yaml`` (atomic; replaced on every start, like the local trainer)."""
        import yaml

        text = yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)
        return atomic_write_text(self.config_path, text)

    def resume(self, steps_done: int) -> None:
        """Drop rows, events and episodes of steps after ``steps_done`` (they will be
        replayed)."""
        from reskill_gym.runfolder import truncate_jsonl
        from reskill_gym.step_episodes import truncate_step_episodes

        for path in (self.metrics_path, self.events_path, self.validation_path):
            truncate_jsonl(path, steps_done + 1)  # veRL's steps count from 1: keep <= done
        truncate_step_episodes(self.root, steps_done + 1)

    def append(
        self,
        step: int,
        metrics: Mapping[str, Any],
        events: Sequence[Mapping[str, Any]] = (),
        *,
        step_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Append the step's row (and its events); returns the row."""
        row: dict[str, Any] = {"step": int(step)}
        for key, value in metrics.items():
            row[key] = float(value) if isinstance(value, (int, float)) else value
        row["step"] = int(step)
        if step_seconds is not None:
            row["time/step_s"] = float(step_seconds)
        row["time"] = time.time()
        append_jsonl(self.metrics_path, [row])
        kept = []
        for e in events:
            if e.get("kind") in _SKIPPED_EVENTS:
                continue
            e = dict(e)
            e.setdefault("step", int(step))
            kept.append(e)
        append_jsonl(self.events_path, kept)
        return row

    def append_validation(self, step: int, metrics: Mapping[str, float]) -> dict[str, Any]:
        """Append a validation pass's row (``step``: the training steps done before it)."""
        row: dict[str, Any] = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        row["step"] = int(step)
        row["time"] = time.time()
        append_jsonl(self.validation_path, [row])
        return row

    def rows(self) -> list[dict[str, Any]]:
        """The rows written so far."""
        if not os.path.lexists(self.metrics_path):
            return []
        return [
            json.loads(line)
            for line in safe_files.read_text(self.metrics_path).splitlines()
            if line.strip()
        ]
