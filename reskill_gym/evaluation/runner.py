"""Paired evaluation runs of frozen skill libraries: conditions, jobs, workers, resume.

Exports ``Condition``, ``EpisodeJob``, ``EvalRun``, ``resolve_conditions``,
``select_tasks``, ``open_frozen`` and ``run_eval``.

Design: every (split, task, seed) unit is run under every *condition* - ``no-skills`` (the
baseline, unless disabled) and one per ``--skills PATH[@VERSION]`` - so conditions differ
only in the library (paired design). Libraries are opened frozen: a ``LibraryView`` of one
version, so a library that keeps evolving elsewhere cannot change a running evaluation.

Every episode is played through the turn contract by an
:class:`~reskill_gym.evaluation.player.EpisodePlayer` (a ``RolloutSession`` under
``config.rollout``, the same ``TurnConfig`` block training uses). In score mode the choice
rule's uniform ``u`` comes from the episode's generator
``np.random.default_rng([seed, crc32(task_id)])``: every condition of a unit draws the same
stream (common random numbers), and a record can be replayed turn by turn.

Finished episodes go to the run's :class:`~reskill_gym.evaluation.episode_log.EpisodeLog`
(``<out>/episodes.jsonl``); on restart the episodes already there are skipped
(``retry_errors`` re-runs the error episodes only) and ``<out>/config.json`` must match. An
episode whose agent or env failed is recorded with ``error`` set - counted, never fatal.
Only configuration problems (bad spec, rejected API key) abort the run, because every
episode would fail the same way.

>>> select_tasks([f"t{i}" for i in range(10)], 4)
['t0', 't3', 't6', 't9']
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reskill_gym.atomic import atomic_write_json
from reskill_gym.episode import Episode
from reskill_gym.evaluation.agents import Agent, make_agent
from reskill_gym.evaluation.config import NO_SKILLS, EvalAbortedError, EvalConfig
from reskill_gym.evaluation.episode_log import (
    CONFIG_FILE,
    EPISODES_FILE,
    EpisodeLog,
    EvalEpisode,
    check_resume,
    config_meta,
)
from reskill_gym.evaluation.player import (
    EnvFailure,
    EpisodeFailure,
    EpisodeInterrupted,
    EpisodePlayer,
    error_type,
)
from reskill_gym.llm import LLMAuthError, LLMConfigError
from reskill_gym.rollout import EnvLease, EnvPool, RolloutSession
from reskill_gym.skills import LibraryError, LibraryView, SkillError
from reskill_gym.skills.source import open_view, resolve_ref

__all__ = [
    "Condition",
    "EpisodeJob",
    "EvalRun",
    "resolve_conditions",
    "select_tasks",
    "open_frozen",
    "run_eval",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    """One arm of the paired design: a frozen library view, or none."""

    name: str
    view: LibraryView | None
    source: str | None = None
    version: str | None = None


def open_frozen(ref: str, env: str) -> tuple[LibraryView, str]:
    """The frozen view of ``--skills PATH[@VERSION]`` (or ``seed``: ``env``'s seed library)
    and the library's resolved path; any problem is an ``EvalAbortedError`` naming ``ref``."""
    from reskill_gym.envs.registration import seed_library_path

    try:
        seed = functools.partial(seed_library_path, env)
        path, _ = resolve_ref(ref, seed=seed)
        view = open_view(ref, seed=seed)
    except (OSError, LibraryError, SkillError) as e:
        raise EvalAbortedError(f"--skills {ref}: {e}") from e
    if path is None or view is None or len(view) == 0:
        raise EvalAbortedError(f"--skills {ref}: {path or ref} holds no skills")
    return view, str(path.resolve())


def resolve_conditions(config: EvalConfig) -> list[Condition]:
    """The conditions of a run, baseline first; names are ``<folder>@<version>``."""
    out: list[Condition] = [Condition(NO_SKILLS, None)] if config.baseline else []
    for ref in config.skills:
        view, source = open_frozen(ref, config.env)
        name = f"{Path(source).name}@{view.version[:12]}"
        if any(c.name == name for c in out):
            log.warning("eval: --skills %s repeats condition %s; running it once", ref, name)
            continue
        out.append(Condition(name, view, source, view.version))
    return out


def select_tasks(task_ids: Sequence[str], n: int | None) -> list[str]:
    """``n`` task ids evenly spread over the split's stable order (all when ``n`` is None).

    Task sets are usually ordered by type, so spreading covers the types a prefix would miss.
    """
    ids = list(task_ids)
    if n is None or n >= len(ids):
        return ids
    picks = np.linspace(0, len(ids) - 1, n).round().astype(int)
    return [ids[i] for i in dict.fromkeys(picks.tolist())]


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run: a unit (split, task, seed) under one condition."""

    condition: str
    split: str
    task_id: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.condition}|{self.split}|{self.task_id}|{self.seed}"

    @property
    def unit(self) -> tuple[str, str, int]:
        return (self.split, self.task_id, self.seed)


@dataclass
class EvalRun:
    """What ``run_eval`` did: where, which conditions, how many episodes ran now / before."""

    out_dir: Path
    config: EvalConfig
    conditions: list[Condition]
    jobs: list[EpisodeJob]
    ran: int = 0
    skipped: int = 0
    errors: int = 0
    wall_s: float = 0.0
    records: list[EvalEpisode] = field(default_factory=list)

    @property
    def episodes_path(self) -> Path:
        return self.out_dir / EPISODES_FILE


def _env_pool(config: EvalConfig) -> EnvPool:
    """One pool of wrapped envs for the run: a lease per episode pins the condition's view."""
    from reskill_gym.envs.registration import make_env
    from reskill_gym.skills.bundle import resolve_template
    from reskill_gym.wrapper import SkillWrapper

    template = resolve_template(config.template, where="template")

    def build(key: Any) -> Any:
        return SkillWrapper(
            make_env(config.env, split=config.splits[0], **config.env_options()),
            template=template,
        )

    return EnvPool(build)


class _Runner(EpisodePlayer):
    def __init__(
        self,
        config: EvalConfig,
        agent: Agent,
        conditions: list[Condition],
        pool: EnvPool,
        episode_log: EpisodeLog,
        pin_config: Callable[[], None],
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(
            agent,
            config.mode,
            turn_retries=config.turn_retries,
            retry_backoff_s=config.retry_backoff_s,
            sleep=sleep,
        )
        self.config = config
        self.conditions = {c.name: c for c in conditions}
        self.pool = pool
        self.log = episode_log
        self._pin_config = pin_config
        self._pinned = False
        self._record_lock = threading.Lock()

    def record(self, rec: EvalEpisode) -> None:
        """Append a finished episode; the first one pins the run's config."""
        with self._record_lock:
            if not self._pinned:
                self._pin_config()
                self._pinned = True
            self.log.append(rec)

    # ----- one episode ------------------------------------------------------------------
    def _start(self, job: EpisodeJob, cond: Condition) -> tuple[RolloutSession, EnvLease]:
        """A leased env reset to the job's task inside a session (one more try on a crash)."""
        from reskill_gym.envs.base import EngineCrashedError

        for attempt in (0, 1):
            try:
                lease = self.pool.lease(skills=cond.view)
            except Exception as e:  # building a fresh env failed
                raise EpisodeFailure(
                    EnvFailure(f"env build failed: {type(e).__name__}: {e}")
                ) from e
            session = RolloutSession(
                lease,
                self.config.rollout,
                episode_id=job.key,
                group_id=f"{job.split}|{job.task_id}|{job.seed}",
            )
            try:
                session.reset(task_id=job.task_id, seed=job.seed, options={"split": job.split})
                return session, lease
            except EngineCrashedError as e:
                lease.close()  # broken: the pool drops it and builds a fresh env
                if attempt == 0:
                    log.warning("eval: engine crashed at reset of %s; one more try", job.key)
                    continue
                raise EpisodeFailure(EnvFailure(f"reset failed: {type(e).__name__}: {e}")) from e
            except Exception as e:
                lease.close()
                raise EpisodeFailure(EnvFailure(f"reset failed: {type(e).__name__}: {e}")) from e
        raise AssertionError("unreachable")

    def run_job(self, job: EpisodeJob) -> EvalEpisode:
        cfg = self.config
        cond = self.conditions[job.condition]
        t0 = time.monotonic()
        rng = np.random.default_rng([job.seed, zlib.crc32(job.task_id.encode())])
        session: RolloutSession | None = None
        lease: EnvLease | None = None
        failure: EpisodeFailure | None = None
        try:
            session, lease = self._start(job, cond)
            self.play(session, rng)
            episode = session.episode()
        except EpisodeFailure as f:
            failure = f
            if session is not None:
                episode = session.fail(f.message())
            else:
                episode = Episode(
                    episode_id=job.key,
                    env_id="",
                    task_id=job.task_id,
                    error=f.message(),
                    stop_reason="error",
                )
            log.warning("eval: episode %s recorded as error (%s)", job.key, episode.error)
        finally:
            if lease is not None:
                lease.close()
        if not episode.env_id:
            from reskill_gym.envs.registration import get_spec

            episode.env_id = get_spec(cfg.env).gym_id
        return EvalEpisode.model_validate(
            episode.model_dump()
            | {
                "task_id": job.task_id,
                "split": job.split,
                "seed": job.seed,
                "library_version": episode.library_version or cond.version,
                "key": job.key,
                "condition": job.condition,
                "library_source": cond.source,
                "agent": cfg.agent,
                "mode": cfg.mode,
                "error_type": error_type(failure.cause) if failure else None,
                "error_retries": failure.retries if failure else 0,
                "wall_s": round(time.monotonic() - t0, 3),
                "finished_at": time.time(),
            }
        )


def run_eval(
    config: EvalConfig,
    out_dir: str | os.PathLike[str],
    *,
    agent: Agent | None = None,
    stop_after: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[EvalEpisode, int, int], None] | None = None,
) -> EvalRun:
    """Run (or resume) an evaluation; returns the run with every record of the log.

    ``agent`` overrides the one ``config.agent`` names (tests, notebooks). ``stop_after``
    stops cleanly after that many new episodes (a planned interruption). ``progress`` is
    called after every recorded episode with (record, done, total).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EvalAbortedError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalAbortedError(f"--out {out}: cannot create it ({e})") from e
    episode_log = EpisodeLog(out / EPISODES_FILE)
    if episode_log.raw_records():  # only a run that recorded episodes pins its config
        check_resume(out, config)
    conditions = resolve_conditions(config)
    t0 = time.monotonic()

    pool = _env_pool(config)
    try:
        try:
            probe = pool.lease()
            base: Any = probe.unwrapped
            if not callable(getattr(base, "task_ids", None)):
                raise TypeError(
                    f"{type(base).__name__} has no task_ids(split) (subclass "
                    "reskill_gym.envs.base.TextEnv or adapt it with an env: {gym_id: ...} block)"
                )
            tasks = {s: select_tasks(base.task_ids(s), config.tasks) for s in config.splits}
        except Exception as e:
            raise EvalAbortedError(f"env {config.env}: {type(e).__name__}: {e}") from e
        probe.close()  # back to the pool: the first episode reuses it
        for split, ids in tasks.items():
            if not ids:
                raise EvalAbortedError(f"env {config.env}: split {split!r} has no tasks")
        jobs = [
            EpisodeJob(c.name, split, task_id, seed)
            for split in config.splits
            for task_id in tasks[split]
            for seed in config.seeds
            for c in conditions
        ]
        meta = config_meta(config) | {
            "conditions": [
                {"name": c.name, "source": c.source, "version": c.version} for c in conditions
            ],
            "task_ids": tasks,
        }

        def pin_config() -> None:
            atomic_write_json(out / CONFIG_FILE, meta, indent=2, sort_keys=True, default=str)

        done = {
            r.key
            for r in episode_log.records()
            if not (config.retry_errors and r.error is not None)
        }
        pending = [j for j in jobs if j.key not in done]
        run = EvalRun(out, config, conditions, jobs, skipped=len(jobs) - len(pending))
        if run.skipped:
            log.info("eval: resuming: %d of %d episodes already in %s", run.skipped, len(jobs), out)
        if stop_after is not None:
            pending = pending[:stop_after]
        if pending:
            own_agent = agent is None
            try:
                agent = agent or make_agent(
                    config.agent,
                    mode=config.mode,
                    temperature=config.temperature,
                    max_tokens=config.max_tokens,
                    score_norm=config.rollout.score_norm,
                    llm_overrides=config.llm,
                )
            except LLMConfigError as e:
                raise EvalAbortedError(f"--agent {config.agent}: {e}") from e
            agent_mode = getattr(agent, "mode", config.mode)
            try:
                if agent_mode != config.mode:
                    raise EvalAbortedError(
                        f"agent {agent.name} answers in {agent_mode} mode but the run is in "
                        f"{config.mode} mode (rollout.action_mode)"
                    )
                runner = _Runner(config, agent, conditions, pool, episode_log, pin_config, sleep)
                _execute(runner, pending, run, progress, len(jobs))
            finally:
                if own_agent:
                    agent.close()
    finally:
        pool.close()
    run.records = episode_log.records()
    run.wall_s = time.monotonic() - t0
    return run


def _execute(
    runner: _Runner,
    pending: list[EpisodeJob],
    run: EvalRun,
    progress: Callable[[EvalEpisode, int, int], None] | None,
    total: int,
) -> None:
    lock = threading.Lock()

    def one(job: EpisodeJob) -> None:
        if runner.stop.is_set():
            return
        try:
            rec = runner.run_job(job)
        except EpisodeInterrupted:
            return  # an interrupted episode is not a result: it runs again on resume
        except (LLMAuthError, LLMConfigError) as e:
            runner.stop.set()
            raise EvalAbortedError(f"agent {runner.config.agent}: {e}") from e
        runner.record(rec)
        with lock:
            run.ran += 1
            run.errors += rec.error is not None
            n = run.ran + run.skipped
        if progress is not None:
            progress(rec, n, total)

    workers = max(1, min(runner.config.workers, len(pending)))
    if workers == 1:
        try:
            for job in pending:
                one(job)
        except KeyboardInterrupt:
            runner.stop.set()
            raise
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval") as ex:
        futures = [ex.submit(one, j) for j in pending]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt:
            runner.stop.set()
            for f in futures:
                f.cancel()
            raise
        for f in done:
            if f.exception() is not None:
                runner.stop.set()
                for g in futures:
                    g.cancel()
                raise f.exception()  # type: ignore[misc]
