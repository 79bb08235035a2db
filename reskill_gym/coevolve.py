"""Co-evolution: the one API every trainer calls.

Exports ``CoEvolutionLike``, ``CoEvolution``, ``NoCoEvolution``, ``CoEvolutionConfig``,
``CoEvolutionStatus``, ``StepPlan``, ``CoEvolutionEvent``, ``GroupLike`` and
``coevolution_metrics``.

A trainer's step looks like this (the local GRPO loop and the veRL adapter both do it)::

    plan = co.plan_step(groups)                      # version per rollout
    env = SkillWrapper(base_env, co.view(version))   # per rollout
    co.record(episodes)                              # rewards, trajectories, skills fired
    events = co.end_step(step)                       # flush/decide, creator, checkpoint

``CoEvolutionLike`` is that API as a protocol: trainers, the veRL actor and the metrics are
typed against it, so ``CoEvolution`` (the full loop) and ``NoCoEvolution`` (one fixed
version, nothing recorded) are interchangeable without probing for optional parts; what
differs between them is reported by ``status()``.

Where each piece lives: the library (``reskill_gym.skills.SkillLibrary``) owns versions and
HEAD, the tester (``reskill_gym.versioning.VersionTester``) owns the live test, the creator
(``reskill_gym.creator.SkillCreator``) turns a reservoir snapshot into a ``Proposal`` in a
background thread. This module only sequences them, and checkpoints their joint state after
every step. The checkpoint is the source of truth on resume: a version committed or a HEAD
moved after the last checkpoint is reconciled to the checkpoint (versions are
content-addressed, so a re-proposed candidate gets the same id, never a duplicate).

>>> import tempfile, pathlib
>>> from reskill_gym.skills import Skill, SkillLibrary, Trigger, write_skill
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_skill(Skill(name="plan", description="d", content="Plan first.",
...                       trigger=Trigger(type="beginning")), root)
>>> co = CoEvolution.create(SkillLibrary.open(root, create=True), CoEvolutionConfig(creator_enabled=False))
>>> plan = co.plan_step([("g0", "task-1", 2)])
>>> plan.versions == [[co.head, co.head]], plan.testing
(True, False)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_json
from reskill_gym.creator import CreatorConfig, Reservoir, SkillCreator, version_test_history
from reskill_gym.creator.reservoir import DedupBy
from reskill_gym.episode import Episode
from reskill_gym.skills import LibraryView, SkillLibrary
from reskill_gym.versioning import Decision, GroupSpec, TesterConfig, VersionTester

__all__ = [
    "CoEvolutionLike",
    "CoEvolution",
    "NoCoEvolution",
    "CoEvolutionConfig",
    "CoEvolutionStatus",
    "StepPlan",
    "CoEvolutionEvent",
    "GroupLike",
    "coevolution_metrics",
]

logger = logging.getLogger(__name__)

GroupLike = GroupSpec | tuple[str, str, int]
CHECKPOINT_FILE = "coevolution.json"
# Creator event kinds that mean "the pass could not do its job" (as opposed to "nothing to do").
_CREATOR_FAILURES = frozenset({"llm_error", "output_invalid", "error"})


class CoEvolutionConfig(BaseModel):
    """Settings of the co-evolution loop (tester and creator have their own sections)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    creator_enabled: bool = Field(True, description="Run the skill creator at all.")
    async_creator: bool = Field(
        True,
        description="Run creator passes in a background thread (off the trainer's critical "
        "path). False runs each pass inside end_step: slower, but fully deterministic.",
    )
    test_outcome: Literal["reward", "won"] = Field(
        "reward",
        description="What the version tester counts as a success: 'reward' (the episode return "
        "above tester.success_threshold) or 'won' (the env's own success: ALFWorld's won, "
        "Search's exact match, ScienceWorld's completion; the published tester reads this, "
        "env_manager.py success_rate).",
    )
    reservoir_size: int = Field(200, ge=1, description="Episodes kept in the experience reservoir.")
    reservoir_dedup_by: DedupBy = Field(
        "episode",
        description="Reservoir keying: 'task_arm_outcome' keeps one episode per (task, test "
        "arm, outcome), newest wins (the published reservoir; the published configs set "
        "it); 'episode' keeps every episode (runs with few distinct tasks, e.g. the demo).",
    )
    keep_versions: int = Field(
        5,
        ge=1,
        description="Library versions kept on disk besides HEAD and live test arms (older "
        "ones are pruned). Was 'n_version_history', which now means the recommender's "
        "count of past version tests (creator.n_version_history).",
    )
    checkpoint_dir: str | None = Field(
        None,
        description="Where end_step writes coevolution.json (+ reservoir); None: no checkpoints.",
    )
    seed: int = Field(0, description="Seed of the tester's generator (assignment draws).")
    tester: TesterConfig = Field(default_factory=TesterConfig)
    creator: CreatorConfig = Field(default_factory=CreatorConfig)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "n_version_history" in data:
            data = dict(data)
            old = data.pop("n_version_history")
            if "keep_versions" in data:
                raise ValueError(
                    "coevolution.n_version_history was renamed to keep_versions (versions "
                    "kept on disk); give only keep_versions. The recommender's count of past "
                    "version tests is coevolution.creator.n_version_history."
                )
            logger.warning(
                "coevolution.n_version_history is deprecated: it sets keep_versions (library "
                "versions kept on disk); the published n_version_history (past version tests "
                "shown to the recommender) is coevolution.creator.n_version_history"
            )
            data["keep_versions"] = old
        if isinstance(data, Mapping) and "min_reservoir_size" in data:
            data = _move_min_reservoir_size(dict(data))
        return data

    @property
    def min_reservoir_size(self) -> int:
        """Reservoir episodes needed before a creator pass: ``creator.min_reservoir_size``
        (one setting, read here too; ``coevolution.min_reservoir_size`` in a config sets it)."""
        return self.creator.min_reservoir_size


