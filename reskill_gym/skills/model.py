"""The ``Skill`` model: one piece of conditional guidance and the trigger that fires it.

Exports: ``Skill``, ``Trigger``, ``Provenance``, ``validate_name``, ``NAME_RE``,
``SKILL_ID_RE``, ``parse_skill_id``, ``split_examples``, ``MAX_NAME_CHARS``,
``MAX_DESCRIPTION_CHARS``, ``MAX_SKILL_CONTENT_CHARS``.

``Skill.content`` is the skill's action guidance (the "## Action" section of SKILL.md);
``when_to_use`` and ``examples`` are its other two sections. The length limit
``max_skill_content_chars`` (500) counts all three, as the published verifier does:
``Skill.counted_chars`` = when-to-use + action + the example items (``split_examples``),
each stripped. This is the one definition: the SKILL.md reader and writer, library
commits, the creator's verifier and the bundle's ``published`` template (which shows exactly
these three sections) all use it. The limit is enforced for skills ReSkill writes
(``write_skill``, library commits) and for skills carrying ReSkill metadata when read; a
foreign skill folder (no ``reskill.*`` metadata) loads whatever its length and is only
capped by the bundle's character budget.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reskill_gym.skills.errors import SkillError
from reskill_gym.skills.triggers import DEFAULT_TOP_K, TriggerType, check_pattern

__all__ = [
    "Skill",
    "Trigger",
    "Provenance",
    "validate_name",
    "NAME_RE",
    "SKILL_ID_RE",
    "parse_skill_id",
    "split_examples",
    "MAX_NAME_CHARS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_SKILL_CONTENT_CHARS",
]

MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1024
MAX_COMPATIBILITY_CHARS = 500
MAX_SKILL_CONTENT_CHARS = 500
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")  # \Z: "$" would let "a\n" through
SKILL_ID_RE = re.compile(r"^(?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)(?:@(?P<version>\d+))?\Z")


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid skill name (Agent Skills spec), else raise.

    1-64 characters, lowercase ASCII letters, digits and single hyphens, no leading or
    trailing hyphen. Anything path-like (``../x``, ``a/b``) fails, so a name can always be
    used as a folder name.

    >>> validate_name("open-before-take")
    'open-before-take'
    >>> validate_name("../x")
    Traceback (most recent call last):
    ...
    reskill_gym.skills.errors.SkillError: field 'name': '../x' is not a valid skill name: ...
    """
    rule = "use 1-64 lowercase letters, digits and single hyphens (e.g. 'heat-with-microwave')"
    if not isinstance(name, str) or not name:
        raise SkillError(f"must be a non-empty string; {rule}", field="name")
    if len(name) > MAX_NAME_CHARS:
        raise SkillError(f"is {len(name)} chars, the limit is {MAX_NAME_CHARS}", field="name")
    if not NAME_RE.match(name):
        hint = " (path separators are not allowed)" if ("/" in name or "\\" in name) else ""
        raise SkillError(f"{name!r} is not a valid skill name: {rule}{hint}", field="name")
    return name


def split_examples(examples: str) -> tuple[str, ...]:
    """The example items of an ``## Examples`` section: one per non-empty line, a leading
    ``-`` / ``*`` bullet removed, stripped (the published skills keep examples as a list of
    one-line strings).

    >>> split_examples("- DO: open drawer 1\\n\\n* DON'T: take mug 1 from drawer 1\\nplain line")
    ('DO: open drawer 1', "DON'T: take mug 1 from drawer 1", 'plain line')
    """
    items = []
    for line in examples.splitlines():
        line = line.strip()
        if line[:1] in ("-", "*") and (len(line) == 1 or line[1].isspace()):
            line = line[1:].strip()
        if line:
            items.append(line)
    return tuple(items)


def parse_skill_id(skill_id: str) -> tuple[str, int | None]:
    """Split ``name@version`` (version optional) into its parts.

    >>> parse_skill_id("heat-with-microwave@3")
    ('heat-with-microwave', 3)
    >>> parse_skill_id("heat-with-microwave")
    ('heat-with-microwave', None)
    """
    m = SKILL_ID_RE.match(skill_id)
    if not m:
        raise SkillError(f"{skill_id!r} is not a skill id of the form name[@version]", field="id")
    v = m.group("version")
    return m.group("name"), int(v) if v is not None else None


