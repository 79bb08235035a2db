"""Paired evaluation runs of frozen skill libraries: conditions, episodes, JSONL, resume.

Exports ``EvalConfig``, ``Condition``, ``EpisodeJob``, ``TurnRecord``, ``EpisodeRecord``,
``EpisodeLog``, ``EvalRun``, ``EvalAbortedError``, ``resolve_conditions``, ``select_tasks``,
``parse_library_ref``, ``run_eval`` and ``NO_SKILLS``.

Design: every (split, task, seed) unit is run under every *condition* - ``no-skills`` (the
baseline, unless disabled) and one per ``--skills PATH[@VERSION]`` - so conditions differ
only in the library (paired design). Libraries are opened frozen: a ``LibraryView`` of one
version, so a library that keeps evolving elsewhere cannot change a running evaluation.

Each finished episode is one JSON line in ``<out>/episodes.jsonl``, appended with a single
``write`` + ``fsync`` under a lock; a torn last line (a crash mid-write) is cut off when the
log is reopened. On restart, episodes already in the log are skipped, so an interrupted run
resumes where it stopped and no episode runs twice (``retry_errors`` re-runs the error
episodes only). ``<out>/config.json`` pins what makes results comparable (env, agent, mode,
turns, ...); resuming with a different value of one of those fails and names the field.

Agent failures (timeouts, 429, 5xx, refusals, empty or unparsable output) are retried with
exponential backoff per turn (on top of the backend's own transport retries); when retries
are spent the episode is recorded with ``error`` set - it is counted, never fatal. Only
configuration problems (bad spec, rejected API key) abort the run, because every episode
would fail the same way.

>>> parse_library_ref("skills/alfworld@HEAD~1")
('skills/alfworld', 'HEAD~1')
>>> select_tasks([f"t{i}" for i in range(10)], 4)
['t0', 't3', 't6', 't9']
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reskill_gym.atomic import atomic_write_json
from reskill_gym.evaluation.agents import (
    ActionMode,
    Agent,
    AgentRefusalError,
    TurnDecision,
    make_agent,
    parse_agent_spec,
)
from reskill_gym.llm import (
    LLMAuthError,
    LLMConfigError,
    LLMError,
    LLMOutputError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    LLMTransientError,
)
from reskill_gym.skills import LibraryError, LibraryView, SkillLibrary

__all__ = [
    "EvalConfig",
    "Condition",
    "EpisodeJob",
    "TurnRecord",
    "EpisodeRecord",
    "EpisodeLog",
    "EvalRun",
    "EvalAbortedError",
    "resolve_conditions",
    "select_tasks",
    "parse_library_ref",
    "run_eval",
    "NO_SKILLS",
]

log = logging.getLogger(__name__)

NO_SKILLS = "no-skills"
EPISODES_FILE = "episodes.jsonl"
CONFIG_FILE = "config.json"
#: Settings that change what an episode means; a resumed run must keep them.
_IDENTITY_FIELDS = (
    "env",
    "agent_identity",
    "mode",
    "max_turns",
    "difficulty",
    "temperature",
    "max_tokens",
    "history_turns",
    "show_admissible",
    "system_prompt",
    "env_kwargs",
)
EVAL_SYSTEM_PROMPT = (
    "You are an agent acting in a text environment. Read the task and the current "
    "observation, use the skills when they apply, and reply with exactly one action and "
    "nothing else."
)


class EvalAbortedError(RuntimeError):
    """The run cannot go on (bad agent spec, rejected credentials, changed config on resume)."""


class EvalConfig(BaseModel):
    """One evaluation run; written to ``<out>/config.json``."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="Env short name: alfworld, scienceworld or search.")
    splits: list[str] = Field(default_factory=lambda: ["unseen"], description="Splits to run.")
    skills: list[str] = Field(
        default_factory=list,
        description="Libraries as PATH[@VERSION]; VERSION is a version id, prefix or HEAD~N.",
    )
    agent: str = Field(description="Agent spec (see reskill_gym.evaluation.agents).")
    baseline: bool = Field(True, description="Also run every unit without skills (paired).")
    tasks: int | None = Field(None, ge=1, description="Tasks per split (evenly spread); None=all.")
    seeds: list[int] = Field(default_factory=lambda: [0], description="Seeds per task.")
    workers: int = Field(1, ge=1, description="Episodes in flight (threads).")
    mode: ActionMode | None = Field(
        None,
        description="generate (free text) or score (local: over admissible actions); "
        "None = score for local: agents on envs with admissible actions, else generate.",
    )
    max_turns: int | None = Field(None, ge=1, description="Episode horizon; None = env default.")
    difficulty: str | None = Field(None, description="ALFWorld task difficulty (tiny/small/std).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature; 0 = greedy.")
    max_tokens: int = Field(256, ge=1, description="Max output tokens per generated reply.")
    history_turns: int = Field(3, ge=0, description="Earlier (action, observation) pairs shown.")
    show_admissible: bool = Field(True, description="List admissible actions in the prompt.")
    system_prompt: str = Field(EVAL_SYSTEM_PROMPT, description="System message of every turn.")
    turn_retries: int = Field(3, ge=0, description="Re-asks of a failing turn before an error.")
    retry_backoff_s: float = Field(2.0, ge=0, description="First turn-retry delay (doubles).")
    retry_errors: bool = Field(False, description="On resume, re-run episodes that errored.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra env options.")
    llm: dict[str, Any] = Field(
        default_factory=dict, description="LLMConfig overrides (max_retries, timeout_s, ...)."
    )

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("seeds: give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds: duplicates in {v}")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[str]) -> list[str]:
        from reskill_gym.envs.base import SPLITS

        bad = [s for s in v if s not in SPLITS]
        if bad or not v:
            raise ValueError(f"splits: {bad or v} not in {SPLITS}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        from reskill_gym.envs.registration import ENV_IDS

        if self.env not in ENV_IDS:
            raise ValueError(f"env: unknown {self.env!r}; known: {', '.join(ENV_IDS)}")
        if not self.skills and not self.baseline:
            raise ValueError("nothing to run: no --skills and the no-skills baseline is off")
        spec = parse_agent_spec(self.agent)
        if self.mode is None:
            self.mode = "score" if spec.kind == "local" and self.env != "search" else "generate"
        if self.mode == "score" and spec.kind != "local":
            raise ValueError(f"mode: score needs a local: agent, got {spec.kind}: (use generate)")
        if self.mode == "score" and self.env == "search":
            raise ValueError("mode: score needs admissible actions; the search env has none")
        if self.difficulty is not None and self.env != "alfworld":
            raise ValueError("difficulty: only the alfworld env has difficulty levels")
        return self

    def env_options(self) -> dict[str, Any]:
        """Constructor options of the raw env."""
        opts = dict(self.env_kwargs)
        if self.max_turns is not None:
            opts["max_turns"] = self.max_turns
        if self.difficulty is not None:
            opts["difficulty"] = self.difficulty
        return opts


# ----- conditions and tasks ---------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One arm of the paired design: a frozen library view, or none."""

    name: str
    view: LibraryView | None
    source: str | None = None
    version: str | None = None


def parse_library_ref(ref: str) -> tuple[str, str | None]:
    """Split ``PATH[@VERSION]``; an ``@`` inside an existing path is part of the path."""
    if Path(ref).exists() or "@" not in ref:
        return ref, None
    path, _, version = ref.rpartition("@")
    if not version or "/" in version:
        return ref, None
    return path, version


def _open_frozen(ref: str) -> tuple[LibraryView, str]:
    path_s, version = parse_library_ref(ref)
    path = Path(path_s).expanduser()
    if not path.exists():
        raise EvalAbortedError(f"--skills {ref}: {path} does not exist")
    try:
        if (path / ".reskill" / "HEAD").is_file():
            view = SkillLibrary.open(path).view(version)
        else:
            view = LibraryView.from_folder(path)
            if (
                version is not None
                and version not in ("HEAD",)
                and not view.version.startswith(version)
            ):
                raise EvalAbortedError(
                    f"--skills {ref}: {path} is a plain skill folder at version {view.version} "
                    f"(no history), so version {version!r} cannot be selected"
                )
    except LibraryError as e:
        raise EvalAbortedError(f"--skills {ref}: {e}") from e
    if len(view) == 0:
        raise EvalAbortedError(f"--skills {ref}: {path} holds no skills")
    return view, str(path.resolve())


def resolve_conditions(config: EvalConfig) -> list[Condition]:
    """The conditions of a run, baseline first; names are ``<folder>@<version>``."""
    out: list[Condition] = [Condition(NO_SKILLS, None)] if config.baseline else []
    for ref in config.skills:
        view, source = _open_frozen(ref)
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


# ----- records ----------------------------------------------------------------------------
class TurnRecord(BaseModel):
    """One turn of an evaluation episode."""

    turn: int
    action: str
    parse: str = Field(description="exact, contained, raw, text (env parses), score, empty.")
    skill_ids: list[str] = Field(default_factory=list, description="Skills shown this turn.")
    reward: float = 0.0
    invalid_action: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0


class EpisodeRecord(BaseModel):
    """One line of ``episodes.jsonl``."""

    model_config = ConfigDict(extra="allow")

    key: str
    condition: str
    library_source: str | None = None
    library_version: str | None = None
    split: str
    task_id: str
    task_type: str = ""
    task: str = ""
    seed: int
    agent: str
    mode: str
    success: bool = False
    reward: float = 0.0
    turns: int = 0
    turn_log: list[TurnRecord] = Field(default_factory=list)
    skills_fired: list[str] = Field(default_factory=list, description="Unique, first-fired order.")
    parse_counts: dict[str, int] = Field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    error: str | None = None
    error_type: str | None = None
    wall_s: float = 0.0
    finished_at: float = 0.0


class EpisodeLog:
    """Append-only JSONL of episode records, safe against torn writes and shared by threads.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "episodes.jsonl"
    >>> _ = path.write_text('{"key": "a"}\\n{"key": "b", "trunc')  # crashed mid-line
    >>> EpisodeLog(path).raw_records()
    [{'key': 'a'}]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        log.warning(
            "eval: %s ends with a torn line (%d bytes, a crash mid-write); dropping it",
            self.path,
            len(data) - cut,
        )
        with open(self.path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())

    def raw_records(self) -> list[dict[str, Any]]:
        """Every parseable line (a bad line is skipped with a warning naming it)."""
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                log.warning("eval: %s:%d is not JSON (%s); skipped", self.path, n, e)
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def records(self) -> list[EpisodeRecord]:
        """Records, the last one per key winning (a re-run error episode replaces the old)."""
        latest: dict[str, EpisodeRecord] = {}
        for n, obj in enumerate(self.raw_records(), 1):
            try:
                rec = EpisodeRecord.model_validate(obj)
            except ValueError as e:
                log.warning(
                    "eval: %s record %d does not fit EpisodeRecord (%s); skipped", self.path, n, e
                )
                continue
            latest[rec.key] = rec
        return list(latest.values())

    def append(self, record: EpisodeRecord) -> None:
        """One ``write`` of one full line, then ``fsync``: a line is in the log or not at all."""
        data = (record.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)


# ----- running ----------------------------------------------------------------------------
def _error_type(e: BaseException) -> str:
    for cls, name in (
        (LLMRateLimitError, "rate_limit"),
        (LLMTimeoutError, "timeout"),
        (LLMServerError, "server"),
        (LLMTransientError, "transient"),
        (LLMOutputError, "unparsable"),
        (AgentRefusalError, "refusal"),
        (LLMRequestError, "request"),
        (LLMError, "llm"),
    ):
        if isinstance(e, cls):
            return name
    return "env" if isinstance(e, _EnvFailure) else "agent"


class _EnvFailure(RuntimeError):
    """The environment (not the agent) failed: reset/step raised."""


class _Interrupted(Exception):
    """The run is stopping; the episode in flight is dropped and runs again on resume."""


@dataclass
class _Failure(Exception):
    """An episode that could not finish; carries what it had done."""

    cause: BaseException
    retries: int = 0


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
    records: list[EpisodeRecord] = field(default_factory=list)

    @property
    def episodes_path(self) -> Path:
        return self.out_dir / EPISODES_FILE


class _Runner:
    def __init__(
        self,
        config: EvalConfig,
        agent: Agent,
        conditions: list[Condition],
        episode_log: EpisodeLog,
        sleep: Callable[[float], None],
    ) -> None:
        from reskill_gym.envs.registration import env_class

        self.config = config
        self.agent = agent
        self.conditions = {c.name: c for c in conditions}
        self.log = episode_log
        self.sleep = sleep
        self.env_cls = env_class(config.env)
        self._local = threading.local()
        self._envs: list[Any] = []
        self._envs_lock = threading.Lock()
        self._jitter = random.Random(0)
        self.stop = threading.Event()

    def _wrapper(self, condition: Condition) -> Any:
        """This thread's wrapper for ``condition`` (one raw env per thread, shared by wrappers)."""
        from reskill_gym.wrapper import SkillWrapper

        local = self._local
        if getattr(local, "env", None) is None:
            local.env = self.env_cls(split=self.config.splits[0], **self.config.env_options())
            local.wrappers = {}
            with self._envs_lock:
                self._envs.append(local.env)
        if condition.name not in local.wrappers:
            local.wrappers[condition.name] = SkillWrapper(local.env, condition.view)
        return local.wrappers[condition.name]

    def close(self) -> None:
        with self._envs_lock:
            envs, self._envs = self._envs, []
        for env in envs:
            try:
                env.close()
            except Exception as e:  # closing must not hide the run's own result
                log.warning("eval: closing env failed: %s", e)

    def _act(
        self, messages: list[dict[str, str]], info: dict[str, Any], rng: np.random.Generator
    ) -> tuple[TurnDecision, int]:
        cfg = self.config
        for attempt in range(cfg.turn_retries + 1):
            try:
                return self.agent.act(messages, info, rng), attempt
            except (LLMAuthError, LLMConfigError):
                raise
            except (LLMTransientError, LLMOutputError, AgentRefusalError) as e:
                if self.stop.is_set():
                    raise _Interrupted() from e
                if attempt >= cfg.turn_retries:
                    raise _Failure(e, attempt) from e
                delay = cfg.retry_backoff_s * 2**attempt * (0.5 + self._jitter.random())
                log.info(
                    "eval: %s: %s; turn retry %d/%d in %.2fs",
                    self.agent.name,
                    type(e).__name__,
                    attempt + 1,
                    cfg.turn_retries,
                    delay,
                )
                self.sleep(delay)
            except LLMError as e:  # a request the server rejects: re-asking will not help
                raise _Failure(e, attempt) from e
        raise AssertionError("unreachable")

    def run_job(self, job: EpisodeJob) -> EpisodeRecord:
        cfg = self.config
        cond = self.conditions[job.condition]
        t0 = time.monotonic()
        rec = EpisodeRecord(
            key=job.key,
            condition=job.condition,
            library_source=cond.source,
            library_version=cond.version,
            split=job.split,
            task_id=job.task_id,
            seed=job.seed,
            agent=cfg.agent,
            mode=cfg.mode,
        )
        rng = np.random.default_rng([job.seed, zlib.crc32(job.task_id.encode())])
        try:
            self._play(job, cond, rec, rng)
        except _Failure as f:
            rec.error = f"{type(f.cause).__name__}: {f.cause}"
            rec.error_type = _error_type(f.cause)
            rec.retries += f.retries
            rec.success = False
            log.warning("eval: episode %s recorded as error (%s)", job.key, rec.error)
        rec.turns = len(rec.turn_log)
        rec.input_tokens = sum(t.input_tokens for t in rec.turn_log)
        rec.output_tokens = sum(t.output_tokens for t in rec.turn_log)
        counts: dict[str, int] = {}
        for t in rec.turn_log:
            counts[t.parse] = counts.get(t.parse, 0) + 1
        rec.parse_counts = counts
        rec.skills_fired = list(dict.fromkeys(s for t in rec.turn_log for s in t.skill_ids))
        rec.wall_s = round(time.monotonic() - t0, 3)
        rec.finished_at = time.time()
        return rec

    def _play(
        self, job: EpisodeJob, cond: Condition, rec: EpisodeRecord, rng: np.random.Generator
    ) -> None:
        from reskill_gym.envs.base import EngineCrashedError
        from reskill_gym.wrapper import observation_to_messages

        cfg = self.config
        env = self._wrapper(cond)
        options = {"task_id": job.task_id, "split": job.split}
        try:
            try:
                obs, info = env.reset(seed=job.seed, options=options)
            except EngineCrashedError:
                log.warning("eval: engine crashed at reset of %s; one more try", job.key)
                obs, info = env.reset(seed=job.seed, options=options)
        except Exception as e:
            raise _Failure(_EnvFailure(f"reset failed: {type(e).__name__}: {e}")) from e
        rec.task_type = str(info.get("task_type", ""))
        rec.task = str(info.get("task", ""))
        history: deque[tuple[str, str]] = deque(maxlen=cfg.history_turns or None)
        while True:
            messages = observation_to_messages(
                obs,
                info,
                system=cfg.system_prompt,
                history=list(history) if cfg.history_turns else (),
                show_admissible=cfg.show_admissible,
            )
            decision, retries = self._act(messages, info, rng)
            rec.retries += retries
            rec.cost_usd += decision.cost_usd
            try:
                obs, reward, terminated, truncated, next_info = env.step(decision.action)
            except Exception as e:
                raise _Failure(_EnvFailure(f"step failed: {type(e).__name__}: {e}")) from e
            rec.turn_log.append(
                TurnRecord(
                    turn=int(info.get("turn", len(rec.turn_log))),
                    action=decision.action,
                    parse=decision.parse,
                    skill_ids=list(info.get("skill_ids", ())),
                    reward=float(reward),
                    invalid_action=bool(next_info.get("invalid_action", False)),
                    input_tokens=decision.input_tokens,
                    output_tokens=decision.output_tokens,
                    retries=retries,
                )
            )
            rec.reward += float(reward)
            log.debug(
                "eval: %s turn %d: %r (%s) -> reward %.1f",
                job.key,
                len(rec.turn_log),
                decision.action,
                decision.parse,
                reward,
            )
            history.append((decision.action, str(next_info.get("observation", obs))))
            info = next_info
            if terminated or truncated:
                rec.success = bool(info.get("won", False))
                return
            if self.stop.is_set():
                raise _Interrupted()


def _agent_identity(spec: str) -> str:
    """What must stay fixed across a resume: an OpenAI-compatible server may move (new port,
    new host) and still serve the same model, so only its model id counts."""
    parsed = parse_agent_spec(spec)
    if parsed.kind == "openai":
        return "openai#" + parsed.target.rpartition("#")[2]
    return parsed.spec


def _config_meta(config: EvalConfig) -> dict[str, Any]:
    return config.model_dump(mode="json") | {"agent_identity": _agent_identity(config.agent)}


def _check_resume(out_dir: Path, config: EvalConfig) -> None:
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise EvalAbortedError(f"{path}: not JSON ({e}); remove it or use another --out") from e
    new = _config_meta(config)
    for f in _IDENTITY_FIELDS:
        if f in old and old[f] != new[f]:
            raise EvalAbortedError(
                f"{path}: field {f!r} was {old[f]!r}, this run has {new[f]!r}; results would "
                "not be comparable - use another --out or the same setting"
            )


def run_eval(
    config: EvalConfig,
    out_dir: str | os.PathLike[str],
    *,
    agent: Agent | None = None,
    stop_after: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[EpisodeRecord, int, int], None] | None = None,
) -> EvalRun:
    """Run (or resume) an evaluation; returns the run with every record of the log.

    ``agent`` overrides the one ``config.agent`` names (tests, notebooks). ``stop_after``
    stops cleanly after that many new episodes (a planned interruption). ``progress`` is
    called after every recorded episode with (record, done, total).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, config)
    conditions = resolve_conditions(config)
    t0 = time.monotonic()

    from reskill_gym.envs.registration import env_class

    probe = env_class(config.env)(split=config.splits[0], **config.env_options())
    try:
        tasks = {s: select_tasks(probe.task_ids(s), config.tasks) for s in config.splits}
    finally:
        probe.close()
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
    meta = _config_meta(config) | {
        "conditions": [
            {"name": c.name, "source": c.source, "version": c.version} for c in conditions
        ],
        "task_ids": tasks,
    }
    atomic_write_json(out / CONFIG_FILE, meta, indent=2, sort_keys=True, default=str)

    episode_log = EpisodeLog(out / EPISODES_FILE)
    done = {
        r.key for r in episode_log.records() if not (config.retry_errors and r.error is not None)
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
                llm_overrides=config.llm,
            )
        except LLMConfigError as e:
            raise EvalAbortedError(f"--agent {config.agent}: {e}") from e
        runner = _Runner(config, agent, conditions, episode_log, sleep)
        try:
            _execute(runner, pending, run, progress, len(jobs))
        finally:
            runner.close()
            if own_agent:
                agent.close()
    run.records = episode_log.records()
    run.wall_s = time.monotonic() - t0
    return run


def _execute(
    runner: _Runner,
    pending: list[EpisodeJob],
    run: EvalRun,
    progress: Callable[[EpisodeRecord, int, int], None] | None,
    total: int,
) -> None:
    lock = threading.Lock()

    def one(job: EpisodeJob) -> None:
        if runner.stop.is_set():
            return
        try:
            rec = runner.run_job(job)
        except _Interrupted:
            return  # an interrupted episode is not a result: it runs again on resume
        except (LLMAuthError, LLMConfigError) as e:
            runner.stop.set()
            raise EvalAbortedError(f"agent {runner.config.agent}: {e}") from e
        runner.log.append(rec)
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
