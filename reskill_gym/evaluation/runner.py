"""Paired evaluation runs of frozen skill libraries: conditions, episodes, JSONL, resume.

Exports ``EvalConfig``, ``Condition``, ``EpisodeJob``, ``EvalEpisode``, ``ErrorType``,
``EpisodeLog``, ``EvalRun``, ``EvalAbortedError``, ``resolve_conditions``, ``select_tasks``,
``parse_library_ref``, ``run_eval``, ``EpisodePlayer``, ``NO_SKILLS`` and ``RECORD_FORMAT``.

Design: every (split, task, seed) unit is run under every *condition* - ``no-skills`` (the
baseline, unless disabled) and one per ``--skills PATH[@VERSION]`` - so conditions differ
only in the library (paired design). Libraries are opened frozen: a ``LibraryView`` of one
version, so a library that keeps evolving elsewhere cannot change a running evaluation.

Every episode is played through the turn contract (:class:`reskill_gym.rollout.RolloutSession`
under ``config.rollout``, the same ``TurnConfig`` block training uses): the session builds the
prompt, parses a generated reply (or takes a score-mode choice), steps the env and fills the
one :class:`~reskill_gym.episode.Episode` record. An episode is played by the same agent
contract it was trained under; the runner only asks the agent, retries and records. In
score mode the choice rule's uniform ``u`` comes from the episode's generator
``np.random.default_rng([seed, crc32(task_id)])``: every condition of a unit draws the same
stream (common random numbers), and a record can be replayed turn by turn.

Each finished episode is one :class:`EvalEpisode` JSON line in ``<out>/episodes.jsonl``,
appended with a single ``write`` + ``fsync`` under a lock; a torn last line (a crash
mid-write) is cut off when the log is reopened. On restart, episodes already in the log are
skipped, so an interrupted run resumes where it stopped and no episode runs twice
(``retry_errors`` re-runs the error episodes only). ``<out>/config.json`` pins what makes
results comparable (env, agent, mode, turns, the resolved rollout block, ...), written when
the run records its first episode: resuming with a different value of one of those fails and
names the field, while a run that failed before recording anything pins nothing, so the
corrected command can reuse the same ``--out``.

Agent failures (timeouts, 429, 5xx, refusals) are retried with exponential backoff per turn
(on top of the backend's own transport retries); when retries are spent the episode is
recorded with ``error`` set - it is counted, never fatal. An agent that raises anything else
or returns something that is not an answer is recorded the same way at once (re-asking a
buggy policy will not help). A reply without a valid action is not a failure: it is an
invalid turn, as in training. Only configuration problems (bad spec, rejected API key)
abort the run, because every episode would fail the same way.

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
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from reskill_gym.atomic import atomic_write_json
from reskill_gym.episode import Episode
from reskill_gym.evaluation.agents import (
    ActionMode,
    Agent,
    AgentChoice,
    AgentRefusalError,
    AgentReply,
    make_agent,
    parse_agent_spec,
)
from reskill_gym.evaluation.expert import ExpertConfig
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
from reskill_gym.rollout import EnvLease, EnvPool, RolloutSession, TurnConfig
from reskill_gym.skills import LibraryError, LibraryView, SkillLibrary

__all__ = [
    "EvalConfig",
    "Condition",
    "EpisodeJob",
    "EvalEpisode",
    "ErrorType",
    "EpisodeLog",
    "EvalRun",
    "EvalAbortedError",
    "resolve_conditions",
    "select_tasks",
    "parse_library_ref",
    "run_eval",
    "EpisodePlayer",
    "NO_SKILLS",
    "RECORD_FORMAT",
]

log = logging.getLogger(__name__)

NO_SKILLS = "no-skills"
EPISODES_FILE = "episodes.jsonl"
CONFIG_FILE = "config.json"
#: Version of the ``episodes.jsonl`` line schema (2: ``EvalEpisode`` on the one ``Episode``).
RECORD_FORMAT = 2
#: Settings that change what an episode means; a resumed run must keep them.
_IDENTITY_FIELDS = (
    "record_format",
    "metric",
    "expert",
    "env",
    "agent_identity",
    "mode",
    "max_turns",
    "difficulty",
    "temperature",
    "max_tokens",
    "rollout_resolved",
    "env_kwargs",
)
#: Rollout fields that do not change an evaluation episode (recording, training penalty).
_ROLLOUT_NOT_IDENTITY = frozenset({"record_scores", "invalid_action_penalty"})
#: Flat keys of earlier eval configs / CLI flags -> the rollout field they set.
_FLAT_ROLLOUT_KEYS = {
    "mode": "action_mode",
    "history_turns": "history_turns",
    "show_admissible": "show_admissible",
    "system_prompt": "system_prompt",
    "action_format": "action_format",
    "score_norm": "score_norm",
}

ErrorType = Literal[
    "rate_limit",
    "timeout",
    "server",
    "transient",
    "unparsable",
    "refusal",
    "request",
    "llm",
    "env",
    "agent",
]
"""Why an error episode failed: an LLM error class, ``env`` (reset/step raised) or ``agent``
(the policy raised something else or returned no answer)."""


class EvalAbortedError(RuntimeError):
    """The run cannot go on (bad agent spec, rejected credentials, changed config on resume)."""


class EvalConfig(BaseModel):
    """One evaluation run; its identity is pinned in ``<out>/config.json``.

    ``rollout`` is the turn contract's ``TurnConfig`` (the block a training config has), so a
    policy is evaluated with the prompt, parser and choice rule it was trained with. The flat
    keys ``mode``, ``history_turns``, ``show_admissible``, ``system_prompt``,
    ``action_format`` and ``score_norm`` (CLI flags, earlier configs) are accepted and set
    the rollout field of that name (``mode`` -> ``action_mode``). Unless set, the action mode
    is ``score`` for ``local:`` agents on envs with admissible actions, else ``generate``,
    and evaluation records every candidate's score (``record_scores``).

    >>> cfg = EvalConfig(env="alfworld", agent="local:default", history_turns=5)
    >>> cfg.mode, cfg.rollout.history_turns, cfg.rollout.score_norm, cfg.rollout.record_scores
    ('score', 5, 'mean', True)
    >>> EvalConfig(env="search", agent="python:m:f").rollout.resolve("search").action_format
    'passthrough'
    """

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
    rollout: TurnConfig = Field(
        default_factory=TurnConfig,
        description="The turn contract (layout, action mode and format, score_norm, history, "
        "admissible list, system prompt), as in a training config's rollout: block.",
    )
    max_turns: int | None = Field(None, ge=1, description="Episode horizon; None = env default.")
    difficulty: str | None = Field(None, description="ALFWorld task difficulty (tiny/small/std).")
    temperature: float = Field(
        0.0, ge=0, description="Sampling / score-choice temperature; 0 = greedy (deterministic)."
    )
    max_tokens: int = Field(256, ge=1, description="Max output tokens per generated reply.")
    turn_retries: int = Field(3, ge=0, description="Re-asks of a failing turn before an error.")
    retry_backoff_s: float = Field(2.0, ge=0, description="First turn-retry delay (doubles).")
    retry_errors: bool = Field(False, description="On resume, re-run episodes that errored.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra env options.")
    template: str | dict[str, Any] = Field(
        "compact",
        description="Skill block template: 'compact', 'published' (the published ReSkill "
        "section) or a mapping {base: ..., <BundleTemplate field>: ...}; evaluate with the "
        "template the library was trained with.",
    )
    llm: dict[str, Any] = Field(
        default_factory=dict, description="LLMConfig overrides (max_retries, timeout_s, ...)."
    )
    metric: Literal["success", "expert"] = Field(
        "success",
        description="success: play episodes, report success rates. expert: score "
        "expert-labelled states under none/library/placebo/shuffled skills and report the "
        "probability mass on optimal commands (reskill_gym.evaluation.expert).",
    )
    expert: ExpertConfig = Field(
        default_factory=ExpertConfig,
        description="metric expert: how states are drawn and which conditions are scored.",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_rollout_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _FLAT_ROLLOUT_KEYS):
            return data
        data = dict(data)
        given = data.get("rollout")
        if isinstance(given, TurnConfig):
            rollout = given.model_dump(exclude_unset=True)
        elif isinstance(given, dict):
            rollout = dict(given)
        elif given is None:
            rollout = {}
        else:
            return data  # the field validator reports the wrong type
        for key, name in _FLAT_ROLLOUT_KEYS.items():
            if key not in data:
                continue
            value = data.pop(key)
            if value is None:  # unset (mode None = auto)
                continue
            if name in rollout and rollout[name] != value:
                raise ValueError(
                    f"{key}: {value!r} contradicts rollout.{name}: {rollout[name]!r}; set one"
                )
            rollout[name] = value
        data["rollout"] = rollout
        return data

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        from reskill_gym.skills.bundle import resolve_template

        resolve_template(v, where="template")  # an unknown name fails here, with a close match
        return v

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
        r = self.rollout
        update: dict[str, Any] = {}
        if "action_mode" not in r.model_fields_set:
            local = spec.kind == "local" and self.env != "search"
            update["action_mode"] = "score" if local else "generate"
        if "record_scores" not in r.model_fields_set:
            update["record_scores"] = True
        if update:
            self.rollout = TurnConfig.model_validate(r.model_dump(exclude_unset=True) | update)
        if self.mode == "score" and spec.kind != "local":
            raise ValueError(f"mode: score needs a local: agent, got {spec.kind}: (use generate)")
        if self.mode == "score" and self.env == "search":
            raise ValueError("mode: score needs admissible actions; the search env has none")
        if self.metric == "expert":
            self._check_expert(spec.kind)
        if self.difficulty is not None:
            from reskill_gym.envs.alfworld.spec import DIFFICULTIES

            if self.env != "alfworld":
                raise ValueError("difficulty: only the alfworld env has difficulty levels")
            if self.difficulty not in DIFFICULTIES:
                raise ValueError(
                    f"difficulty: {self.difficulty!r} is not one of {', '.join(DIFFICULTIES)}"
                )
        return self

    def _check_expert(self, kind: str) -> None:
        if self.env != "alfworld":
            raise ValueError(
                f"metric: expert needs a planner to label states; env {self.env!r} has none "
                "(alfworld only; ScienceWorld's gold plans are fixed scripts, not a planner "
                "that can re-plan from any state)"
            )
        if self.mode != "score" or kind != "local":
            raise ValueError(
                "metric: expert scores every admissible command: it needs a local: agent in "
                "score mode (rollout.action_mode: score)"
            )
        if len(self.skills) != 1:
            raise ValueError(
                f"metric: expert compares one library with its controls; give exactly one "
                f"--skills (got {len(self.skills)})"
            )
        if "temperature" not in self.model_fields_set:
            # p_opt is the mass the agent's sampling rule puts on optimal commands: at the
            # training temperature (1.0), not greedy (where it is just top-1 again)
            self.temperature = 1.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mode(self) -> ActionMode:
        """The action mode (``rollout.action_mode``, resolved)."""
        return self.rollout.action_mode

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
class EvalEpisode(Episode):
    """One line of ``episodes.jsonl``: the one ``Episode`` record (turns with reply, parse
    outcome, validity, choice scores, tokens, cost and retries) plus its place in the paired
    design. ``episode_id`` is ``key``; ``group_id`` is the unit (split, task, seed) that the
    conditions share.

    >>> from reskill_gym.episode import Turn
    >>> ep = EvalEpisode(key="no-skills|unseen|t0|0", episode_id="no-skills|unseen|t0|0",
    ...     env_id="ReSkill-Search-v0", task_id="t0", split="unseen", seed=0,
    ...     condition="no-skills", agent="python:m:f", mode="generate",
    ...     turns=[Turn(observation="?", action="x", parse="passthrough", input_tokens=5)])
    >>> ep.input_tokens, ep.retries, EvalEpisode.model_validate_json(ep.model_dump_json()) == ep
    (5, 0, True)
    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="condition|split|task_id|seed: what resume skips by.")
    condition: str = Field(description="no-skills, or <library folder>@<version prefix>.")
    library_source: str | None = Field(None, description="Resolved path of the library.")
    agent: str = Field(description="The --agent spec.")
    mode: ActionMode = Field(description="generate or score.")
    error_type: ErrorType | None = Field(None, description="Set with ``error``.")
    error_retries: int = Field(
        0, description="Re-asks spent on the turn that ended the episode in an error."
    )
    wall_s: float = Field(0.0, description="Seconds the episode took.")
    finished_at: float = Field(0.0, description="Unix time the record was made.")

    @property
    def input_tokens(self) -> int:
        return sum(t.input_tokens for t in self.turns)

    @property
    def output_tokens(self) -> int:
        return sum(t.output_tokens for t in self.turns)

    @property
    def cost_usd(self) -> float:
        return float(sum(t.cost_usd for t in self.turns))

    @property
    def retries(self) -> int:
        """Turn re-asks, including those of a turn that failed."""
        return sum(t.retries for t in self.turns) + self.error_retries


