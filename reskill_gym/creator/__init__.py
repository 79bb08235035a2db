"""The skill creator: turns recent rollouts into verified proposals for the skill library.

Exports:
- ``SkillCreator`` (``propose``; ``submit``/``poll``/``cancel`` in the background),
  ``CreatorConfig``, ``CreatorSampling``, ``StageSampling``
- ``Reservoir``, ``EpisodeGroup``
- ``Proposal``, ``CreatorResult``, ``CreatorEvent``, ``PassCost``, ``SkillVerification``,
  ``Check``, ``AssertionRef``
- ``Assertion``, ``AssertionChange``, ``AssertionStore`` (project pipeline / rules)
- ``RuleCheck``, ``RuleAssertionSet``, ``AssertionGrade`` (published: rule-graded checks)
- ``Insight``, ``InsightGroup`` (published: contrastive insights and their clusters)
- ``VersionTestRecord``, ``version_test_history`` (what the recommender knows of past tests)
- ``Verifier``, ``RulesCreator``, ``PromptSet``, ``PassArtifacts``

Pipeline of one pass: sample reservoir task groups -> analyse -> diagnose (assertions) ->
recommend operations -> author with verifier feedback -> verify. Three engines share the
reservoir and the verifier: the ``rules`` creator (no LLM, the default backend), and for an
LLM backend (any ``reskill_gym.llm`` spec) the ``published`` pipeline (default; see
``reskill_gym.creator.published``) or the ``project`` one (``reskill_gym.creator.llm_creator``),
chosen by ``CreatorConfig.pipeline``.

>>> from reskill_gym.creator import CreatorConfig, SkillCreator
>>> SkillCreator(CreatorConfig()).backend_name
'rules'
"""

from __future__ import annotations

from reskill_gym.creator.artifacts import PassArtifacts
from reskill_gym.creator.assertions import Assertion, AssertionChange, AssertionStore
from reskill_gym.creator.config import CreatorConfig, CreatorSampling, StageSampling
from reskill_gym.creator.context import VersionTestRecord, version_test_history
from reskill_gym.creator.creator import SkillCreator
from reskill_gym.creator.insights import Insight, InsightGroup
from reskill_gym.creator.prompts import PromptSet
from reskill_gym.creator.reservoir import EpisodeGroup, Reservoir
from reskill_gym.creator.results import (
    AssertionRef,
    Check,
    CreatorEvent,
    CreatorResult,
    PassCost,
    Proposal,
    SkillVerification,
)
from reskill_gym.creator.rule_assertions import AssertionGrade, RuleAssertionSet, RuleCheck
from reskill_gym.creator.rules import RulesCreator
from reskill_gym.creator.verify import Verifier

__all__ = [
    "SkillCreator",
    "CreatorConfig",
    "CreatorSampling",
    "StageSampling",
    "Reservoir",
    "EpisodeGroup",
    "Proposal",
    "CreatorResult",
    "CreatorEvent",
    "PassCost",
    "SkillVerification",
    "Check",
    "AssertionRef",
    "Assertion",
    "AssertionChange",
    "AssertionStore",
    "RuleCheck",
    "RuleAssertionSet",
    "AssertionGrade",
    "Insight",
    "InsightGroup",
    "VersionTestRecord",
    "version_test_history",
    "Verifier",
    "RulesCreator",
    "PromptSet",
    "PassArtifacts",
]
