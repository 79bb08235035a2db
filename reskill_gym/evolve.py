"""``reskill evolve``: frozen-policy co-evolution with any agent (no weight updates).

Exports ``EvolveConfig``, ``AgentConfig``, ``EvolveRun``, ``EvolveAbortedError``,
``load_evolve_config`` and ``evolve_command``.

The published system's ``trainer.skip_policy_update`` runs ReSkill's loop with the policy
frozen: rollouts, the experience reservoir, the skill creator and the within-group version
tests go on, and only the policy-gradient part (old/reference log-probs, advantages, the
actor update) is skipped. That makes skill evolution a test-time method: the paper evolves a
library for a policy that is no longer trained (its ALFWorld -> ScienceWorld figure). This
module does it with any ``reskill eval`` agent - ``local:`` (a transformers model, score or
generate mode), ``openai:`` (any OpenAI-compatible server), ``anthropic:`` / ``bedrock:`` or
``python:<module>:<function>`` - and no trainer. ``trainer.update_policy: false`` does the
same inside ``reskill train`` (and the veRL adapter) when the policy is a model being trained.

Per step (the local trainer's step without 4-5)::

    groups = groups_per_step tasks (shuffled epochs), group_size rollouts each
    plan   = coevolution.plan_step(groups)          # incumbent / candidate per rollout
    each rollout: an env leased with coevolution.view(version), one RolloutSession (the turn
                  contract), played by the agent (reskill_gym.evaluation.player.EpisodePlayer)
    coevolution.record(episodes); coevolution.end_step(step)   # tester, creator

The run folder, config sections ``run`` / ``env`` / ``rollout`` / ``coevolution``, the
metrics namespace, checkpoints and resume are the local trainer's
(:mod:`reskill_gym.runfolder`), so ``reskill report`` renders an evolve run like a training
run. The ``agent`` section (:class:`AgentConfig`) replaces ``trainer``. A checkpoint holds
``coevolution.json``, ``evolve.json`` (step, task queue, generator state) and ``run.json``;
a resumed run replays the steps after it. Episodes whose env or agent failed are dropped
(an ``episode_dropped`` event); a rejected API key or bad agent spec ends the run
(:class:`EvolveAbortedError`).

Cross-domain transfer (the paper's figure): evolve on one env, then evaluate the frozen
library on another - ``reskill eval --env scienceworld --skills <run>/skills``; see
``configs/evolve/README.md``.

>>> cfg = load_evolve_config(None, ["agent.spec=python:my_policy:act", "run.steps=2"])
>>> cfg.rollout.action_mode, cfg.coevolution.seed == cfg.run.seed
('generate', True)
>>> load_evolve_config(None, ["agent.spec=python:m:f", "agent.temprature=0.5"])
Traceback (most recent call last):
...
reskill_gym.runfolder.ConfigError: override: unknown key 'agent.temprature' (did you mean 'agent.temperature'?)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reskill_gym.atomic import atomic_write_json
from reskill_gym.coevolve import (
    CoEvolution,
    CoEvolutionConfig,
    CoEvolutionEvent,
    CoEvolutionLike,
    NoCoEvolution,
)
from reskill_gym.episode import Episode
from reskill_gym.rollout import TurnConfig, episode_metrics
from reskill_gym.runfolder import (
    ConfigError,
    EnvConfig,
    RunConfig,
    RunSummary,
    StepProgress,
    append_jsonl,
    cpu_seconds,
    create_run_folder,
    event_rows,
    format_validation,
    init_wandb,
    latest_checkpoint,
    log_wandb,
    merge_config,
    record_episodes,
    reopen_run_folder,
    restore_coevolution,
    run_coevolution_config,
    set_console_log_level,
    step_row,
    truncate_logs,
    write_checkpoint,
)
from reskill_gym.safe_text import error_line

__all__ = [
    "EvolveConfig",
    "AgentConfig",
    "EvolveRun",
    "EvolveAbortedError",
    "load_evolve_config",
    "evolve_command",
]

logger = logging.getLogger(__name__)

STATE_FILE = "evolve.json"


class EvolveAbortedError(RuntimeError):
    """The run cannot go on: the agent cannot be built or its credentials were rejected."""


# =========================================================================================
# Config
# =========================================================================================
class AgentConfig(BaseModel):
    """The frozen policy and how it is sampled (the ``trainer`` section of a training run)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    spec: str = Field(
        description="The agent, as `reskill eval --agent`: anthropic:<model>, bedrock:<model>, "
        "openai:<base_url>#<model>, local:<path|default>, run:<run folder> (a trained policy), "
        "python:<module>:<function>."
    )
    temperature: float = Field(
        1.0,
        ge=0,
        description="Sampling temperature (score mode: of the softmax over command scores). "
        "1.0 as in training rollouts: the creator and the within-group version tests need "
        "groups whose rollouts differ; 0 is greedy.",
    )
    max_tokens: int = Field(256, ge=1, description="Max output tokens per generated reply.")
    group_size: int = Field(
        4, ge=2, description="Rollouts per task (the group the version test splits; published 8)."
    )
    groups_per_step: int = Field(
        2, ge=1, description="Tasks per step; rollouts per step = group_size x groups_per_step."
    )
    workers: int = Field(
        1,
        ge=1,
        description="Rollouts in flight (threads, each with its own env); 8-32 for API agents.",
    )
    turn_retries: int = Field(
        3, ge=0, description="Re-asks of a turn that failed transiently before the episode drops."
    )
    retry_backoff_s: float = Field(2.0, ge=0, description="First turn-retry delay (doubles).")
    llm: dict[str, Any] = Field(
        default_factory=dict,
        description="LLMConfig overrides of the agent's backend (max_retries, timeout_s, "
        "device, ...).",
    )

    @model_validator(mode="after")
    def _spec(self) -> AgentConfig:
        from reskill_gym.evaluation.agents import normalize_agent_spec, parse_agent_spec
        from reskill_gym.llm import LLMConfigError
        from reskill_gym.llm.config import check_llm_options

        check_llm_options(self.llm, "agent.llm")

        try:
            self.spec = normalize_agent_spec(self.spec)  # run:<run> -> local:<run>
            parse_agent_spec(self.spec)
        except LLMConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def rollouts_per_step(self) -> int:
        return self.group_size * self.groups_per_step


