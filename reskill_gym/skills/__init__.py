"""Skills: the ``Skill`` model, SKILL.md io, triggers, bundle selection, versioned library.

Exports: ``Skill``, ``Trigger``, ``Provenance``, ``SkillError``, ``UnsafePatternError``,
``LibraryError``, ``StoreError``, ``read_skill``, ``write_skill``, ``validate_skill_dir``,
``TurnContext``, ``Bundle``, ``BundleTemplate``, ``BundleSelector``, ``select_bundle``,
``SkillLibrary``, ``LibraryView``, ``Operation``, ``HistoryEntry``, ``LibraryDiff``,
``MAX_SKILL_CONTENT_CHARS``.

A skill is an Agent Skills folder (``<name>/SKILL.md``) whose ReSkill fields live under
``metadata`` as strings; ``Skill.content`` (the ``## Action`` section) is the text injected
into the agent's observation when the skill's trigger fires.

Modules, one concern each: ``model`` (the ``Skill``), ``skillmd`` (SKILL.md io), ``triggers``,
``bundle`` (selection, rendering, the bundle defaults), and the versioned library:
``library`` (``SkillLibrary``), ``store`` (the ``.reskill`` objects, versions, refs, lock),
``journal`` (write protocol and crash recovery), ``worktree`` (the editable working copy),
``history`` (operations, lineage, diffs) and ``view`` (``LibraryView``).

>>> from reskill_gym.skills import Skill, Trigger, TurnContext, select_bundle
>>> s = Skill(name="retry-differently", description="Avoid repeating invalid actions.",
...           content="That action did nothing; try a different one.",
...           trigger=Trigger(type="observation_pattern", pattern=r"^nothing happens"))
>>> select_bundle([s], TurnContext(2, "open drawer 9", "Nothing happens.", "")).skill_ids
('retry-differently@1',)
"""

from __future__ import annotations

from reskill_gym.skills.bundle import (
    Bundle,
    BundleSelector,
    BundleTemplate,
    TurnContext,
    select_bundle,
)
from reskill_gym.skills.errors import LibraryError, SkillError, StoreError, UnsafePatternError
from reskill_gym.skills.library import (
    HistoryEntry,
    LibraryDiff,
    LibraryView,
    Operation,
    SkillLibrary,
)
from reskill_gym.skills.model import MAX_SKILL_CONTENT_CHARS, Provenance, Skill, Trigger
from reskill_gym.skills.skillmd import read_skill, validate_skill_dir, write_skill

__all__ = [
    "Skill",
    "Trigger",
    "Provenance",
    "SkillError",
    "UnsafePatternError",
    "LibraryError",
    "StoreError",
    "read_skill",
    "write_skill",
    "validate_skill_dir",
    "TurnContext",
    "Bundle",
    "BundleTemplate",
    "BundleSelector",
    "select_bundle",
    "SkillLibrary",
    "LibraryView",
    "Operation",
    "HistoryEntry",
    "LibraryDiff",
    "MAX_SKILL_CONTENT_CHARS",
]
