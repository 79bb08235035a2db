"""The episode log of an evaluation run: records, torn-write repair, resume identity.

Exports ``EvalEpisode``, ``ErrorType``, ``EpisodeLog``, ``RECORD_FORMAT``, ``EPISODES_FILE``,
``CONFIG_FILE``, ``agent_identity``, ``config_meta`` and ``check_resume``.

Each finished episode is one :class:`EvalEpisode` JSON line in ``<out>/episodes.jsonl``,
appended with a single ``write`` + ``fsync`` under a lock; a torn last line (a crash
mid-write) is cut off when the log is reopened. On restart, episodes already in the log are
skipped, so an interrupted run resumes where it stopped and no episode runs twice.
``<out>/config.json`` pins what makes results comparable (env, agent, mode, turns, the
resolved rollout block, ...; :func:`config_meta`), written when the run records its first
episode: resuming with a different value of one of those fails and names the field
(:func:`check_resume`), while a run that failed before recording anything pins nothing, so
the corrected command can reuse the same ``--out``. The expert metric keeps its
``scores.jsonl`` in the same kind of log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reskill_gym import safe_files
from reskill_gym.episode import Episode
from reskill_gym.evaluation.agents import ActionMode, parse_agent_spec
from reskill_gym.evaluation.config import EvalAbortedError, EvalConfig
from reskill_gym.jsonl_files import append_line, read_jsonl_objects, repair_torn_tail

__all__ = [
    "EvalEpisode",
    "ErrorType",
    "EpisodeLog",
    "RECORD_FORMAT",
    "EPISODES_FILE",
    "CONFIG_FILE",
    "agent_identity",
    "config_meta",
    "check_resume",
]

log = logging.getLogger(__name__)

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
        repair_torn_tail(self.path)  # a link or FIFO in its place is refused, not followed

    def raw_records(self) -> list[dict[str, Any]]:
        """Every usable line (a bad one, too deep, too long or not an object, is skipped
        with a warning naming it)."""
        return [obj for _n, obj in read_jsonl_objects(self.path)]

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

        line = redact(record.model_dump_json())
        with self._lock:
            append_line(self.path, line)


def agent_identity(spec: str) -> str:
    """What must stay fixed across a resume: an OpenAI-compatible server may move (new port,
    new host) and still serve the same model, so only its model id counts."""
    parsed = parse_agent_spec(spec)
    if parsed.kind == "openai":
        return "openai#" + parsed.target.rpartition("#")[2]
    return parsed.spec


def config_meta(config: EvalConfig) -> dict[str, Any]:
    """What ``<out>/config.json`` pins: the config, the record format, the agent's identity
    and the resolved rollout block."""
    resolved = config.rollout.resolve(config.env).model_dump(
        mode="json", exclude=set(_ROLLOUT_NOT_IDENTITY)
    )
    return config.model_dump(mode="json") | {
        "record_format": RECORD_FORMAT,
        "agent_identity": agent_identity(config.agent),
        "rollout_resolved": resolved,
    }


def check_resume(out_dir: Path, config: EvalConfig) -> None:
    """Refuse to add episodes that would not be comparable to those already in the log."""
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return
    try:
        old = json.loads(safe_files.read_text(path))
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
    new = config_meta(config)
    for f in _IDENTITY_FIELDS:
        if f in old and old[f] != new.get(f):
            raise EvalAbortedError(
                f"{path}: field {f!r} was {old[f]!r}, this run has {new.get(f)!r}; results "
                "would not be comparable - use another --out or the same setting"
            )
