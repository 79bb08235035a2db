"""Configuration of the skill creator: one pydantic model, help text on every field.

Exports ``CreatorConfig``, ``CreatorSampling``, ``StageSampling`` and ``AssertionText``.

Defaults are the published reference values (``n_groups`` 30, ``min_success_ratio`` 0.3,
``min_reservoir_size`` 100, ``max_skill_content_chars`` 500, ``min_trigger_rate`` 0.5,
``max_proposal_retries`` 3, ``analysis_workers`` 16, ``n_version_history`` 5, at most 15
assertions, 8 skills in the library). ``pipeline`` picks the LLM creator's algorithm:
``published`` (the default: contrastive analysis per task group, rule-graded typed
assertions, one-call author verified over the whole reservoir) or ``project`` (per-episode
analysis, LLM-counted assertions, per-skill authoring verified on targeted episodes). The
``rules`` backend ignores it. Unknown keys are rejected so a typo in a run config fails at
start with the field name.

>>> cfg = CreatorConfig()
>>> cfg.backend, cfg.pipeline, cfg.n_groups, cfg.min_trigger_rate
('rules', 'published', 30, 0.5)
>>> pub = CreatorConfig.published()
>>> pub.sampling.analysis, pub.sampling.author, pub.assertion_text
(StageSampling(temperature=0.2, max_tokens=4096), StageSampling(temperature=0.3, max_tokens=4096), 'published')
>>> CreatorConfig(min_success_ratio=1.5)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for CreatorConfig
min_success_ratio
  Input should be less than or equal to 1 ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CreatorConfig", "CreatorSampling", "StageSampling", "AssertionText"]

AssertionText = Literal["parsed", "published"]


class StageSampling(BaseModel):
    """How one creator stage samples its LLM answers (None: the backend's defaults,
    ``LLMConfig.temperature`` 0 and ``max_tokens`` 1024)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temperature: float | None = Field(None, ge=0.0, description="Sampling temperature.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens in one answer.")