class EvolveConfig(BaseModel):
    """The whole ``reskill evolve`` config (what ``config.yaml`` holds).

    ``rollout.action_mode`` defaults like ``reskill eval``: ``score`` for ``local:`` agents
    on envs with admissible actions, else ``generate``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run: RunConfig = Field(default_factory=RunConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    agent: AgentConfig
    rollout: TurnConfig = Field(
        default_factory=TurnConfig,
        description="The turn contract (the block reskill train / eval / veRL read).",
    )
    coevolution: CoEvolutionConfig = Field(default_factory=CoEvolutionConfig)

    @model_validator(mode="after")
    def _mode(self) -> EvolveConfig:
        from reskill_gym.envs.registration import get_spec
        from reskill_gym.evaluation.agents import parse_agent_spec

        kind = parse_agent_spec(self.agent.spec).kind
        env = get_spec(self.env.name)
        r = self.rollout
        if "action_mode" not in r.model_fields_set:
            mode = env.local_action_mode if kind == "local" else "generate"
            self.rollout = TurnConfig.model_validate(
                r.model_dump(exclude_unset=True) | {"action_mode": mode}
            )
        if self.rollout.action_mode == "score":
            if kind != "local":
                raise ValueError(
                    f"rollout.action_mode: score needs a local: agent, got {kind}: (use generate)"
                )
            if not env.admissible_actions:
                raise ValueError(
                    f"rollout.action_mode: score needs admissible actions; {env.name} has none"
                )
        return self

    def to_container(self) -> dict[str, Any]:
        """Plain data for ``config.yaml`` (round-trips through :func:`load_evolve_config`)."""
        return json.loads(json.dumps(self.model_dump(mode="json")))


_SCHEMAS: dict[str, Any] = {
    "run": RunConfig,
    "env": EnvConfig,
    "agent": AgentConfig,
    "rollout": TurnConfig,
    "coevolution": CoEvolutionConfig,
}


def load_evolve_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()
) -> EvolveConfig:
    """Merge a YAML file (or nothing) with ``key=value`` overrides and validate the result.

    ``coevolution.seed`` and ``coevolution.creator.seed`` follow ``run.seed`` unless set.
    """
    merged, source = merge_config(path, overrides, _SCHEMAS)
    run_seed = merged["run"].get("seed", RunConfig.model_fields["seed"].default)
    merged["coevolution"].setdefault("seed", run_seed)
    creator = merged["coevolution"].setdefault("creator", {}) or {}
    merged["coevolution"]["creator"] = creator
    creator.setdefault("seed", run_seed)
    if "spec" not in merged["agent"]:
        raise ConfigError(
            f"{source}: agent.spec is required (e.g. agent.spec=openai:http://localhost:8000/v1"
            "#my-model, local:default, python:my_module:act)"
        )
    try:
        return EvolveConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, source)) from exc


# =========================================================================================
# The run
# =========================================================================================
@dataclass(frozen=True)
class _Rollout:
    """One rollout of a step: its group, task, version, env seed and arm."""

    rollout_id: str
    group_id: str
    task_id: str
    version: str | None
    seed: int
    arm: str
    index: tuple[int, int]


class EvolveRun:
    """One ``reskill evolve`` run folder: builds library, co-evolution, envs and the agent;
    runs the steps; checkpoints after each; resumes from the newest checkpoint.

    Use :meth:`create` for a new run and :meth:`resume` for an existing folder. ``agent``
    (anything with ``act``/``close``, e.g. a ``reskill_gym.evaluation.agents`` agent)
    replaces the one ``agent.spec`` names (tests, notebooks); the run then does not close it.

    >>> cfg = load_evolve_config(None, ["agent.spec=python:m:f", "agent.group_size=3"])
    >>> EvolveRun(cfg, Path("unused")).config.agent.rollouts_per_step
    6
    """

    def __init__(self, config: EvolveConfig, run_dir: Path, *, agent: Any = None) -> None:
        self.last_episodes: list[Episode] = []  # the last step's, for episodes/
        self.config = config
        self.run_dir = Path(run_dir)
        self._given_agent = agent
        self.agent: Any = None
        self.player: Any = None
        self.library: Any = None
        self.coevo: CoEvolutionLike | None = None
        self.pool: Any = None
        self.tasks: list[str] = []
        self.step_count = 0
        self.rng = np.random.default_rng(config.run.seed)
        self._task_queue: list[str] = []
        self._wandb: Any = None
        self._built = False
        self._cpu_at_start = cpu_seconds()
        self._t_start = time.perf_counter()
        self._wall_before = 0.0
        self._cpu_before = 0.0

    # ----- creation -----------------------------------------------------------------------
    @classmethod
    def create(cls, config: EvolveConfig, *, agent: Any = None) -> EvolveRun:
        """Make the run folder, write ``config.yaml`` and copy the initial library into it."""
        config, run_dir = create_run_folder(config, command="evolve")
        return cls(config, run_dir, agent=agent)

    @classmethod
    def resume(
        cls, run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), *, agent: Any = None
    ) -> EvolveRun:
        """Reopen a run folder; ``overrides`` (e.g. ``run.steps=20``) apply to its config."""
        config, run_dir = reopen_run_folder(run_dir, overrides, load_evolve_config)
        return cls(config, run_dir, agent=agent)

    # ----- building -----------------------------------------------------------------------
    def build(self) -> None:
        """Library, co-evolution, env pool, task list and the agent (loads a local model)."""
        from reskill_gym.envs.registration import make_skill_env
        from reskill_gym.evaluation.agents import make_agent
        from reskill_gym.evaluation.player import EpisodePlayer
        from reskill_gym.llm import LLMConfigError
        from reskill_gym.rollout import EnvPool
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
        env_kwargs = {"split": cfg.env.split, **cfg.env.kwargs, **cfg.env.wrapper_kwargs()}

        def build_env(key: Any) -> Any:
            return make_skill_env(cfg.env.name, skills=None, **env_kwargs)

        # reuse_engines=false: every env is closed when its rollout gives it back
        self.pool = EnvPool(build_env, max_idle=None if cfg.env.reuse_engines else 0)
        probe = self.pool.lease()
        try:
            self.tasks = cfg.env.select_tasks(probe.unwrapped.task_ids(cfg.env.split))
        finally:
            probe.close()
        mode = cfg.rollout.action_mode
        if self._given_agent is not None:
            self.agent = self._given_agent
        else:
            try:
                self.agent = make_agent(
                    cfg.agent.spec,
                    mode=mode,
                    temperature=cfg.agent.temperature,
                    max_tokens=cfg.agent.max_tokens,
                    score_norm=cfg.rollout.score_norm,
                    llm_overrides=cfg.agent.llm,
                )
            except LLMConfigError as exc:
                raise EvolveAbortedError(f"agent.spec {cfg.agent.spec}: {exc}") from exc
        agent_mode = getattr(self.agent, "mode", mode)
        if agent_mode != mode:
            raise EvolveAbortedError(
                f"agent {self.agent.name} answers in {agent_mode} mode but rollout.action_mode "
                f"is {mode}"
            )
        self.player = EpisodePlayer(
            self.agent,
            mode,
            turn_retries=cfg.agent.turn_retries,
            retry_backoff_s=cfg.agent.retry_backoff_s,
        )
        self._built = True

    # ----- one step -----------------------------------------------------------------------
    def _next_tasks(self, k: int) -> list[str]:
        """Tasks in shuffled epochs, so every task comes up before any repeats."""
        out: list[str] = []
        while len(out) < k:
            if not self._task_queue:
                self._task_queue = [self.tasks[i] for i in self.rng.permutation(len(self.tasks))]
            out.append(self._task_queue.pop())
        return out

    def plan(self, step: int) -> tuple[Any, list[_Rollout]]:
        """The step's groups, the co-evolution plan and one :class:`_Rollout` per rollout."""
        assert self.coevo is not None
        n = self.config.agent.group_size
        groups = [
            (f"s{step}-g{i}", task, n)
            for i, task in enumerate(self._next_tasks(self.config.agent.groups_per_step))
        ]
        plan = self.coevo.plan_step(groups)
        rollouts = []
        for g, (group_id, task_id, _) in enumerate(groups):
            versions, arms = plan.versions[g], plan.arms[g]
            if len(versions) != n or len(arms) != n:
                raise ValueError(
                    f"plan_step gave {len(versions)} assignments for group {group_id}, expected {n}"
                )
            seed = int(self.rng.integers(2**31 - 1))  # one env seed per group: same instance
            for j, (version, arm) in enumerate(zip(versions, arms)):
                rollouts.append(
                    _Rollout(
                        f"{group_id}-r{j}", group_id, task_id, version or None, seed, arm, (g, j)
                    )
                )
        return plan, rollouts

    def _play(self, r: _Rollout, step: int) -> Episode:
        """Lease an env with the rollout's library version, reset it, let the agent play."""
        from reskill_gym.rollout import RolloutSession

        assert self.coevo is not None and self.player is not None
        # the choice rule's u (score mode) comes from a generator of (seed, step, group, rollout)
        rng = np.random.default_rng([self.config.run.seed, step, *r.index])
        lease = None
        try:
            lease = self.pool.lease(skills=self.coevo.view(r.version))
            session = RolloutSession(
                lease,
                self.config.rollout,
                episode_id=r.rollout_id,
                group_id=r.group_id,
                arm=r.arm,
                step=step,
            )
            session.reset(task_id=r.task_id, seed=r.seed)
        except Exception as exc:
            if lease is not None:
                lease.close()
            return Episode(
                episode_id=r.rollout_id,
                env_id="",
                task_id=r.task_id,
                group_id=r.group_id,
                arm=r.arm,
                step=step,
                seed=r.seed,
                library_version=r.version,
                stop_reason="error",
                error=f"reset: {type(exc).__name__}: {exc}",
            )
        try:
            return self.player.episode(session, rng)
        finally:
            lease.close()

    def _play_all(self, rollouts: list[_Rollout], step: int) -> list[Episode]:
        from reskill_gym.llm import LLMAuthError, LLMConfigError

        workers = min(self.config.agent.workers, len(rollouts))
        try:
            if workers <= 1:
                return [self._play(r, step) for r in rollouts]
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evolve") as ex:
                try:
                    return list(ex.map(lambda r: self._play(r, step), rollouts))
                except BaseException:
                    self.player.stop.set()  # the other rollouts stop at their next turn
                    raise
        except (LLMAuthError, LLMConfigError) as exc:
            raise EvolveAbortedError(f"agent {self.config.agent.spec}: {exc}") from exc

    def step(self) -> tuple[dict[str, Any], list[Any], Any]:
        """Run one step: plan, play, record, end_step; returns (metrics, events, plan)."""
        if not self._built:
            self.build()
        assert self.coevo is not None
        step = self.step_count
        t_step = time.perf_counter()
        plan, rollouts = self.plan(step)
        episodes = self._play_all(rollouts, step)
        self.last_episodes = episodes
        rollout_s = time.perf_counter() - t_step
        kept = [e for e in episodes if e.error is None]
        dropped = [e for e in episodes if e.error is not None]
        if dropped and not kept:
            logger.warning("step %d: every rollout was dropped (first: %s)", step, dropped[0].error)
        t_coevo = time.perf_counter()
        self.coevo.record(kept)
        events: list[Any] = [
            CoEvolutionEvent(
                kind="episode_dropped",
                step=step,
                message=f"{e.episode_id} ({e.task_id}) dropped: {e.error}",
                data={"rollout_id": e.episode_id, "task_id": e.task_id, "error": e.error},
            )
            for e in dropped
        ]
        events += self.coevo.end_step(step)
        coevo_s = time.perf_counter() - t_coevo
        self.step_count += 1
        metrics = self._metrics(episodes, rollout_s, coevo_s, t_step)
        logger.info(
            "step %d reward %.3f success %.2f (%d dropped) %.1fs",
            step,
            metrics["episode/reward_mean"],
            metrics["episode/success_rate"],
            len(dropped),
            metrics["time/step_s"],
        )
        return metrics, events, plan

    @staticmethod
    def _metrics(
        episodes: list[Episode], rollout_s: float, coevo_s: float, t_step: float
    ) -> dict[str, float]:
        by_group: dict[str, list[float]] = {}
        for e in episodes:
            if e.error is None:
                by_group.setdefault(str(e.group_id), []).append(e.reward)
        group_std = [float(np.std(v)) for v in by_group.values()]
        turns = [t for e in episodes for t in e.turns]
        return {
            **episode_metrics(episodes),
            "charts/group_reward_std": float(np.mean(group_std)) if group_std else math.nan,
            "charts/groups_with_signal": float(sum(s > 0 for s in group_std)),
            "agent/input_tokens": float(sum(t.input_tokens for t in turns)),
            "agent/output_tokens": float(sum(t.output_tokens for t in turns)),
            "agent/cost_usd": float(sum(t.cost_usd for t in turns)),
            "agent/turn_retries": float(sum(t.retries for t in turns)),
            "time/rollout_s": rollout_s,
            "time/coevo_s": coevo_s,
            "time/step_s": time.perf_counter() - t_step,
        }

    # ----- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Step, task queue and generator state (the co-evolution state is saved beside it)."""
        return {
            "step": self.step_count,
            "rng": self.rng.bit_generator.state,
            "task_queue": list(self._task_queue),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self._task_queue = list(state["task_queue"])

    def _wall(self) -> float:
        return self._wall_before + (time.perf_counter() - self._t_start)

    def _cpu(self) -> float:
        return self._cpu_before + (cpu_seconds() - self._cpu_at_start)

    def _save_checkpoint(self, steps_done: int) -> Path:
        def fill(folder: Path) -> None:
            atomic_write_json(folder / STATE_FILE, self.state_dict())
            if self.coevo is not None:
                self.coevo.save(folder)  # NoCoEvolution has nothing to save

        meta = {
            "head": self.library.head,
            "versions": self.library.versions(),
            "wall_s": self._wall(),
            "cpu_s": self._cpu(),
            "time": time.time(),
        }
        return write_checkpoint(
            self.run_dir, steps_done, fill, meta, keep=self.config.run.keep_checkpoints
        )

    def restore(self) -> int:
        """Build (if needed) and load the newest checkpoint; returns the steps it covers."""
        if not self._built:
            self.build()
        ckpt = latest_checkpoint(self.run_dir)
        self._wall_before = self._cpu_before = 0.0
        if ckpt is None:
            truncate_logs(self.run_dir, 0)
            return 0
        meta = restore_coevolution(ckpt, self.coevo, self.library)
        self.load_state_dict(json.loads((ckpt / STATE_FILE).read_text()))
        steps = int(meta["steps_done"])
        if self.step_count != steps:
            raise RuntimeError(
                f"{ckpt}: {STATE_FILE} is at step {self.step_count}, run.json {steps}"
            )
        truncate_logs(self.run_dir, steps)
        self._wall_before = float(meta.get("wall_s", 0.0))
        self._cpu_before = float(meta.get("cpu_s", 0.0))
        logger.info("resumed %s from %s (%d steps done)", self.run_dir, ckpt.name, steps)
        return steps

    # ----- the loop -----------------------------------------------------------------------
    def run(self, *, progress: bool | None = None) -> RunSummary:
        """Build (if needed), restore the newest checkpoint, run the remaining steps."""
        done = self.restore()
        self._wandb = init_wandb(self.config.run, self.run_dir, self.config.to_container())
        total = self.config.run.steps
        show = self.config.run.progress if progress is None else progress
        started = decided = 0
        try:
            with StepProgress(show, total, done, label="evolving") as bar:
                for step in range(done, total):
                    bar.start_step(step, self.config.agent.rollouts_per_step)
                    metrics, step_events, plan = self.step()
                    row = step_row(
                        metrics,
                        step,
                        coevo=self.coevo,
                        events=step_events,
                        library=self.library,
                        plan=plan,
                        wall_s=self._wall(),
                        cpu_s=self._cpu(),
                    )
                    events = event_rows(step_events, step)
                    started += sum(e.get("kind") == "test_started" for e in events)
                    decided += sum(e.get("kind") == "test_decided" for e in events)
                    # rows first, checkpoint second (see reskill_gym.runfolder)
                    append_jsonl(self.run_dir / "metrics.jsonl", [row])
                    append_jsonl(self.run_dir / "events.jsonl", events)
                    if self.config.run.record_episodes:
                        record_episodes(self.run_dir, step, self.last_episodes, self.coevo)
                    self._save_checkpoint(step + 1)
                    log_wandb(self._wandb, row, step)
                    bar.end_step(step, row, events)
        finally:
            self.close()
        report = None
        if self.config.run.report:
            from reskill_gym.report import write_run_report

            report = write_run_report(self.run_dir)
        return RunSummary(
            run_dir=self.run_dir,
            steps_done=self.step_count,
            wall_s=self._wall(),
            cpu_s=self._cpu(),
            head=self.library.head if self.library is not None else None,
            tests_started=started,
            tests_decided=decided,
            report=report,
        )

    def close(self) -> None:
        """Stop the creator thread, close pooled engines and the agent, finish wandb."""
        if self.coevo is not None:
            self.coevo.close()
        if self.pool is not None:
            self.pool.close()
        if self.agent is not None and self._given_agent is None:
            self.agent.close()
            self.agent = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


# =========================================================================================
# The command
# =========================================================================================
def evolve_command(
    overrides: list[str] = typer.Argument(
        None, help="Config overrides as key=value (e.g. run.steps=4 agent.workers=16)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Evolve config YAML (configs/evolve/*.yaml)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this folder from its newest checkpoint."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No rich progress display."),
) -> None:
    """Evolve a skill library with a frozen agent (any eval agent; no weight updates)."""
    if (config is None) == (resume is None):
        raise typer.BadParameter("give exactly one of --config FILE or --resume RUN_DIR")
    try:
        if resume is not None:
            run = EvolveRun.resume(resume, overrides or [])
        else:
            run = EvolveRun.create(load_evolve_config(config, overrides or []))
    except ConfigError as exc:
        typer.echo(f"config error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from exc
    set_console_log_level(run.config.run.log_level)
    typer.echo(f"run folder: {run.run_dir}")
    try:
        summary = run.run(progress=False if no_progress else None)
    except (EvolveAbortedError, ConfigError) as exc:
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"done: {summary.steps_done} steps, {summary.tests_started} version test(s) started and "
        f"{summary.tests_decided} decided in this session, library HEAD {summary.head}; "
        f"wall {summary.wall_s:.0f} s, CPU {summary.cpu_s:.0f} s"
    )
    if summary.report is not None:
        typer.echo(f"report: {summary.report}")
