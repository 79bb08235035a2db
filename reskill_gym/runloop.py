"""The run driver: one loop for every command that writes a run folder step by step.

Exports ``RunDriver``, ``StepPlanner``, ``PlannedRollout``, ``StepOutcome``,
``StepFailedError``, ``DEFAULT_GROUP_SIZE``, ``DEFAULT_GROUPS_PER_STEP``, ``GROUP_SIZE_HELP`` and
``GROUPS_PER_STEP_HELP``.

``reskill train`` (``reskill_local.train.TrainingRun``: GRPO on a local model) and
``reskill evolve`` (:class:`reskill_gym.evolve.EvolveRun`: a frozen agent) differ only in
what one step does and what state they keep. Everything else is here, once:

- :class:`RunDriver` creates or reopens the run folder (:mod:`reskill_gym.runfolder`),
  opens the library and the co-evolution, restores the newest checkpoint, runs the remaining
  steps (rows first, episodes, checkpoint second, then wandb and the progress line), closes
  everything and writes the report and the :class:`~reskill_gym.runfolder.RunSummary`.
  A step whose every rollout failed (the env or the agent raised or timed out on each) ends
  the run with a :class:`StepFailedError` after its rows, events and episodes are written
  (to read what failed) and before its checkpoint, so ``--resume`` drops those lines and
  replays the step once the cause is fixed; a step where only some rollouts failed goes on
  (each failure an ``episode_dropped`` event);
  A subclass supplies :meth:`RunDriver.build`, :meth:`RunDriver.run_step`,
  :meth:`RunDriver.save_state` / :meth:`RunDriver.load_state` and the step count;
- :class:`StepPlanner` draws a step's groups: ``groups_per_step`` tasks in shuffled epochs
  (every task comes up before any repeats), ``group_size`` rollouts per task on one env seed,
  the library version of each rollout from ``coevo.plan_step``. ``group_size`` and
  ``groups_per_step`` are defined here once (default and help text) for both configs.

>>> import numpy as np
>>> from reskill_gym.coevolve import NoCoEvolution
>>> planner = StepPlanner(["a", "b", "c"], group_size=2, groups_per_step=2,
...                       rng=np.random.default_rng(0))
>>> plan, rollouts = planner.plan(0, NoCoEvolution(None))
>>> [(r.rollout_id, r.task_id) for r in rollouts]
[('s0-g0-r0', 'b'), ('s0-g0-r1', 'b'), ('s0-g1-r0', 'a'), ('s0-g1-r1', 'a')]
>>> planner.next_tasks(2)  # 'c' ends the epoch before a new permutation starts
['c', 'b']
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from reskill_gym.coevolve import CoEvolution, CoEvolutionLike, NoCoEvolution
from reskill_gym.rollout.config import (  # re-exported: the run configs' group settings
    DEFAULT_GROUP_SIZE,
    DEFAULT_GROUPS_PER_STEP,
    GROUP_SIZE_HELP,
    GROUPS_PER_STEP_HELP,
)
from reskill_gym.runfolder import (
    RunSummary,
    StepProgress,
    append_jsonl,
    cpu_seconds,
    create_run_folder,
    event_rows,
    init_wandb,
    latest_checkpoint,
    log_wandb,
    record_episodes,
    release_start,
    reopen_run_folder,
    restore_coevolution,
    run_coevolution_config,
    step_row,
    truncate_logs,
    write_checkpoint,
)

__all__ = [
    "RunDriver",
    "StepPlanner",
    "PlannedRollout",
    "StepOutcome",
    "StepFailedError",
    "DEFAULT_GROUP_SIZE",
    "DEFAULT_GROUPS_PER_STEP",
    "GROUP_SIZE_HELP",
    "GROUPS_PER_STEP_HELP",
]

logger = logging.getLogger(__name__)


# =========================================================================================
# The step planner
# =========================================================================================
@dataclass(frozen=True)
class PlannedRollout:
    """One rollout of a step: its group, task, library version, env seed and arm.

    ``index`` is (group, rollout within the group): the key of the rollout's own random
    stream where a runner needs one (score-mode draws of ``reskill evolve``).
    """

    rollout_id: str
    group_id: str
    task_id: str
    version: str | None
    seed: int
    arm: str | None = None
    index: tuple[int, int] = (0, 0)


class StepPlanner:
    """Groups of ``group_size`` rollouts on ``groups_per_step`` tasks per step.

    Every draw comes from ``rng`` (the runner's generator, which it checkpoints); the task
    queue is the planner's own state (:meth:`state_dict`).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        group_size: int,
        groups_per_step: int,
        rng: np.random.Generator,
    ) -> None:
        self.tasks = list(tasks)
        self.group_size = group_size
        self.groups_per_step = groups_per_step
        self.rng = rng
        self.task_queue: list[str] = []
        self.last_plan: Any = None

    @property
    def rollouts_per_step(self) -> int:
        return self.group_size * self.groups_per_step

    def next_tasks(self, k: int) -> list[str]:
        """Tasks in shuffled epochs, so every task comes up before any repeats."""
        if not self.tasks:
            raise ValueError("no tasks to plan from")
        out: list[str] = []
        while len(out) < k:
            if not self.task_queue:
                self.task_queue = [self.tasks[i] for i in self.rng.permutation(len(self.tasks))]
            out.append(self.task_queue.pop())
        return out

    def plan(self, step: int, coevo: CoEvolutionLike) -> tuple[Any, list[PlannedRollout]]:
        """The co-evolution plan of ``step`` and one :class:`PlannedRollout` per rollout.

        One env seed per group: every rollout of a group plays the same task instance, so
        they differ only in the library version they saw.
        """
        n = self.group_size
        groups = [
            (f"s{step}-g{i}", task, n)
            for i, task in enumerate(self.next_tasks(self.groups_per_step))
        ]
        plan = coevo.plan_step(groups)
        rollouts = []
        for g, (group_id, task_id, _) in enumerate(groups):
            versions, arms = plan.versions[g], plan.arms[g]
            if len(versions) != n or len(arms) != n:
                raise ValueError(
                    f"plan_step gave {len(versions)} assignments for group {group_id}, expected {n}"
                )
            seed = int(self.rng.integers(2**31 - 1))
            for j, (version, arm) in enumerate(zip(versions, arms)):
                rollouts.append(
                    PlannedRollout(
                        f"{group_id}-r{j}", group_id, task_id, version or None, seed, arm, (g, j)
                    )
                )
        self.last_plan = plan
        return plan, rollouts

    def state_dict(self) -> dict[str, Any]:
        """The task queue (the generator is the runner's, saved with its state)."""
        return {"task_queue": list(self.task_queue)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task_queue = list(state["task_queue"])


# =========================================================================================
# The run driver
# =========================================================================================
@dataclass
class StepOutcome:
    """What one step produced: its metric row's values, events, the co-evolution plan and
    every episode played (dropped ones included, for ``episodes/``)."""

    metrics: dict[str, Any]
    events: list[Any]
    plan: Any
    episodes: list[Any] = field(default_factory=list)


class StepFailedError(RuntimeError):
    """Every rollout of a step failed: nothing to learn from, most likely a broken env."""


D = TypeVar("D", bound="RunDriver")


class RunDriver(ABC):
    """Create / resume / checkpoint / the step loop / progress / summary of one run folder.

    A subclass names its command (``command``, the run folder's ``config.yaml`` loader
    ``load_config``, the progress ``label``) and supplies :meth:`build` (which calls
    :meth:`open_coevolution`), :meth:`run_step`, :meth:`save_state`, :meth:`load_state`,
    :attr:`steps_done` and :attr:`rollouts_per_step`; :meth:`close_resources` closes
    what it opened beyond the library, the co-evolution and the env pool.
    """

    command: ClassVar[str]
    label: ClassVar[str] = "training"
    #: ``(path, overrides) -> config``: how :meth:`resume` re-reads ``config.yaml``.
    load_config: ClassVar[Callable[..., Any]]
    #: the file or object :meth:`load_state` reads, named in a step-count mismatch
    state_name: ClassVar[str] = "the runner's state"

    def __init__(self, config: Any, run_dir: Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.library: Any = None
        self.coevo: CoEvolutionLike | None = None
        self.pool: Any = None
        self._wandb: Any = None
        self._cpu_at_start = cpu_seconds()
        self._t_start = time.perf_counter()
        self._wall_before = 0.0
        self._cpu_before = 0.0

    # ----- creation -----------------------------------------------------------------------
    @classmethod
    def create(cls: type[D], config: Any, **kwargs: Any) -> D:
        """Make the run folder, write ``config.yaml`` and copy the initial library into it."""
        config, run_dir = create_run_folder(config, command=cls.command)
        return cls(config, run_dir, **kwargs)

    @classmethod
    def resume(
        cls: type[D],
        run_dir: str | os.PathLike[str],
        overrides: Sequence[str] = (),
        **kwargs: Any,
    ) -> D:
        """Reopen a run folder; ``overrides`` (e.g. ``run.steps=20``) apply to its config."""
        config, path = reopen_run_folder(run_dir, overrides, cls.load_config)
        return cls(config, path, **kwargs)

    # ----- what a runner supplies ---------------------------------------------------------
    @property
    @abstractmethod
    def built(self) -> bool:
        """Whether :meth:`build` has run."""

    @abstractmethod
    def build(self) -> None:
        """Open the library and co-evolution (:meth:`open_coevolution`), envs and policy."""

    @property
    @abstractmethod
    def steps_done(self) -> int:
        """Steps the runner's state covers."""

    @property
    @abstractmethod
    def rollouts_per_step(self) -> int:
        """For the progress line."""

    @abstractmethod
    def run_step(self) -> StepOutcome:
        """Play and learn from one step (the runner advances its own step count)."""

    @abstractmethod
    def save_state(self, folder: Path) -> None:
        """Write the runner's state into a checkpoint folder being filled."""

    @abstractmethod
    def load_state(self, ckpt: Path) -> None:
        """Read the runner's state back from a complete checkpoint."""

    def close_resources(self) -> None:  # noqa: B027 - optional hook
        """Close what the runner opened beyond the library, co-evolution and env pool."""

    def after_checkpoint(self, final: Path) -> None:  # noqa: B027 - optional hook
        """Called with each complete checkpoint folder (e.g. to thin older ones)."""

    def on_run_end(self) -> None:  # noqa: B027 - optional hook
        """Called once the last step's checkpoint is written, before everything closes."""

    # ----- shared pieces ------------------------------------------------------------------
    def open_coevolution(self) -> CoEvolutionLike:
        """The run's library and the co-evolution ``run.skills_mode`` asks for."""
        from reskill_gym.skills import SkillLibrary

        cfg = self.config
        self.library = SkillLibrary.open(self.run_dir / "skills")
        co_cfg = run_coevolution_config(cfg.coevolution, self.run_dir)
        if cfg.run.skills_mode == "coevolve":
            self.coevo = CoEvolution.create(self.library, co_cfg)
        elif cfg.run.skills_mode == "frozen":
            self.coevo = NoCoEvolution(self.library)
        else:
            self.coevo = NoCoEvolution(None)
        return self.coevo

    def wall(self) -> float:
        """Wall seconds over every session of the run."""
        return self._wall_before + (time.perf_counter() - self._t_start)

    def cpu(self) -> float:
        """CPU seconds over every session of the run."""
        return self._cpu_before + (cpu_seconds() - self._cpu_at_start)

    # ----- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, steps_done: int) -> Path:
        """Write checkpoint ``steps_done`` (runner state + co-evolution) atomically."""

        def fill(folder: Path) -> None:
            self.save_state(folder)
            if self.coevo is not None:
                self.coevo.save(folder)  # NoCoEvolution has nothing to save

        meta = {
            "head": self.library.head,
            "versions": self.library.versions(),
            "wall_s": self.wall(),
            "cpu_s": self.cpu(),
            "time": time.time(),
        }
        final = write_checkpoint(
            self.run_dir, steps_done, fill, meta, keep=self.config.run.keep_checkpoints
        )
        self.after_checkpoint(final)
        return final

    def restore(self) -> int:
        """Build (if needed) and load the newest checkpoint; returns the steps it covers
        (0 if none). Log lines of steps after it are dropped: those steps are replayed."""
        if not self.built:
            self.build()
        ckpt = latest_checkpoint(self.run_dir)
        self._wall_before = self._cpu_before = 0.0
        if ckpt is None:
            truncate_logs(self.run_dir, 0)
            return 0
        meta = restore_coevolution(ckpt, self.coevo, self.library)
        self.load_state(ckpt)
        steps = int(meta["steps_done"])
        if self.steps_done != steps:
            raise RuntimeError(
                f"{ckpt}: {self.state_name} is at step {self.steps_done}, run.json says {steps}"
            )
        truncate_logs(self.run_dir, steps)
        self._wall_before = float(meta.get("wall_s", 0.0))
        self._cpu_before = float(meta.get("cpu_s", 0.0))
        logger.info("resumed %s from %s (%d steps done)", self.run_dir, ckpt.name, steps)
        return steps

    # ----- the loop -----------------------------------------------------------------------
    def run(self, *, progress: bool | None = None) -> RunSummary:
        """Build (if needed), restore the newest checkpoint, run the remaining steps."""
        try:
            done = self.restore()
        except BaseException:  # e.g. an env or a policy that does not build
            self.close()
            raise
        self._wandb = init_wandb(self.config.run, self.run_dir, self.config.to_container())
        total = self.config.run.steps
        show = self.config.run.progress if progress is None else progress
        started = decided = 0
        try:
            with StepProgress(show, total, done, label=self.label) as bar:
                for step in range(done, total):
                    bar.start_step(step, self.rollouts_per_step)
                    outcome = self.run_step()
                    row = step_row(
                        outcome.metrics,
                        step,
                        coevo=self.coevo,
                        events=outcome.events,
                        library=self.library,
                        plan=outcome.plan,
                        wall_s=self.wall(),
                        cpu_s=self.cpu(),
                    )
                    events = event_rows(outcome.events, step)
                    started += sum(e.get("kind") == "test_started" for e in events)
                    decided += sum(e.get("kind") == "test_decided" for e in events)
                    # rows first, checkpoint second: lines past the checkpoint are dropped on
                    # resume, so a kill between the two never loses or doubles a step
                    append_jsonl(self.run_dir / "metrics.jsonl", [row])
                    append_jsonl(self.run_dir / "events.jsonl", events)
                    if self.config.run.record_episodes:
                        record_episodes(self.run_dir, step, outcome.episodes, self.coevo)
                    self._check_step(step, outcome)  # logged to read, never checkpointed
                    self.save_checkpoint(step + 1)
                    log_wandb(self._wandb, row, step)
                    bar.end_step(step, row, events)
            self.on_run_end()
        finally:
            self.close()
        report = None
        if self.config.run.report:
            from reskill_gym.report import write_run_report

            report = write_run_report(self.run_dir)
        return RunSummary(
            run_dir=self.run_dir,
            steps_done=self.steps_done,
            wall_s=self.wall(),
            cpu_s=self.cpu(),
            head=self.library.head if self.library is not None else None,
            tests_started=started,
            tests_decided=decided,
            report=report,
        )

    def _check_step(self, step: int, outcome: StepOutcome) -> None:
        """Raise :class:`StepFailedError` when every episode of the step has an error."""
        failed = [e for e in outcome.episodes if getattr(e, "error", None)]
        if not outcome.episodes or len(failed) < len(outcome.episodes):
            return
        from reskill_gym.safe_text import clip_text, terminal_text

        first = failed[0]
        why = clip_text(terminal_text(str(first.error), one_line=True), 200)
        raise StepFailedError(
            f"step {step}: all {len(failed)} rollouts failed (e.g. task "
            f"{getattr(first, 'task_id', '?')}: {why}); the run "
            f"folder keeps the last checkpoint: fix the env, then reskill {self.command} "
            f"--resume {self.run_dir}"
        )

    def close(self) -> None:
        """Stop the creator thread, close pooled engines and the runner's own resources,
        finish wandb."""
        if self.coevo is not None:
            self.coevo.close()
        if self.pool is not None:
            self.pool.close()
        self.close_resources()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        # a run that ends before its first checkpoint leaves .starting unlocked: a new
        # run of the same name may replace the folder (runfolder.create_run_folder)
        release_start(self.run_dir, started=False)