def _move_min_reservoir_size(data: dict[str, Any]) -> dict[str, Any]:
    """``coevolution.min_reservoir_size`` (the old, second copy) -> ``creator.min_reservoir_size``.

    The creator decides when its reservoir is big enough; a value here that disagrees with
    the creator's own is an error rather than a silent pick of one of them.
    """
    value = data.pop("min_reservoir_size")
    creator = data.get("creator")
    if isinstance(creator, CreatorConfig):
        theirs = (
            creator.min_reservoir_size if "min_reservoir_size" in creator.model_fields_set else None
        )
        creator = creator.model_dump(exclude_unset=True)
    elif isinstance(creator, Mapping):
        creator = dict(creator)
        theirs = creator.get("min_reservoir_size")
    elif creator is None:
        creator, theirs = {}, None
    else:
        return {**data, "min_reservoir_size": value}  # let pydantic name the bad creator value
    if theirs is not None and theirs != value:
        raise ValueError(
            f"coevolution.min_reservoir_size ({value}) and coevolution.creator.min_reservoir_size "
            f"({theirs}) disagree; it is one setting: give only creator.min_reservoir_size"
        )
    if theirs is None:
        logger.warning(
            "coevolution.min_reservoir_size is deprecated: set coevolution.creator."
            "min_reservoir_size (the creator decides when its reservoir is big enough)"
        )
    data["creator"] = {**creator, "min_reservoir_size": value}
    return data


class CoEvolutionEvent(BaseModel):
    """Something the loop did this step, for logs and reports."""

    kind: Literal[
        "creator_submitted",
        "creator_result",
        "creator_failed",
        "candidate_committed",
        "test_started",
        "test_decided",
        "checkpoint",
        "episode_dropped",
    ]
    step: int
    message: str
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _redact(self) -> CoEvolutionEvent:
        # creator errors may quote an endpoint's reply with its headers: cut credentials
        # here, where every event is made, so no log, events.jsonl or report carries one
        from reskill_gym.redaction import redact, redact_obj

        self.message, self.data = redact(self.message), redact_obj(self.data)
        return self


