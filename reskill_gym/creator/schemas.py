"""The JSON answers each LLM role must give, as pydantic models (validated, fed back on error).

Exports, project pipeline: ``EpisodeAnalysis``, ``DiagnosisOutput``, ``Recommendation``,
``RecommendationOutput`` and ``AuthoredSkill``; published pipeline: ``AssertionOperation``,
``DiagnosisReport``, ``RecommendedOperation``, ``RecommenderOutput``, ``SkillContentSpec``,
``ContentChanges``, ``AuthoredSkillSpec``, ``SkillChanges``, ``AuthoredOperation`` and
``AuthoredRevision`` (the shapes of the published prompts' JSON answers).

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

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from reskill_gym.creator.assertions import AssertionChange
from reskill_gym.creator.insights import InsightGroup
from reskill_gym.creator.rule_assertions import CheckType
from reskill_gym.skills import Provenance, Skill, Trigger
from reskill_gym.skills.triggers import TriggerType

__all__ = [
    "EpisodeAnalysis",
    "DiagnosisOutput",
    "Recommendation",
    "RecommendationOutput",
    "AuthoredSkill",
    "AssertionOperation",
    "DiagnosisReport",
    "RecommendedOperation",
    "RecommenderOutput",
    "SkillContentSpec",
    "ContentChanges",
    "AuthoredSkillSpec",
    "SkillChanges",
    "AuthoredOperation",
    "AuthoredRevision",
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


# ---------------------------------------------------------------------------------------
# The published pipeline's answers (contrastive analysis is ``insights.GroupInsight``).
# ---------------------------------------------------------------------------------------


class AssertionOperation(BaseModel):
    """One add / modify / delete of a rule-graded assertion proposed by the diagnosis."""

    op: Literal["add", "modify", "delete"]
    assertion_id: str | None = Field(None, description="Existing id (modify/delete).")
    check_type: CheckType | None = Field(None, description="One of the nine check types (add).")
    params: dict[str, Any] | None = Field(None, description="The check type's parameters.")
    description: str = Field("", max_length=400)
    rationale: str = Field("", max_length=600)

    @model_validator(mode="after")
    def _check(self) -> AssertionOperation:
        if self.op == "add" and self.check_type is None:
            raise ValueError("an 'add' needs a check_type")
        if self.op in ("modify", "delete") and not self.assertion_id:
            raise ValueError(f"a {self.op!r} needs the assertion_id of a live assertion")
        return self


class DiagnosisReport(BaseModel):
    """The batch diagnosis: assertion changes, a quantitative diagnosis, insight clusters."""

    assertion_operations: list[AssertionOperation] = Field(default_factory=list, max_length=20)
    diagnosis: str = Field("", max_length=4000)
    priority_modes: list[str] = Field(default_factory=list, max_length=12)
    insight_groups: list[InsightGroup] = Field(default_factory=list, max_length=24)


class RecommendedOperation(BaseModel):
    """What to change and why; the author writes the content."""

    op: Literal["add", "modify", "delete"]
    target: str | None = Field(None, description="Existing skill name (modify/delete).")
    intent: str = Field(max_length=1500)
    evidence: str = Field("", max_length=1500)
    referenced_insights: list[int] = Field(default_factory=list, max_length=20)
    trigger_suggestion: str | None = Field(None, max_length=40)


class RecommenderOutput(BaseModel):
    """The recommender's plan: 1-3 operations (more are cut by the pipeline)."""

    reasoning: str = Field("", max_length=1500)
    operations: list[RecommendedOperation] = Field(min_length=1, max_length=8)


def _as_list(v: Any) -> Any:
    if isinstance(v, str):
        return [v] if v.strip() else []
    return v


class SkillContentSpec(BaseModel):
    """A skill's three sections; their total length is what the verifier limits."""

    when_to_use: str = Field("", max_length=2000)
    action: str = Field(min_length=1, max_length=4000)
    examples: list[str] = Field(default_factory=list, max_length=6)

    _examples = field_validator("examples", mode="before")(_as_list)


class ContentChanges(BaseModel):
    """The sections a modify replaces (omitted ones are kept)."""

    when_to_use: str | None = Field(None, max_length=2000)
    action: str | None = Field(None, max_length=4000)
    examples: list[str] | None = Field(None, max_length=6)

    _examples = field_validator("examples", mode="before")(_as_list)


class AuthoredSkillSpec(BaseModel):
    """A new skill as the author writes it."""

    name: str = Field(max_length=80)
    content: SkillContentSpec
    trigger_type: TriggerType = "general"
    trigger_pattern: str | None = Field(None, max_length=400)


class SkillChanges(BaseModel):
    """What a modify changes."""

    content: ContentChanges | None = None
    trigger_type: TriggerType | None = None
    trigger_pattern: str | None = Field(None, max_length=400)


class AuthoredOperation(BaseModel):
    """One operation of the authored revision (published ``type``/``skill``/``changes`` form)."""

    type: Literal["add", "modify", "delete"]
    skill: AuthoredSkillSpec | None = None
    target_skill_name: str | None = None
    changes: SkillChanges | None = None
    reasoning: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> AuthoredOperation:
        if self.type == "add" and self.skill is None:
            raise ValueError("an 'add' needs 'skill' with name, content and trigger_type")
        if self.type in ("modify", "delete") and not self.target_skill_name:
            raise ValueError(f"a {self.type!r} needs 'target_skill_name'")
        if self.type == "modify" and self.changes is None:
            raise ValueError("a 'modify' needs 'changes'")
        return self

    @property
    def name(self) -> str:
        return (self.skill.name if self.skill is not None else self.target_skill_name) or "?"


class AuthoredRevision(BaseModel):
    """The whole library revision, written in one call."""

    version_reasoning: str = Field("", max_length=1500)
    operations: list[AuthoredOperation] = Field(min_length=1, max_length=8)