class EpisodeLog:
    """Append-only JSONL of episode records, safe against torn writes and shared by threads.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "episodes.jsonl"
    >>> _ = path.write_text('{"key": "a"}\\n{"key": "b", "trunc')  # crashed mid-line
    >>> EpisodeLog(path).raw_records()
    [{'key': 'a'}]
    """

    def __init__(
        self, path: str | os.PathLike[str], *, record_type: type[BaseModel] | None = None
    ) -> None:
        self.path = Path(path)
        self.record_type: type[BaseModel] = record_type or EvalEpisode
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

    def records(self) -> list[Any]:
        """Records (``record_type``, default ``EvalEpisode``), the last one per key winning
        (a re-run error episode replaces the old)."""
        latest: dict[str, Any] = {}
        kind = self.record_type
        for n, obj in enumerate(self.raw_records(), 1):
            try:
                rec = kind.model_validate(obj)
            except ValueError as e:
                log.warning(
                    "eval: %s record %d does not fit %s (%s); skipped",
                    self.path,
                    n,
                    kind.__name__,
                    e,
                )
                continue
            latest[rec.key] = rec  # type: ignore[attr-defined]
        return list(latest.values())

    def append(self, record: BaseModel) -> None:
        """One ``write`` of one full line, then ``fsync``: a line is in the log or not at all."""
        from reskill_gym.redaction import redact

        data = (redact(record.model_dump_json()) + "\n").encode("utf-8")
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
def _error_type(e: BaseException) -> ErrorType:
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
            return name  # type: ignore[return-value]
    return "env" if isinstance(e, _EnvFailure) else "agent"


