"""The JSON answers each LLM role must give, as pydantic models (validated, fed back on error).

Exports ``EpisodeAnalysis``, ``DiagnosisOutput``, ``Recommendation``,
``RecommendationOutput`` and ``AuthoredSkill``.

Limits that are *policy* (content length, trigger safety, trigger rate, duplicates) are
not in these schemas: the verifier checks them and its feedback goes to the author's next
try, which is more useful to a model than a bare schema error.

>>> a = AuthoredSkill(name="open-then-take", description="Open before taking.",
...                   content="Use `open X` first.", trigger_type="action_pattern",
...                   trigger_pattern="^take ")
>>> a.to_skill(step=3, proposed_by="openai", rationale="A1").trigger.pattern
'^take '
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reskill_gym.creator.assertions import AssertionChange
from reskill_gym.skills import Provenance, Skill, Trigger

__all__ = [
    "EpisodeAnalysis",
    "DiagnosisOutput",
    "Recommendation",
    "RecommendationOutput",
    "AuthoredSkill",
]


class EpisodeAnalysis(BaseModel):
    """What the analyst says about one episode."""

    episode_id: str = Field(description="Id of the analysed episode.")
    outcome: Literal["success", "failure"]
    summary: str = Field(max_length=600, description="One or two sentences on what happened.")
    mistakes: list[str] = Field(default_factory=list, max_length=8)
    good_moves: list[str] = Field(default_factory=list, max_length=8)
    helpful_skills: list[str] = Field(default_factory=list, description="Skill names that helped.")
    misleading_skills: list[str] = Field(
        default_factory=list, description="Skill names that misled the agent."
    )


class DiagnosisOutput(BaseModel):
    """The assertion changes a batch diagnosis decides."""

    changes: list[AssertionChange] = Field(default_factory=list, max_length=20)


class Recommendation(BaseModel):
    """One proposed operation, motivated by failing assertions."""

    op: Literal["add", "modify", "delete"]
    skill_name: str = Field(max_length=80, description="New name (add) or existing name.")
    assertion_ids: list[str] = Field(min_length=1, description="Failing assertions addressed.")
    reason: str = Field(max_length=600)
    target_episode_ids: list[str] = Field(
        default_factory=list, description="Episodes where the skill should have fired."
    )


class RecommendationOutput(BaseModel):
    """The recommender's answer."""

    recommendations: list[Recommendation] = Field(default_factory=list, max_length=10)


class AuthoredSkill(BaseModel):
    """A skill as the author writes it; ``to_skill`` builds (and validates) the real thing."""

    name: str = Field(description="lowercase-words-with-hyphens")
    description: str = Field(min_length=1, max_length=1024)
    when_to_use: str = ""
    content: str = Field(min_length=1, description="The injected hint.")
    trigger_type: Literal[
        "general", "beginning", "action_pattern", "observation_pattern", "retrieval"
    ]
    trigger_pattern: str | None = None
    top_k: int | None = Field(None, ge=1, le=20)
    examples: str = ""

    def to_skill(self, *, step: int | None, proposed_by: str, rationale: str) -> Skill:
        """Raises ``SkillError``/``ValidationError`` naming the bad field (name, trigger...)."""
        pattern = self.trigger_pattern or None
        if self.trigger_type not in ("action_pattern", "observation_pattern"):
            pattern = None
        trigger = Trigger(
            type=self.trigger_type,
            pattern=pattern,
            top_k=self.top_k if self.trigger_type == "retrieval" else None,
        )
        return Skill(
            name=self.name,
            description=self.description,
            when_to_use=self.when_to_use,
            content=self.content,
            examples=self.examples,
            trigger=trigger,
            created_at_step=step,
            provenance=Provenance(proposed_by=proposed_by, rationale=rationale[:500] or None),
        )