class CreatorSampling(BaseModel):
    """Per-stage sampling of the LLM creator (both pipelines have the four stages)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    analysis: StageSampling = Field(
        default_factory=StageSampling,
        description="Episode / contrastive group analysis (published: 0.2, 4096 tokens).",
    )
    diagnosis: StageSampling = Field(
        default_factory=StageSampling,
        description="Batch diagnosis and assertions (published: 0.2, 4096 tokens).",
    )
    recommend: StageSampling = Field(
        default_factory=StageSampling,
        description="The recommender's operations (published: 0.3, 4096 tokens).",
    )
    author: StageSampling = Field(
        default_factory=StageSampling,
        description="The author's skill text (published: 0.3, 4096 tokens).",
    )

    @classmethod
    def published(cls) -> CreatorSampling:
        """The published stages' ``llm.chat`` arguments (``episode_analyzer.py``,
        ``batch_diagnoser.py``: temperature 0.2; ``skill_recommender.py``,
        ``skill_author.py``: 0.3; all ``max_tokens`` 4096)."""
        low, high = (
            StageSampling(temperature=0.2, max_tokens=4096),
            StageSampling(temperature=0.3, max_tokens=4096),
        )
        return cls(analysis=low, diagnosis=low, recommend=high, author=high)


class CreatorConfig(BaseModel):
    """Everything one skill-creator pass needs to know (see ``SkillCreator``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    backend: str = Field(
        "rules",
        description="'rules' (offline statistics, no LLM) or an LLM backend spec: "
        "anthropic[:<model>], bedrock:<model>, openai:<base_url>#<model>, local[:<path>].",
    )
    llm_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra LLMConfig fields / constructor arguments for the LLM backend "
        "(timeout_s, max_retries, cache_dir, prices, api_key ...).",
    )
    pipeline: Literal["published", "project"] = Field(
        "published",
        description="LLM creator algorithm: 'published' (the ReSkill paper's pipeline: one "
        "contrastive call per task group, rule-graded typed assertions, recommender, one-call "
        "author, trigger rate over the whole reservoir) or 'project' (per-episode analysis, "
        "LLM-counted assertions, per-skill author verified on the episodes it targets).",
    )
    sampling: CreatorSampling = Field(
        default_factory=CreatorSampling,
        description="Per-stage temperature and max_tokens (analysis, diagnosis, recommend, "
        "author); unset: the backend's defaults (temperature 0, 1024 tokens). "
        "CreatorConfig.published() has the published values.",
    )
    assertion_text: AssertionText = Field(
        "parsed",
        description="What rule-graded assertions match: 'parsed' (the command that ran and "
        "the bare observations, case-insensitive: the project's) or 'published' (as the "
        "published engine: the model's whole reply for action checks, the prompt it saw for "
        "observation checks, when the rollout records prompts (rollout.record_prompts), else "
        "the bare observation).",
    )
    n_groups: int = Field(30, ge=1, description="Task groups sampled from the reservoir per pass.")
    min_success_ratio: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="published: minimum share of sampled task groups with at least one "
        "success (failure-only groups fill the rest first); project: minimum share of "
        "successful episodes among the sampled ones. Either way where the reservoir allows.",
    )
    max_group_episodes: int = Field(
        6, ge=1, le=26, description="published: episodes per task group shown to the analyst."
    )
    max_trace_actions: int = Field(
        30,
        ge=10,
        description="published: traces longer than this show the first and last 5 actions.",
    )
    max_assertions: int = Field(
        15, ge=1, description="published: live rule-graded assertions at most (adds refused)."
    )
    min_insight_groups: int = Field(
        3, ge=1, description="published: fewest insight clusters the diagnosis is asked for."
    )
    max_insight_groups: int = Field(
        8, ge=1, description="published: most insight clusters (extra ones are merged)."
    )
    n_version_history: int = Field(
        5,
        ge=0,
        description="published: the recommender sees the last N version-test decisions.",
    )
    action_vocabulary: str = Field(
        "auto",
        description="published: text describing the env's actions for the recommender and "
        "author; 'auto' = the built-in table for alfworld/scienceworld/search plus the "
        "commonest action templates in the reservoir; '' = none.",
    )
    force_general_trigger: bool = Field(
        False,
        description="published: every authored skill gets a 'general' trigger (fires on "
        "every turn); the author is told so and patterns are dropped.",
    )
    max_library_skills: int | None = Field(
        8,
        ge=1,
        description="A proposal may not grow the library past this many skills (published: "
        "8); None = no limit.",
    )
    artifacts_dir: Path | None = Field(
        None,
        description="Folder for per-step pass artifacts (step_<N>/: every stage's inputs, "
        "prompts, raw answers, graded assertions, verification). None: CoEvolution uses "
        "<checkpoint_dir>/creator when it has one, else nothing is written.",
    )
    min_reservoir_size: int = Field(
        100, ge=1, description="Episodes the reservoir needs before a pass is worth running."
    )
    max_analyzed_episodes: int = Field(
        64,
        ge=1,
        description="Cap on episodes sent to per-episode analysis in one pass (LLM cost bound).",
    )
    analysis_workers: int = Field(
        16, ge=1, description="Concurrent per-episode analysis calls (bounded thread pool)."
    )
    max_skill_content_chars: int = Field(
        500,
        ge=20,
        description="Limit on a skill's injected text: when-to-use + action + examples "
        "(reskill_gym.skills.Skill.counted_chars, the published rule).",
    )
    min_trigger_rate: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A new or modified skill's trigger must fire on at least one turn in this "
        "share of trajectories, replayed turn by turn: the whole reservoir (published) or the "
        "trajectories the skill targets (project).",
    )
    duplicate_threshold: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="A skill whose text is this similar (max of token Jaccard and difflib "
        "ratio) to an existing skill is rejected as a near-duplicate.",
    )
    max_proposal_retries: int = Field(
        3, ge=1, description="Authoring tries per skill, each fed the verifier's feedback."
    )
    max_operations_per_pass: int = Field(
        3,
        ge=1,
        description="At most this many add/modify/delete operations in one proposal "
        "(published: the recommender proposes 1-3).",
    )
    failing_assertion_min_rate: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="An assertion counts as failing when failed/(failed+passed) reaches this.",
    )
    max_assertion_examples: int = Field(
        5, ge=1, description="Example episode ids kept per assertion."
    )
    max_episode_chars: int = Field(
        3000, ge=200, description="Budget for one episode rendered into a prompt."
    )
    max_observation_chars: int = Field(
        240, ge=20, description="Each observation is cut to this many chars in prompts."
    )
    prompts_dir: Path | None = Field(
        None,
        description="Folder of Markdown prompt templates (analyst.md, diagnostician.md, "
        "recommender.md, author.md) overriding the packaged ones, file by file.",
    )
    rules_min_support: int = Field(
        3, ge=1, description="rules: a statistic needs this many failing episodes to count."
    )
    rules_min_enrichment: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="rules: an action n-gram must be this much more frequent in successful "
        "than in failed episodes of the same task type.",
    )
    rules_max_p_value: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="rules: an action n-gram's enrichment must also be unlikely by chance: "
        "a one-sided Fisher exact test (successes vs failures of the task type, with vs "
        "without the n-gram) at most this p-value, and at least rules_min_support successes "
        "must show it. 1.0 keeps only the support count.",
    )
    rules_command_templates: bool = Field(
        True,
        description="rules: per task type, propose the exact next command successful "
        "episodes took at one state (right after `go to TARGET N`: `move OBJECT N to TARGET "
        "N`), shown at that state by an action_pattern trigger, instead of the task type's "
        "verb n-gram. Same support and significance rules as the n-grams. false: n-grams "
        "only, the creator of earlier runs.",
    )
    rules_loop_length: int = Field(
        3, ge=2, description="rules: the same action this many times in a row is a loop."
    )
    seed: int = Field(0, description="Seed of the group sampling generator.")

    @model_validator(mode="after")
    def _check(self) -> CreatorConfig:
        from reskill_gym.llm.config import check_llm_options

        check_llm_options(self.llm_options, "llm_options")
        if self.max_analyzed_episodes < 2:
            raise ValueError("max_analyzed_episodes must be >= 2 (a success and a failure)")
        if self.prompts_dir is not None and not Path(self.prompts_dir).is_dir():
            raise ValueError(f"prompts_dir {self.prompts_dir} is not a folder")
        if self.min_insight_groups > self.max_insight_groups:
            raise ValueError(
                f"min_insight_groups ({self.min_insight_groups}) > max_insight_groups "
                f"({self.max_insight_groups}); lower the first or raise the second"
            )
        return self

    @classmethod
    def published(cls, **overrides: Any) -> CreatorConfig:
        """The published creator: its pipeline, per-stage sampling and assertion grading.

        The thresholds every creator shares (``n_groups`` 30, ``min_success_ratio`` 0.3,
        ``min_trigger_rate`` 0.5, ...) are the published values already; the backend stays
        the caller's (published: Bedrock Claude Sonnet 4.5). ``overrides`` replace any field.
        """
        base: dict[str, Any] = {
            "pipeline": "published",
            "sampling": CreatorSampling.published(),
            "assertion_text": "published",
        }
        return cls(**{**base, **overrides})

    @property
    def is_rules(self) -> bool:
        """True for the offline statistics creator."""
        return self.backend.strip().lower() == "rules"