class _EnvFailure(RuntimeError):
    """The environment (not the agent) failed: reset/step raised."""


class _Interrupted(Exception):
    """The run is stopping; the episode in flight is dropped and runs again on resume."""


@dataclass
class _Failure(Exception):
    """An episode that could not finish: the cause and the re-asks spent on the last turn."""

    cause: BaseException
    retries: int = 0

    def message(self) -> str:
        if isinstance(self.cause, _EnvFailure):
            return f"env: {self.cause}"
        return f"{type(self.cause).__name__}: {self.cause}"


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
    from reskill_gym.envs.registration import env_class
    from reskill_gym.skills.bundle import resolve_template
    from reskill_gym.wrapper import SkillWrapper

    env_cls = env_class(config.env)
    template = resolve_template(config.template, where="template")

    def build(key: Any) -> Any:
        return SkillWrapper(
            env_cls(split=config.splits[0], **config.env_options()), template=template
        )

    return EnvPool(build)


class EpisodePlayer:
    """Plays one episode with an agent through a :class:`RolloutSession`: asks the agent each
    turn (transient failures re-asked with backoff), gives its answer to the session, stops
    when the session is done. ``run_eval`` and ``reskill evolve`` play every episode with it.

    ``stop`` (an event) interrupts between turns; ``LLMAuthError`` / ``LLMConfigError``
    propagate (every episode would fail the same way).

    >>> from reskill_gym.evaluation.agents import CallableAgent
    >>> player = EpisodePlayer(CallableAgent(lambda m, i: "<action>go</action>", name="f"))
    >>> player.mode, player.turn_retries
    ('generate', 3)
    """

    def __init__(
        self,
        agent: Agent,
        mode: ActionMode = "generate",
        *,
        turn_retries: int = 3,
        retry_backoff_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.agent = agent
        self.mode = mode
        self.turn_retries = turn_retries
        self.retry_backoff_s = retry_backoff_s
        self.sleep = sleep
        self.stop = stop if stop is not None else threading.Event()
        self._jitter = random.Random(0)
        self._answer_type = AgentChoice if mode == "score" else AgentReply

    # ----- one turn's answer ------------------------------------------------------------
    def ask(
        self,
        messages: list[dict[str, str]],
        info: dict[str, Any],
        rng: np.random.Generator,
    ) -> tuple[AgentReply | AgentChoice, int]:
        """The agent's answer to one turn and the re-asks it took."""
        for attempt in range(self.turn_retries + 1):
            try:
                answer = self.agent.act(messages, info, rng)
            except (LLMAuthError, LLMConfigError):
                raise
            except (LLMTransientError, LLMOutputError, AgentRefusalError) as e:
                if self.stop.is_set():
                    raise _Interrupted() from e
                if attempt >= self.turn_retries:
                    raise _Failure(e, attempt) from e
                delay = self.retry_backoff_s * 2**attempt * (0.5 + self._jitter.random())
                log.info(
                    "eval: %s: %s; turn retry %d/%d in %.2fs",
                    self.agent.name,
                    type(e).__name__,
                    attempt + 1,
                    self.turn_retries,
                    delay,
                )
                self.sleep(delay)
                continue
            except (
                Exception
            ) as e:  # a rejected request or a bug in the policy: re-asking won't help
                raise _Failure(e, attempt) from e
            if not isinstance(answer, self._answer_type):
                raise _Failure(
                    TypeError(
                        f"agent {self.agent.name} returned {type(answer).__name__}, expected "
                        f"{self._answer_type.__name__} in {self.mode} mode"
                    ),
                    attempt,
                )
            return answer, attempt
        raise AssertionError("unreachable")

    def play(self, session: RolloutSession, rng: np.random.Generator) -> None:
        """Play a reset ``session`` to its end; raises ``_Failure`` when it cannot finish."""
        while not session.done:
            if session.turn and self.stop.is_set():
                raise _Interrupted()
            answer, retries = self.ask(session.messages(), session.info, rng)
            try:
                if isinstance(answer, AgentChoice):
                    session.act_choice(
                        answer.choice, input_tokens=answer.input_tokens, retries=retries
                    )
                else:
                    session.act(
                        answer.text,
                        input_tokens=answer.input_tokens,
                        output_tokens=answer.output_tokens,
                        cost_usd=answer.cost_usd,
                        retries=retries,
                    )
            except Exception as e:
                raise _Failure(_EnvFailure(f"step failed: {type(e).__name__}: {e}")) from e
            t = session.recorder.episode.turns[-1]
            log.debug(
                "eval: %s turn %d: %r (%s%s) -> reward %.1f",
                session.recorder.episode.episode_id,
                session.turn,
                t.action,
                t.parse,
                "" if t.valid else ", invalid",
                t.reward,
            )

    def episode(self, session: RolloutSession, rng: np.random.Generator) -> Episode:
        """Play ``session`` to its end; an episode that could not finish comes back with
        ``error`` set (``session.fail``) instead of raising."""
        try:
            self.play(session, rng)
        except _Failure as f:
            return session.fail(f.message())
        return session.episode()


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
                raise _Failure(_EnvFailure(f"env build failed: {type(e).__name__}: {e}")) from e
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
                raise _Failure(_EnvFailure(f"reset failed: {type(e).__name__}: {e}")) from e
            except Exception as e:
                lease.close()
                raise _Failure(_EnvFailure(f"reset failed: {type(e).__name__}: {e}")) from e
        raise AssertionError("unreachable")

    def run_job(self, job: EpisodeJob) -> EvalEpisode:
        cfg = self.config
        cond = self.conditions[job.condition]
        t0 = time.monotonic()
        rng = np.random.default_rng([job.seed, zlib.crc32(job.task_id.encode())])
        session: RolloutSession | None = None
        lease: EnvLease | None = None
        failure: _Failure | None = None
        try:
            session, lease = self._start(job, cond)
            self.play(session, rng)
            episode = session.episode()
        except _Failure as f:
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
            from reskill_gym.envs.registration import ENV_IDS

            episode.env_id = ENV_IDS[cfg.env]
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
                "error_type": _error_type(failure.cause) if failure else None,
                "error_retries": failure.retries if failure else 0,
                "wall_s": round(time.monotonic() - t0, 3),
                "finished_at": time.time(),
            }
        )


