"""The skill creator: turns recent rollouts into verified proposals for the skill library.

Exports:
- ``SkillCreator`` (``propose``; ``submit``/``poll``/``cancel`` in the background),
  ``CreatorConfig``
- ``Reservoir``, ``EpisodeGroup``
- ``Proposal``, ``CreatorResult``, ``CreatorEvent``, ``PassCost``, ``SkillVerification``,
  ``Check``, ``AssertionRef``
- ``Assertion``, ``AssertionChange``, ``AssertionStore``
- ``Verifier``, ``RulesCreator``, ``PromptSet``

Pipeline of one pass: sample reservoir groups -> analyse episodes -> diagnose (a persistent
set of assertions) -> recommend operations from failing assertions -> author skills with
verifier feedback -> verify. The ``rules`` creator (no LLM, the default) and the LLM creator
(any ``reskill_gym.llm`` backend) share the reservoir, the assertions and the verifier.

>>> from reskill_gym.creator import CreatorConfig, SkillCreator
>>> SkillCreator(CreatorConfig()).backend_name
'rules'
"""

from __future__ import annotations

from reskill_gym.creator.assertions import Assertion, AssertionChange, AssertionStore
from reskill_gym.creator.config import CreatorConfig
from reskill_gym.creator.creator import SkillCreator
from reskill_gym.creator.prompts import PromptSet
from reskill_gym.creator.records import (
    AssertionRef,
    Check,
    CreatorEvent,
    CreatorResult,
    PassCost,
    Proposal,
    SkillVerification,
)
from reskill_gym.creator.reservoir import EpisodeGroup, Reservoir
from reskill_gym.creator.rules import RulesCreator
from reskill_gym.creator.verify import Verifier

__all__ = [
    "SkillCreator",
    "CreatorConfig",
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
    "Verifier",
    "RulesCreator",
    "PromptSet",
]
