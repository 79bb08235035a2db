"""What a creator pass returns: the proposal, its verification, its cost, and the events.

Exports ``CreatorEvent``, ``EventKind``, ``PassCost``, ``Check``, ``SkillVerification``,
``AssertionRef``, ``Proposal`` and ``CreatorResult``.

A pass never raises into the trainer: every failure (an LLM error, an answer that never fit
its schema, a skill the verifier rejected, nothing to propose) is a ``CreatorEvent`` with
the stage, the reason and, when an LLM answered, its raw text. The ``Proposal`` is data
only; the caller commits it (``Proposal.commit``), so a cancelled or failed pass cannot
leave half a library behind.

>>> from reskill_gym.skills import Operation
>>> p = Proposal(operations=[Operation.delete("old-hint")], rationale="never helps",
...              base_version="abc123", proposed_by="rules")
>>> p.summary()
'delete old-hint'
>>> CreatorEvent(kind="nothing_to_propose", stage="reservoir", message="no failures").kind
'nothing_to_propose'
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reskill_gym.skills import Operation

if TYPE_CHECKING:  # pragma: no cover
    from reskill_gym.skills import SkillLibrary

__all__ = [
    "CreatorEvent",
    "EventKind",
    "PassCost",
    "Check",
    "SkillVerification",
    "AssertionRef",
    "Proposal",
    "CreatorResult",
]

EventKind = Literal[
    "pass_started",
    "pass_finished",
    "not_ready",
    "nothing_to_propose",
    "llm_error",
    "output_invalid",
    "rejected",
    "verification_failed",
    "skill_verified",
    "assertions_updated",
    "analysis_done",
    "fallback",
    "cancelled",
    "busy",
    "error",
]
Stage = Literal[
    "reservoir", "analysis", "diagnosis", "recommend", "author", "verify", "pass", "rules"
]


class CreatorEvent(BaseModel):
    """One thing that happened in a pass (logged, kept on the creator, returned with results)."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    stage: Stage
    message: str
    step: int | None = None
    episode_id: str | None = None
    skill: str | None = None
    raw_text: str | None = Field(None, description="The LLM's raw answer, when one was given.")
    errors: list[str] = Field(default_factory=list)
    time: float = Field(default_factory=time.time)


class PassCost(BaseModel):
    """Tokens, money and time of one pass (LLM passes; the rules pass costs only time)."""

    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    wall_s: float = 0.0


class Check(BaseModel):
    """One verifier check on one skill."""

    name: Literal["schema", "content_length", "regex", "trigger_rate", "duplicate", "operation"]
    ok: bool
    detail: str = ""


class SkillVerification(BaseModel):
    """The verifier's report on one operation (see ``reskill_gym.creator.verify``)."""

    op: Literal["add", "modify", "delete"]
    name: str
    passed: bool
    checks: list[Check] = Field(default_factory=list)
    trigger_rate: float | None = Field(
        None, description="Share of targeted trajectories where the trigger fired on a turn."
    )
    targeted_episodes: int = 0
    attempts: int = Field(1, description="Authoring tries it took (1 for the rules creator).")

    def feedback(self) -> str:
        """The failed checks as one message for the author's next try."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)


class AssertionRef(BaseModel):
    """An assertion as it motivated a proposal (a copy: the store keeps evolving)."""

    id: str
    text: str
    passed: int = 0
    failed: int = 0
    example_episode_ids: list[str] = Field(default_factory=list)


class Proposal(BaseModel):
    """A verified library revision, ready for the caller to commit and test."""

    operations: list[Operation]
    rationale: str
    assertions: list[AssertionRef] = Field(default_factory=list)
    base_version: str
    cost: PassCost = Field(default_factory=PassCost)
    proposed_by: str
    verification: dict[str, SkillVerification] = Field(default_factory=dict)
    step: int | None = None

    def summary(self) -> str:
        """``add x, modify y``: the operations in one line."""
        return ", ".join(f"{op.op} {op.name}" for op in self.operations)

    def provenance(self) -> dict[str, Any]:
        """What the library history should keep about this proposal (``HistoryEntry.extra``)."""
        return {
            "creator": {
                "proposed_by": self.proposed_by,
                "base_version": self.base_version,
                "assertions": [a.model_dump() for a in self.assertions],
                "cost": self.cost.model_dump(),
                "verification": {
                    name: {
                        "passed": v.passed,
                        "trigger_rate": v.trigger_rate,
                        "targeted_episodes": v.targeted_episodes,
                        "attempts": v.attempts,
                    }
                    for name, v in self.verification.items()
                },
            }
        }

    def commit(self, library: SkillLibrary, *, set_head: bool = True) -> str:
        """Commit onto ``base_version`` of ``library``; returns the new version id.

        ``set_head=False`` stores the candidate without moving HEAD (what a version test
        wants: the incumbent stays live until the test decides).
        """
        return library.commit(
            self.operations,
            reason=self.rationale,
            step=self.step,
            proposed_by=f"creator:{self.proposed_by}",
            extra=self.provenance(),
            set_head=set_head,
            base=self.base_version,
        )


class CreatorResult(BaseModel):
    """A finished pass: the proposal (or None and why), its events and its cost."""

    proposal: Proposal | None = None
    reason: str = Field("", description="Why there is no proposal (empty when there is one).")
    events: list[CreatorEvent] = Field(default_factory=list)
    cost: PassCost = Field(default_factory=PassCost)
    step: int | None = None
    cancelled: bool = False