def _agent_identity(spec: str) -> str:
    """What must stay fixed across a resume: an OpenAI-compatible server may move (new port,
    new host) and still serve the same model, so only its model id counts."""
    parsed = parse_agent_spec(spec)
    if parsed.kind == "openai":
        return "openai#" + parsed.target.rpartition("#")[2]
    return parsed.spec


def _config_meta(config: EvalConfig) -> dict[str, Any]:
    resolved = config.rollout.resolve(config.env).model_dump(
        mode="json", exclude=set(_ROLLOUT_NOT_IDENTITY)
    )
    return config.model_dump(mode="json") | {
        "record_format": RECORD_FORMAT,
        "agent_identity": _agent_identity(config.agent),
        "rollout_resolved": resolved,
    }


def _check_resume(out_dir: Path, config: EvalConfig) -> None:
    """Refuse to add episodes that would not be comparable to those already in the log."""
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalAbortedError(f"{path}: not JSON ({e}); remove it or use another --out") from e
    if not isinstance(old, dict):
        raise EvalAbortedError(f"{path}: not a JSON object; remove it or use another --out")
    if old.get("record_format") != RECORD_FORMAT:
        raise EvalAbortedError(
            f"{path}: written by an earlier reskill eval (record format "
            f"{old.get('record_format', 1)}, this one writes {RECORD_FORMAT}); its "
            "episodes.jsonl cannot be resumed - use another --out"
        )
    new = _config_meta(config)
    for f in _IDENTITY_FIELDS:
        if f in old and old[f] != new.get(f):
            raise EvalAbortedError(
                f"{path}: field {f!r} was {old[f]!r}, this run has {new.get(f)!r}; results "
                "would not be comparable - use another --out or the same setting"
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
        _check_resume(out, config)
    conditions = resolve_conditions(config)
    t0 = time.monotonic()

    pool = _env_pool(config)
    try:
        try:
            from reskill_gym.envs.base import TextEnv

            probe = pool.lease()
            base = probe.unwrapped
            if not isinstance(base, TextEnv):
                raise TypeError(f"{type(base).__name__} is not a ReSkill TextEnv")
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
        meta = _config_meta(config) | {
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
        except _Interrupted:
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
