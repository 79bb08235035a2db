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
(an ``episode_dropped`` event); a step whose every rollout failed ends the run
(:class:`~reskill_gym.runloop.StepFailedError`, resumable); a rejected API key or bad agent
spec ends the run (:class:`EvolveAbortedError`).

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
from pathlib import Path
from typing import Any

import numpy as np
import typer
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_json
from reskill_gym.coevolve import CoEvolutionConfig, CoEvolutionEvent
from reskill_gym.episode import Episode
from reskill_gym.rollout import TurnConfig, episode_metrics
from reskill_gym.runfolder import (
    ConfigError,
    EnvConfig,
    RunConfig,
    config_for_file,
    format_validation,
    merge_config,
    set_console_log_level,
)
from reskill_gym.runloop import (
    DEFAULT_GROUP_SIZE,
    DEFAULT_GROUPS_PER_STEP,
    GROUP_SIZE_HELP,
    GROUPS_PER_STEP_HELP,
    PlannedRollout,
    RunDriver,
    StepFailedError,
    StepOutcome,
    StepPlanner,
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
    group_size: int = Field(DEFAULT_GROUP_SIZE, ge=2, description=GROUP_SIZE_HELP)
    groups_per_step: int = Field(DEFAULT_GROUPS_PER_STEP, ge=1, description=GROUPS_PER_STEP_HELP)
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
        self.rollout = self.rollout.for_agent(env.name, local=kind == "local")
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

    _env_references: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    def to_container(self) -> dict[str, Any]:
        """Plain data for ``config.yaml`` (round-trips through :func:`load_evolve_config`):
        ``${oc.env:...}`` references as given, other secrets ``[REDACTED]``."""
        return config_for_file(self.model_dump(mode="json"), self._env_references)


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
    refs: dict[tuple[str, ...], str] = {}
    merged, source = merge_config(path, overrides, _SCHEMAS, env_references=refs)
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
        config = EvolveConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, source)) from exc
    config._env_references = refs
    return config


# =========================================================================================
# The run
# =========================================================================================
class EvolveRun(RunDriver):
    """One ``reskill evolve`` run folder: builds library, co-evolution, envs and the agent;
    runs the steps; checkpoints after each; resumes from the newest checkpoint (the loop,
    checkpoints and resume are :class:`reskill_gym.runloop.RunDriver`'s).

    Use :meth:`create` for a new run and :meth:`resume` for an existing folder. ``agent``
    (anything with ``act``/``close``, e.g. a ``reskill_gym.evaluation.agents`` agent)
    replaces the one ``agent.spec`` names (tests, notebooks); the run then does not close it.

    >>> cfg = load_evolve_config(None, ["agent.spec=python:m:f", "agent.group_size=3"])
    >>> EvolveRun(cfg, Path("unused")).config.agent.rollouts_per_step
    6
    """

    command = "evolve"
    label = "evolving"
    load_config = staticmethod(load_evolve_config)
    state_name = STATE_FILE

    def __init__(self, config: EvolveConfig, run_dir: Path, *, agent: Any = None) -> None:
        super().__init__(config, run_dir)
        self.config: EvolveConfig = config
        self.last_episodes: list[Episode] = []  # the last step's, for episodes/
        self._given_agent = agent
        self.agent: Any = None
        self.player: Any = None
        self.tasks: list[str] = []
        self.step_count = 0
        self.rng = np.random.default_rng(config.run.seed)
        self.planner: StepPlanner | None = None
        self._built = False

    # ----- building -----------------------------------------------------------------------
    def build(self) -> None:
        """Library, co-evolution, env pool, task list and the agent (loads a local model)."""
        from reskill_gym.envs.registration import make_skill_env
        from reskill_gym.evaluation.agents import make_agent
        from reskill_gym.evaluation.player import EpisodePlayer
        from reskill_gym.llm import LLMConfigError
        from reskill_gym.rollout import EnvPool

        cfg = self.config
        self.open_coevolution()
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
        self.planner = StepPlanner(
            self.tasks,
            group_size=cfg.agent.group_size,
            groups_per_step=cfg.agent.groups_per_step,
            rng=self.rng,
        )
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
    def plan(self, step: int) -> tuple[Any, list[PlannedRollout]]:
        """The step's groups, the co-evolution plan and one rollout each (the planner's)."""
        assert self.coevo is not None and self.planner is not None
        return self.planner.plan(step, self.coevo)

    def _play(self, r: PlannedRollout, step: int) -> Episode:
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

    def _play_all(self, rollouts: list[PlannedRollout], step: int) -> list[Episode]:
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

    def run_step(self) -> StepOutcome:
        """:meth:`step` for the run driver's loop."""
        metrics, events, plan = self.step()
        return StepOutcome(metrics, events, plan, self.last_episodes)

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

    # ----- state --------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self._built

    @property
    def steps_done(self) -> int:
        return self.step_count

    @property
    def rollouts_per_step(self) -> int:
        return self.config.agent.rollouts_per_step

    def state_dict(self) -> dict[str, Any]:
        """Step, task queue and generator state (the co-evolution state is saved beside it)."""
        queue = self.planner.task_queue if self.planner is not None else []
        return {
            "step": self.step_count,
            "rng": self.rng.bit_generator.state,
            "task_queue": list(queue),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        assert self.planner is not None
        self.planner.load_state_dict(state)

    def save_state(self, folder: Path) -> None:
        atomic_write_json(folder / STATE_FILE, self.state_dict())

    def load_state(self, ckpt: Path) -> None:
        self.load_state_dict(json.loads(safe_files.read_text(ckpt / STATE_FILE)))

    def close_resources(self) -> None:
        """Close the agent (unless the caller gave it)."""
        if self.agent is not None and self._given_agent is None:
            self.agent.close()
            self.agent = None


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
    except (EvolveAbortedError, StepFailedError, ConfigError) as exc:
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"done: {summary.steps_done} steps, {summary.tests_started} version test(s) started and "
        f"{summary.tests_decided} decided in this session, library HEAD {summary.head}; "
        f"wall {summary.wall_s:.0f} s, CPU {summary.cpu_s:.0f} s"
    )
    if summary.report is not None:
        typer.echo(f"report: {summary.report}")