class Trigger(BaseModel):
    """When a skill fires. ``pattern`` is required for the two regex types.

    >>> Trigger(type="action_pattern", pattern=r"^open ").type
    'action_pattern'
    >>> Trigger().type, Trigger().effective_top_k
    ('retrieval', 3)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: TriggerType = "retrieval"
    pattern: str | None = None
    top_k: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Trigger:
        if self.type in ("action_pattern", "observation_pattern"):
            if not self.pattern:
                raise SkillError(f"trigger type {self.type!r} needs a pattern", field="trigger")
            check_pattern(self.pattern)  # raises UnsafePatternError naming the pattern
        elif self.pattern is not None:
            raise SkillError(
                f"trigger type {self.type!r} takes no pattern (got {self.pattern!r})",
                field="trigger",
            )
        if self.top_k is not None and self.type != "retrieval":
            raise SkillError(f"top_k only applies to retrieval triggers, not {self.type!r}")
        return self

    @property
    def effective_top_k(self) -> int:
        """``top_k`` or the default (3)."""
        return self.top_k if self.top_k is not None else DEFAULT_TOP_K


class Provenance(BaseModel):
    """Who proposed a skill version and why (lineage is data, not a log line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proposed_by: str | None = None
    rationale: str | None = None
    parent_version: str | None = None


class Skill(BaseModel):
    """A skill: name, when it applies, what to do, and the trigger that fires it.

    Unknown front-matter keys (``extra_frontmatter``), unknown ``metadata`` keys
    (``metadata``), and unknown body sections (``extra_body``) are kept so a skill written
    by another tool survives a read/write round trip.

    >>> s = Skill(name="heat-with-microwave", description="Heat objects with a microwave.",
    ...           content="Go to the microwave, then `heat OBJ with microwave 1`.",
    ...           trigger=Trigger(type="observation_pattern", pattern=r"\\bheat\\b"))
    >>> s.skill_id, s.trigger.type
    ('heat-with-microwave@1', 'observation_pattern')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    when_to_use: str = ""
    content: str
    examples: str = ""
    trigger: Trigger = Field(default_factory=Trigger)
    version: int = Field(default=1, ge=1)
    created_at_step: int | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    license: str | None = None
    compatibility: str | None = None
    allowed_tools: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    extra_frontmatter: dict[str, Any] = Field(default_factory=dict)
    extra_body: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_name(v)

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        if not v or not v.strip():
            raise SkillError("must be a non-empty string", field="description")
        if len(v) > MAX_DESCRIPTION_CHARS:
            raise SkillError(
                f"is {len(v)} chars, the limit is {MAX_DESCRIPTION_CHARS}", field="description"
            )
        return v

    @field_validator("compatibility")
    @classmethod
    def _compat(cls, v: str | None) -> str | None:
        if v is not None and len(v) > MAX_COMPATIBILITY_CHARS:
            raise SkillError(
                f"is {len(v)} chars, the limit is {MAX_COMPATIBILITY_CHARS}", field="compatibility"
            )
        return v

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        if not v or not v.strip():
            raise SkillError(
                "must be non-empty (the text injected for this skill)", field="content"
            )
        return v

    @property
    def skill_id(self) -> str:
        """``name@version``: what bundles and logs record."""
        return f"{self.name}@{self.version}"

    @property
    def example_items(self) -> tuple[str, ...]:
        """The examples as items (see ``split_examples``)."""
        return split_examples(self.examples)

    @property
    def counted_chars(self) -> int:
        """What ``max_skill_content_chars`` limits: when-to-use + action + example items.

        >>> Skill(name="a", description="d", when_to_use="A drawer is closed.",
        ...       content="Open it.", examples="- open drawer 1").counted_chars
        40
        """
        return (
            len(self.when_to_use.strip())
            + len(self.content.strip())
            + sum(len(e) for e in self.example_items)
        )

    def check_content_limit(self, max_chars: int | None = MAX_SKILL_CONTENT_CHARS) -> None:
        """Raise ``SkillError`` (field ``content``) if ``counted_chars`` is over ``max_chars``."""
        if max_chars is not None and self.counted_chars > max_chars:
            n_when, n_action = len(self.when_to_use.strip()), len(self.content.strip())
            n_ex = self.counted_chars - n_when - n_action
            raise SkillError(
                f"when-to-use + action + examples is {self.counted_chars} chars "
                f"({n_when} + {n_action} + {n_ex}), the limit is {max_chars} "
                "(max_skill_content_chars); shorten the skill",
                field="content",
            )

    def replace(self, **changes: Any) -> Skill:
        """A validated copy with ``changes`` applied (skills are immutable)."""
        data = self.model_dump()
        data.update(changes)
        return Skill.model_validate(data)
