"""What both creators (LLM and rules) share: the pass context, sampling, the final proposal.

Exports ``PassContext``, ``PassCancelled``, ``sample_for_analysis`` and ``finish_proposal``.

A pass works on a *snapshot* of the reservoir and a *copy* of the assertion store; it
reports through ``PassContext.event`` and checks ``PassContext.checkpoint`` between stages
so a cancel takes effect at the next stage boundary.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reskill_gym.creator.artifacts import PassArtifacts
from reskill_gym.creator.assertions import Assertion, AssertionStore
from reskill_gym.creator.config import CreatorConfig
from reskill_gym.creator.context import VersionTestRecord
from reskill_gym.creator.reservoir import Reservoir
from reskill_gym.creator.results import (
    AssertionRef,
    CreatorEvent,
    EventKind,
    Proposal,
    SkillVerification,
)
from reskill_gym.creator.rule_assertions import RuleAssertionSet
from reskill_gym.creator.verify import Verifier
from reskill_gym.episode import Episode
from reskill_gym.llm import LLMError, LLMOutputError
from reskill_gym.skills import LibraryView, Operation

__all__ = ["PassContext", "PassCancelled", "sample_for_analysis", "finish_proposal"]

log = logging.getLogger("reskill_gym.creator")


class PassCancelled(Exception):
    """Raised at a stage boundary after ``SkillCreator.cancel()``."""


@dataclass
class PassContext:
    """Inputs and running state of one pass.

    ``store`` holds the project pipeline's (and the rules creator's) assertions,
    ``rule_assertions`` the published pipeline's rule-graded ones; ``history`` is the recent
    version-test decisions and ``artifacts`` the pass's folder writer.
    """

    config: CreatorConfig
    reservoir: Reservoir
    view: LibraryView
    step: int | None
    store: AssertionStore
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[CreatorEvent] = field(default_factory=list)
    reason: str = ""
    rule_assertions: RuleAssertionSet = field(default_factory=RuleAssertionSet)
    history: list[VersionTestRecord] = field(default_factory=list)
    artifacts: PassArtifacts = field(default_factory=lambda: PassArtifacts(None, None))

    def __post_init__(self) -> None:
        self.verifier = Verifier(
            self.view,
            max_content_chars=self.config.max_skill_content_chars,
            min_trigger_rate=self.config.min_trigger_rate,
            duplicate_threshold=self.config.duplicate_threshold,
        )
        self.rng = np.random.default_rng(
            [self.config.seed, self.step if self.step is not None else 0]
        )

    def event(self, kind: EventKind, stage: str, message: str, **kw: object) -> CreatorEvent:
        ev = CreatorEvent(kind=kind, stage=stage, message=message, step=self.step, **kw)
        self.events.append(ev)
        level = (
            logging.WARNING if kind in ("llm_error", "output_invalid", "error") else logging.INFO
        )
        log.log(level, "creator %s/%s: %s", stage, kind, message)
        return ev

    def llm_failure(self, stage: str, err: LLMError, **kw: object) -> str:
        """Record a failed LLM call as an event that keeps the raw answer; returns that raw
        text (or the error) for the pass's artifacts. Every LLM creator reports failures here."""
        if isinstance(err, LLMOutputError):
            self.event(
                "output_invalid",
                stage,
                f"answer never fit the schema: {err}",
                raw_text=err.raw_text,
                errors=list(err.errors),
                **kw,
            )
            return err.raw_text or str(err)
        self.event("llm_error", stage, f"{type(err).__name__}: {err}", **kw)
        return f"{type(err).__name__}: {err}"

    def stop(self, kind: EventKind, stage: str, message: str, **kw: object) -> None:
        """Record why the pass ends without a proposal (returns None to the caller)."""
        self.reason = message
        self.event(kind, stage, message, **kw)

    def checkpoint(self) -> None:
        if self.cancel.is_set():
            raise PassCancelled()

    def episodes_by_id(self, ids: Sequence[str]) -> list[Episode]:
        out = []
        for i in dict.fromkeys(ids):
            ep = self.reservoir.get(i)
            if ep is not None:
                out.append(ep)
        return out


def sample_for_analysis(ctx: PassContext) -> list[Episode] | None:
    """Sampled groups flattened and capped (failures first, successes to the ratio), or None
    with the reason recorded when there is nothing to learn from."""
    cfg = ctx.config
    if not ctx.reservoir.ready(1):
        ctx.stop("nothing_to_propose", "reservoir", "the reservoir is empty")
        return None
    groups = ctx.reservoir.sample_groups(cfg.n_groups, cfg.min_success_ratio, ctx.rng)
    eps = [e for g in groups for e in g.episodes]
    fails = [e for e in eps if not e.success]
    wins = [e for e in eps if e.success]
    if not fails:
        ctx.stop(
            "nothing_to_propose",
            "reservoir",
            f"no failed episodes among {len(eps)} sampled ({ctx.reservoir.counts()}): "
            "nothing to diagnose",
        )
        return None
    cap = cfg.max_analyzed_episodes
    n_wins = min(len(wins), max(math.ceil(cap * cfg.min_success_ratio), cap - len(fails)))
    n_fails = min(len(fails), cap - n_wins)
    chosen = fails[:n_fails] + wins[:n_wins]
    if not wins:
        ctx.event(
            "rejected", "reservoir", "no successful episode sampled: diagnosing failures alone"
        )
    return chosen


def finish_proposal(
    ctx: PassContext,
    accepted: list[tuple[Operation, SkillVerification, list[Assertion], str]],
    proposed_by: str,
) -> Proposal | None:
    """Turn verified operations into a ``Proposal`` (None with a reason when there are none)."""
    if not accepted:
        ctx.stop("nothing_to_propose", "verify", "no candidate passed verification")
        return None
    refs: dict[str, AssertionRef] = {}
    reasons = []
    for op, _rep, assertions, why in accepted:
        for a in assertions:
            refs[a.id] = AssertionRef(
                id=a.id,
                text=a.text,
                passed=a.passed,
                failed=a.failed,
                example_episode_ids=list(a.example_episode_ids),
            )
        ids = ",".join(a.id for a in assertions)
        reasons.append(f"{op.op} {op.name}" + (f" [{ids}]" if ids else "") + f": {why}")
    return Proposal(
        operations=[op for op, *_ in accepted],
        rationale="; ".join(reasons)[:2000],
        assertions=list(refs.values()),
        base_version=ctx.view.version,
        proposed_by=proposed_by,
        verification={op.name: rep for op, rep, *_ in accepted},
        step=ctx.step,
    )