@dataclass
class StepPlan:
    """Which library version every rollout of a step uses.

    ``versions[g][i]`` is rollout i of group g; ``arms`` says ``incumbent`` / ``candidate``
    (or ``head`` when no test is live).
    """

    versions: list[list[str]]
    arms: list[list[str]]
    head: str
    testing: bool
    p_candidate: float | None = None
    groups: list[GroupSpec] = field(default_factory=list)


@dataclass(frozen=True)
class CoEvolutionStatus:
    """Where the loop stands after the last call, for metrics and logs.

    The parts a loop does not have are None (``NoCoEvolution``: no creator, no reservoir),
    so a reader tells "absent" from "idle" without probing attributes.

    >>> NoCoEvolution(None).status()
    CoEvolutionStatus(testing=False, p_candidate=None, creator_busy=None, creator_passes=None, reservoir_size=None)
    """

    testing: bool
    """A version test is live (its arms split the groups)."""
    p_candidate: float | None
    """The live test's posterior probability that the candidate is best (None: no test)."""
    creator_busy: bool | None
    """A creator pass is running (None: no creator)."""
    creator_passes: int | None
    """Creator passes finished so far (None: no creator)."""
    reservoir_size: int | None
    """Episodes in the experience reservoir (None: no reservoir)."""


class CoEvolutionLike(Protocol):
    """The co-evolution API a trainer calls (see the module docstring for one step).

    ``CoEvolution`` and ``NoCoEvolution`` implement it; the local trainers, ``reskill
    evolve``, the veRL actor and :func:`coevolution_metrics` accept any implementation.
    ``last_step`` is the last step ``end_step`` closed (None before the first); the veRL
    actor moves it back when veRL resumes from an older checkpoint than this state.

    >>> co: CoEvolutionLike = NoCoEvolution(None)
    >>> co.plan_step([("g0", "task-1", 2)]).arms, co.end_step(1), co.last_step
    ([['head', 'head']], [], 1)
    """

    last_step: int | None

    @property
    def head(self) -> str | None:
        """The live version (None: no skills at all)."""
        ...

    def view(self, version: str | None = None) -> LibraryView | None:
        """Frozen view of ``version`` (default: the live one) for a rollout's wrapper."""
        ...

    def plan_step(self, groups: Sequence[GroupLike]) -> StepPlan:
        """The version of every rollout of this step's groups."""
        ...

    def record(self, episodes: Iterable[Episode]) -> None:
        """Finished episodes of this step."""
        ...

    def end_step(self, step: int) -> list[CoEvolutionEvent]:
        """Close ``step``: what the loop did, as events."""
        ...

    def status(self) -> CoEvolutionStatus:
        """Test, creator and reservoir state after the last call."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state to continue from."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        ...

    def save(self, directory: str | os.PathLike[str]) -> Path | None:
        """Write the checkpoint file into ``directory`` (None: nothing to save)."""
        ...

    def close(self) -> None:
        """Stop background work (a running creator pass)."""
        ...


def _as_group(g: GroupLike, i: int) -> GroupSpec:
    if isinstance(g, GroupSpec):
        return g
    group_id, task_id, n = g
    return GroupSpec(group_id=str(group_id), task_id=str(task_id), n=int(n))


class CoEvolution:
    """Library + tester + creator + reservoir, sequenced once per training step."""

    def __init__(
        self,
        library: SkillLibrary,
        tester: VersionTester,
        creator: SkillCreator | None,
        reservoir: Reservoir,
        config: CoEvolutionConfig,
    ) -> None:
        self.library = library
        self.tester = tester
        self.creator = creator
        self.reservoir = reservoir
        self.config = config
        self.last_step: int | None = None
        self._candidate_steps: dict[str, int] = {}
        self.retained: set[str] = set()
        """Versions a checkpoint kept elsewhere refers to (:meth:`retain`): never pruned."""

    @classmethod
    def create(
        cls,
        library: SkillLibrary,
        config: CoEvolutionConfig | None = None,
        *,
        creator: SkillCreator | None = None,
    ) -> CoEvolution:
        """Build every part from ``config`` (an LLM backend is made from the creator spec)."""
        config = config or CoEvolutionConfig()
        tester = VersionTester(config.tester, rng=np.random.default_rng(config.seed))
        if creator is None and config.creator_enabled:
            ccfg = config.creator
            if ccfg.artifacts_dir is None and config.checkpoint_dir is not None:
                ccfg = ccfg.model_copy(
                    update={"artifacts_dir": Path(config.checkpoint_dir) / "creator"}
                )
            creator = SkillCreator(ccfg)
        reservoir = Reservoir(capacity=config.reservoir_size, dedup_by=config.reservoir_dedup_by)
        return cls(library, tester, creator, reservoir, config)

    # ----- the adapter contract -----------------------------------------------------------
    @property
    def head(self) -> str:
        """The live version (the incumbent while a test runs)."""
        return self.library.head

    def view(self, version: str | None = None) -> LibraryView:
        """Frozen view of ``version`` (default HEAD) for a rollout's wrapper."""
        return self.library.view(version)

    def plan_step(self, groups: Sequence[GroupLike]) -> StepPlan:
        """Versions for every rollout: split inside each group while a test runs, else HEAD."""
        specs = [_as_group(g, i) for i, g in enumerate(groups)]
        head = self.head
        versions = self.tester.assign(specs, head=head)
        testing = self.tester.active
        arms = [
            [("incumbent" if v == head else "candidate") if testing else "head" for v in row]
            for row in versions
        ]
        return StepPlan(versions, arms, head, testing, self.tester.p_candidate, specs)

    def record(self, episodes: Iterable[Episode]) -> None:
        """Feed finished episodes to the reservoir and, for live test arms, to the tester."""
        eps = [e for e in episodes if e.error is None]
        self.reservoir.add(eps)
        if self.tester.active:
            arms = set(self.tester.versions)
            for e in eps:
                if e.library_version in arms:
                    won = self.config.test_outcome == "won"
                    self.tester.record(e.library_version, e.won if won else e.reward)

    def end_step(self, step: int) -> list[CoEvolutionEvent]:
        """Flush and maybe decide the test, collect/submit creator passes, checkpoint."""
        if self.last_step is not None and step <= self.last_step:
            logger.warning("end_step(%d) called again (last %d); ignored", step, self.last_step)
            return []
        events: list[CoEvolutionEvent] = []
        if self.tester.active:
            decision = self.tester.end_step(step)
            if decision is not None:
                events.append(self._apply_decision(decision, step))
        if self.creator is not None:
            if not self.config.async_creator and self._should_submit():
                events.append(self._submit(step))
                result = self.creator.wait()
            else:
                result = self.creator.poll()
            if result is not None:
                events.extend(self._take_result(result, step))
            if self.config.async_creator and self._should_submit():
                events.append(self._submit(step))
        referenced = set(self.tester.versions) if self.tester.active else set()
        self.library.prune(keep=self.config.keep_versions, referenced=referenced | self.retained)
        self.last_step = step
        if self.config.checkpoint_dir is not None:
            self.save(self.config.checkpoint_dir)
            events.append(
                CoEvolutionEvent(kind="checkpoint", step=step, message="checkpoint written")
            )
        for e in events:
            logger.info("step %d %s: %s", step, e.kind, e.message)
        return events

    # ----- internals ----------------------------------------------------------------------
    def _should_submit(self) -> bool:
        assert self.creator is not None
        return (
            not self.tester.active
            and not self.creator.busy
            and self.reservoir.ready(self.creator.config.min_reservoir_size)
        )

    def _submit(self, step: int) -> CoEvolutionEvent:
        assert self.creator is not None
        n_hist = self.creator.config.n_version_history
        history = version_test_history(self.library, last=n_hist) if n_hist else []
        self.creator.submit(self.reservoir.snapshot(), self.view(), step, history=history)
        return CoEvolutionEvent(
            kind="creator_submitted",
            step=step,
            message=f"creator pass on {len(self.reservoir)} episodes from {self.head}",
        )

    def _take_result(self, result: Any, step: int) -> list[CoEvolutionEvent]:
        events: list[CoEvolutionEvent] = []
        cost = result.cost.model_dump()
        failures = [e for e in result.events if e.kind in _CREATOR_FAILURES]
        if result.proposal is None:
            events.append(
                CoEvolutionEvent(
                    kind="creator_failed" if failures else "creator_result",
                    step=step,
                    message=f"no proposal: {result.reason or 'nothing to change'}",
                    data={
                        "reason": result.reason,
                        "cost": cost,
                        "events": [e.model_dump(mode="json") for e in result.events[-10:]],
                    },
                )
            )
            return events
        proposal = result.proposal
        if self.tester.active:
            return events  # cannot happen: passes are only submitted between tests
        head = self.head
        if proposal.base_version != head:
            # HEAD moved while the creator worked (e.g. a resume); rebase onto the live version.
            proposal = proposal.model_copy(update={"base_version": head})
        proposal = proposal.model_copy(update={"step": step})
        try:
            candidate = proposal.commit(self.library, set_head=False)
        except Exception as exc:  # a proposal that no longer applies is an event, not a crash
            events.append(
                CoEvolutionEvent(
                    kind="creator_failed",
                    step=step,
                    message=f"proposal did not apply to {head}: {exc}",
                    data={"operations": proposal.summary()},
                )
            )
            return events
        if candidate == head:
            events.append(
                CoEvolutionEvent(
                    kind="creator_result", step=step, message="proposal changes nothing"
                )
            )
            return events
        events.append(
            CoEvolutionEvent(
                kind="candidate_committed",
                step=step,
                message=f"{candidate} ({proposal.summary()}): {proposal.rationale[:160]}",
                data={
                    "candidate": candidate,
                    "base": head,
                    "operations": proposal.summary(),
                    "cost": cost,
                },
            )
        )
        immediate = self.tester.start(head, candidate, step)
        if immediate is not None:
            events.append(self._apply_decision(immediate, step))
        else:
            events.append(
                CoEvolutionEvent(
                    kind="test_started",
                    step=step,
                    message=f"testing {candidate} against {head}",
                    data={"incumbent": head, "candidate": candidate},
                )
            )
        return events

    def _apply_decision(self, decision: Decision, step: int) -> CoEvolutionEvent:
        if decision.accepted != self.head:
            self.library.checkout(decision.accepted, reason=f"version test: {decision.reason}")
        self.library.append_event(
            {"version_test": decision.to_dict()},
            reason=f"{decision.outcome} {decision.candidates[0]}",
            step=step,
            version=decision.accepted,
        )
        return CoEvolutionEvent(
            kind="test_decided",
            step=step,
            message=f"{decision.outcome}: {decision.candidates[0]} vs {decision.incumbent} -> HEAD {decision.accepted}",
            data=decision.to_dict(),
        )

    def status(self) -> CoEvolutionStatus:
        """The live test (after the last flush), the creator and the reservoir."""
        testing = self.tester.active
        return CoEvolutionStatus(
            testing=testing,
            p_candidate=self.tester.p_candidate if testing else None,
            creator_busy=self.creator.busy if self.creator is not None else None,
            creator_passes=self.creator.passes if self.creator is not None else None,
            reservoir_size=len(self.reservoir),
        )

    # ----- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (JSON-serialisable)."""
        return {
            "head": self.head,
            "last_step": self.last_step,
            "tester": self.tester.state_dict(),
            "reservoir": self.reservoir.state_dict(),
            "creator": self.creator.state_dict() if self.creator is not None else None,
            "retained": sorted(self.retained),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore; HEAD is moved back to the checkpointed version if it drifted."""
        self.tester.load_state_dict(state["tester"])
        self.reservoir.load_state_dict(state["reservoir"])
        if self.creator is not None and state.get("creator") is not None:
            self.creator.load_state_dict(state["creator"])
        self.last_step = state.get("last_step")
        self.retained = set(state.get("retained") or [])
        if self.library.head != state["head"]:
            logger.warning(
                "library HEAD %s differs from the checkpoint's %s; restoring the checkpoint's",
                self.library.head,
                state["head"],
            )
            self.library.checkout(state["head"], reason="resume from checkpoint")

    def retain(self) -> None:
        """Keep the live versions (HEAD and a running test's arms) from ever being pruned:
        a checkpoint saved now elsewhere (veRL's ``global_step_<k>``) may be resumed from
        after later steps replaced them."""
        self.retained |= {v for v in (self.head, *self.tester.versions) if v}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``coevolution.json`` atomically."""
        path = Path(directory) / CHECKPOINT_FILE
        atomic_write_json(path, self.state_dict())
        return path

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Read a checkpoint written by :meth:`save`."""
        path = Path(directory) / CHECKPOINT_FILE
        self.load_state_dict(json.loads(safe_files.read_text(path)))

    def close(self) -> None:
        """Stop a running creator pass (its result is discarded)."""
        if self.creator is not None:
            self.creator.cancel()


class NoCoEvolution:
    """Co-evolution off: every rollout sees one fixed version; nothing is recorded.

    The baseline arm of the step-time benchmark and plain-GRPO runs use it.
    """

    def __init__(self, library: SkillLibrary | LibraryView | None) -> None:
        if isinstance(library, SkillLibrary):
            library = library.view()
        self._view = library
        self.last_step: int | None = None

    @property
    def head(self) -> str | None:
        return self._view.version if self._view is not None else None

    def view(self, version: str | None = None) -> LibraryView | None:
        return self._view

    def plan_step(self, groups: Sequence[GroupLike]) -> StepPlan:
        specs = [_as_group(g, i) for i, g in enumerate(groups)]
        head = self.head or ""
        return StepPlan(
            [[head] * g.n for g in specs], [["head"] * g.n for g in specs], head, False, None, specs
        )

    def record(self, episodes: Iterable[Episode]) -> None:
        return None

    def end_step(self, step: int) -> list[CoEvolutionEvent]:
        self.last_step = step
        return []

    def status(self) -> CoEvolutionStatus:
        return CoEvolutionStatus(False, None, None, None, None)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def save(self, directory: str | os.PathLike[str]) -> Path | None:
        """Nothing to save: the fixed view is part of the run's configuration."""
        return None

    def close(self) -> None:
        return None


def coevolution_metrics(
    coevo: CoEvolutionLike, events: Iterable[CoEvolutionEvent]
) -> dict[str, float]:
    """The step's co-evolution metrics, the same keys for every trainer (local and veRL).

    ``versions/testing`` and ``versions/p_candidate`` (the test after this step's flush),
    counts of this step's events (``versions/creator_submitted``, ``versions/creator_failed``,
    ``versions/candidate_committed``, ``versions/test_started``, ``versions/decisions``,
    ``versions/accepted``, ``versions/rejected``), the creator (``creator/busy``,
    ``creator/passes``, ``creator/reservoir``) and ``skills/library_size``. Episode metrics
    (per arm, parse outcomes, ...) come from ``reskill_gym.rollout.episode_metrics``.

    >>> coevolution_metrics(NoCoEvolution(None), [])["versions/testing"]
    0.0
    """
    evs = list(events)
    status = coevo.status()
    m: dict[str, float] = {}
    m["versions/testing"] = float(status.testing)
    p = status.p_candidate
    m["versions/p_candidate"] = float(p) if p is not None else float("nan")
    kinds: dict[str, int] = {}
    for e in evs:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    for kind in ("creator_submitted", "creator_failed", "candidate_committed", "test_started"):
        m[f"versions/{kind}"] = float(kinds.get(kind, 0))
    decided = [e for e in evs if e.kind == "test_decided"]
    m["versions/decisions"] = float(len(decided))
    m["versions/accepted"] = float(sum(e.data.get("outcome") == "accept" for e in decided))
    m["versions/rejected"] = float(sum(e.data.get("outcome") == "reject" for e in decided))
    if status.creator_busy is not None:
        m["creator/busy"] = float(status.creator_busy)
    if status.creator_passes is not None:
        m["creator/passes"] = float(status.creator_passes)
    if status.reservoir_size is not None:
        m["creator/reservoir"] = float(status.reservoir_size)
    view = coevo.view()
    m["skills/library_size"] = float(len(view)) if view is not None else 0.0
    return m
