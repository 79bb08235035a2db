"""A ``reskill train`` run: config, run folder, the GRPO + co-evolution loop, checkpoints, resume.

Exports ``TrainConfig``, ``RunConfig``, ``EnvConfig``, ``ConfigError``, ``load_config``,
``TrainingRun``, ``RunSummary``, ``latest_checkpoint`` and ``CHECKPOINTS`` (the run-folder
pieces are ``reskill_gym.runfolder``'s, shared with ``reskill evolve``, re-exported here).

A run config has five sections (OmegaConf YAML; ``key=value`` overrides on the command
line): ``run`` (:class:`RunConfig`), ``env`` (:class:`EnvConfig`), ``trainer``
(``reskill_local.grpo.GRPOConfig``), ``rollout`` (``reskill_gym.rollout.TurnConfig``: the
turn contract — layout, action mode and format, score rule — the same block ``reskill eval``
and the veRL adapter read) and ``coevolution``
(``reskill_gym.coevolve.CoEvolutionConfig`` with its ``tester`` and ``creator``). The merged
config is checked key by key against those schemas *before* anything heavy is built, so a
typo fails at once with the key's path and a "did you mean".

The run folder (``runs/<env>__<exp>__<seed>__<unix time>`` unless ``run.name`` is set)::

    config.yaml          the full resolved config, written at start
    skills/              the skill library (copied from the seed library), with history
    checkpoints/step_000004/{policy/, trainer.pt, optimizer.pt, coevolution.json, run.json}
    checkpoints/LATEST   name of the newest complete checkpoint
    policy/              the trained policy, Hugging Face format, written when the run ends
    metrics.jsonl        one line per step (trainer metrics, per-arm reward, test state)
    events.jsonl         co-evolution events (creator, tests, dropped episodes)
    report.md, plots/    written at the end (``reskill report`` regenerates them)

A checkpoint's ``policy/`` is a Hugging Face-format folder (``reskill_gym.policy_folder``:
``save_pretrained`` safetensors + tokenizer + chat template, or a PEFT adapter folder for
LoRA runs); ``trainer.pt`` holds the step, task queue and RNGs; ``optimizer.pt`` is kept in
the newest checkpoint only (resume needs it, older checkpoints are weights only). A frozen
policy (``trainer.update_policy=false``) writes no weights. ``<run>/policy/`` is the newest
checkpoint's policy, hard-linked when the run ends.

Checkpoints are written after every step into a temporary folder that is renamed into
place, then ``LATEST`` is replaced (atomic rename): a ``kill -9`` at any moment leaves the
previous complete checkpoint. On resume the library HEAD, tester, reservoir, creator
assertions, trainer weights (from ``policy/``), optimizer and every RNG come from that
checkpoint, and lines of ``metrics.jsonl`` / ``events.jsonl`` from steps after it are dropped
(they are replayed).
Versions committed after the checkpoint stay in the store as unreferenced objects; being
content-addressed, a replayed proposal gets the same id (never a duplicate).

>>> cfg = load_config(None, ["env.name=alfworld", "run.steps=2"])
>>> cfg.run.steps, cfg.trainer.seed == cfg.run.seed
(2, True)
>>> load_config(None, ["trainer.lerning_rate=1e-5"])
Traceback (most recent call last):
...
reskill_gym.runfolder.ConfigError: override: unknown key 'trainer.lerning_rate' (did you mean 'trainer.learning_rate'?)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from reskill_gym.coevolve import CoEvolutionConfig
from reskill_gym.policy_folder import POLICY_DIR, publish_policy
from reskill_gym.rollout import TurnConfig
from reskill_gym.runfolder import (
    CHECKPOINTS,
    ConfigError,
    EnvConfig,
    RunConfig,
    RunSummary,
    config_for_file,
    default_run_name,
    format_validation,
    latest_checkpoint,
    merge_config,
)
from reskill_gym.runloop import RunDriver, StepOutcome
from reskill_gym.safe_files import list_folder
from reskill_local.grpo import OPTIMIZER_STATE, GRPOConfig

__all__ = [
    "TrainConfig",
    "RunConfig",
    "EnvConfig",
    "ConfigError",
    "load_config",
    "TrainingRun",
    "RunSummary",
    "latest_checkpoint",
    "CHECKPOINTS",
]

logger = logging.getLogger(__name__)

_SECTIONS = ("run", "env", "trainer", "rollout", "coevolution")


# =========================================================================================
# Config schema (``run`` and ``env`` are reskill_gym.runfolder's, shared with reskill evolve)
# =========================================================================================
class TrainConfig(BaseModel):
    """The whole run config (what ``config.yaml`` holds)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run: RunConfig = Field(default_factory=RunConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    trainer: GRPOConfig = Field(default_factory=GRPOConfig)
    rollout: TurnConfig = Field(
        default_factory=TurnConfig,
        description="The turn contract; unless set, a local model scores the admissible "
        "commands where the env lists them (TurnConfig.for_agent).",
    )
    coevolution: CoEvolutionConfig = Field(default_factory=CoEvolutionConfig)

    @model_validator(mode="after")
    def _mode(self) -> TrainConfig:
        self.rollout = self.rollout.for_agent(self.env.name, local=True)
        return self

    _env_references: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    def to_container(self) -> dict[str, Any]:
        """Plain data for ``config.yaml`` (round-trips through :func:`load_config`):
        ``${oc.env:...}`` references as given, other secrets ``[REDACTED]``."""
        return config_for_file(self.model_dump(mode="json"), self._env_references)


_SCHEMAS: dict[str, Any] = {
    "run": RunConfig,
    "env": EnvConfig,
    "trainer": GRPOConfig,
    "rollout": TurnConfig,
    "coevolution": CoEvolutionConfig,
}


def load_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Merge a YAML file (or nothing) with ``key=value`` overrides and validate the result.

    Seeds: ``trainer.seed``, ``coevolution.seed`` and ``coevolution.creator.seed`` follow
    ``run.seed`` unless set explicitly; ``trainer.exp_name`` follows ``run.exp_name``;
    ``rollout.action_mode`` defaults to ``score`` on envs that list admissible commands
    (``TurnConfig.for_agent``).
    """
    refs: dict[tuple[str, ...], str] = {}
    merged, source = merge_config(path, overrides, _SCHEMAS, env_references=refs)
    run_seed = merged["run"].get("seed", RunConfig.model_fields["seed"].default)
    merged["trainer"].setdefault("seed", run_seed)
    merged["trainer"].setdefault(
        "exp_name", merged["run"].get("exp_name", RunConfig.model_fields["exp_name"].default)
    )
    merged["coevolution"].setdefault("seed", run_seed)
    creator = merged["coevolution"].setdefault("creator", {}) or {}
    merged["coevolution"]["creator"] = creator
    creator.setdefault("seed", run_seed)
    try:
        config = TrainConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, source)) from exc
    config._env_references = refs
    return config


# =========================================================================================
# The run
# =========================================================================================
class TrainingRun(RunDriver):
    """One run folder: builds library, co-evolution, envs and trainer; trains; checkpoints
    (the loop, checkpoints and resume are :class:`reskill_gym.runloop.RunDriver`'s).

    Use :meth:`create` for a new run and :meth:`resume` for an existing folder. ``policy``
    (a loaded ``reskill_local.policy.Policy``) skips model loading (tests share one model).
    """

    command = "train"
    label = "training"
    load_config = staticmethod(load_config)
    state_name = "trainer state"

    def __init__(self, config: TrainConfig, run_dir: Path, *, policy: Any = None) -> None:
        super().__init__(config, run_dir)
        self.config: TrainConfig = config
        self._policy = policy
        self.trainer: Any = None

    @staticmethod
    def default_name(config: TrainConfig) -> str:
        """CleanRL-style ``<env>__<exp>__<seed>__<unix time>``."""
        return default_run_name(config.run, config.env.name)

    # ----- building -----------------------------------------------------------------------
    def _tasks(self, probe: Any) -> list[str]:
        return self.config.env.select_tasks(probe.unwrapped.task_ids(self.config.env.split))

    def build(self) -> None:
        """Library, co-evolution, env factory, policy and trainer (loads the model)."""
        import gymnasium as gym

        from reskill_gym.envs.registration import make_skill_env
        from reskill_gym.rollout import EnvPool
        from reskill_gym.wrapper import SkillWrapper
        from reskill_local.grpo import GRPOTrainer

        cfg = self.config
        coevo = self.open_coevolution()
        wrapper_kw = cfg.env.wrapper_kwargs()
        env_kwargs = {"split": cfg.env.split, **cfg.env.kwargs}

        def build_env() -> SkillWrapper:
            return make_skill_env(cfg.env.name, skills=None, **env_kwargs, **wrapper_kw)

        if cfg.env.reuse_engines:
            pool = self.pool = EnvPool(lambda key: build_env())

            def make_env(task_id: str, version: str | None) -> gym.Env:
                return pool.lease(skills=coevo.view(version))

        else:

            def make_env(task_id: str, version: str | None) -> gym.Env:
                env = build_env()
                env.set_skills(coevo.view(version))
                return env

        probe = build_env()
        try:
            tasks = self._tasks(probe)
        finally:
            probe.close()
        self.trainer = GRPOTrainer(
            cfg.trainer, make_env, tasks, turn=cfg.rollout, coevo=coevo, policy=self._policy
        )

    # ----- state --------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.trainer is not None

    @property
    def steps_done(self) -> int:
        return int(self.trainer.step_count)

    @property
    def rollouts_per_step(self) -> int:
        return int(self.trainer.config.rollouts_per_step)

    def save_state(self, folder: Path) -> None:
        self.trainer.save_checkpoint(folder, optimizer=True)

    def load_state(self, ckpt: Path) -> None:
        self.trainer.load_checkpoint(ckpt)

    def after_checkpoint(self, final: Path) -> None:
        """Resume needs the optimizer state of the newest checkpoint only: older kept ones
        hold the weights (their policy/) and the small trainer state."""
        for older in list_folder(final.parent, links="skip", special="skip", match="step_*"):
            if older.path != final and older.kind == "folder":
                (older.path / OPTIMIZER_STATE).unlink(missing_ok=True)

    def on_run_end(self) -> None:
        """Publish ``<run>/policy/`` (see :meth:`_publish_policy`)."""
        self._publish_policy()

    def _publish_policy(self) -> Path | None:
        """``<run>/policy/``: the newest checkpoint's policy folder (hard links, no copy)."""
        if not self.config.trainer.update_policy:
            return None  # the weights never changed: the policy is trainer.model
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None or not (ckpt / POLICY_DIR).is_dir():
            return None
        return publish_policy(ckpt / POLICY_DIR, self.run_dir / POLICY_DIR)

    # ----- the loop -----------------------------------------------------------------------
    def run_step(self) -> StepOutcome:
        """One GRPO step (plan, rollouts, co-evolution, update); dropped episodes are kept
        for ``episodes/``."""
        result = self.trainer.step()
        plan = getattr(self.trainer, "last_plan", None)
        return StepOutcome(result.metrics, result.events, plan, [*result.episodes, *result.dropped])

    def train(self, *, progress: bool | None = None) -> RunSummary:
        """Build (if needed), restore the newest checkpoint, run the remaining steps."""
        return self.run(progress=progress)
