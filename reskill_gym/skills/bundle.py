"""Bundle selection: which skills fire on a turn, capped, ordered, rendered into one block.

Exports: ``TurnContext``, ``Bundle``, ``BundleTemplate``, ``BundleSelector``,
``select_bundle``, ``resolve_template``, ``TemplateSpec``, ``TEMPLATES``,
``COMPACT_TEMPLATE``, ``PUBLISHED_TEMPLATE``, ``PUBLISHED_SKILL_INSTRUCTION``,
``TRIGGER_PRIORITY``, ``DEFAULT_MAX_ACTIVE_SKILLS``, ``DEFAULT_BUDGET_CHARS``,
``DEFAULT_TEMPLATE``, ``TEMPLATE_FIELDS``.

Semantics of a turn (``TurnContext``):

* ``general`` fires every turn; ``beginning`` only on turn 0;
* ``action_pattern`` searches the agent's *previous* action (turn 0 has none, so never);
* ``observation_pattern`` searches the current observation;
* ``retrieval`` ranks the skill's name + description + when-to-use against the task text
  with BM25 and fires for the skill's top-k (default 3, score > 0).

Order is deterministic: trigger priority (``TRIGGER_PRIORITY``: the turn-specific
action/observation matches first, then beginning, retrieval, and general last), then
name. Skills are taken in that order while fewer than ``max_active_skills`` are chosen
and the rendered block stays within ``budget_chars`` (a skill that does not fit is
skipped, a later smaller one may still fit).

Templates (``TEMPLATES``, chosen by name wherever a template is configured: ``gym.make(...,
template="published")``, ``env.template`` of a run config, ``template`` of an eval config,
``reskill.template`` of a veRL config):

* ``compact`` (the default, ``DEFAULT_TEMPLATE``): ``## Skills`` then ``### <name>`` and the
  action text per skill; nothing when no skill fires. Fewest tokens (small CPU models).
* ``published``: the block of the published ReSkill prompts - ``## Available Skills``, per
  skill ``### skill: <name>`` with quoted ``when_to_use``, ``action`` and ``examples`` lines,
  the published instruction to check each ``when_to_use`` after the list, and
  ``(no skills available)`` when no skill fires.

Speed: a ``BundleSelector`` is built once per library view. It groups skills by trigger
type, puts all action patterns in one RE2 set and all observation patterns in another
(one linear scan each, memoised per text), ranks retrieval once per task text, and
pre-renders each skill's item, so a turn is a few dictionary look-ups and a join.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import string
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from types import MappingProxyType
from typing import Any, TypeAlias

from reskill_gym.skills.errors import SkillError
from reskill_gym.skills.model import Skill
from reskill_gym.skills.triggers import PatternSet, PatternSetError, RetrievalIndex

__all__ = [
    "TurnContext",
    "Bundle",
    "BundleTemplate",
    "BundleSelector",
    "select_bundle",
    "resolve_template",
    "TemplateSpec",
    "TEMPLATES",
    "COMPACT_TEMPLATE",
    "PUBLISHED_TEMPLATE",
    "PUBLISHED_SKILL_INSTRUCTION",
    "TRIGGER_PRIORITY",
    "DEFAULT_MAX_ACTIVE_SKILLS",
    "DEFAULT_BUDGET_CHARS",
    "DEFAULT_TEMPLATE",
    "TEMPLATE_FIELDS",
]

DEFAULT_MAX_ACTIVE_SKILLS = 8
#: The fields a ``BundleTemplate.item`` may use.
TEMPLATE_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "when_to_use",
    "content",
    "examples",
    "trigger",
    "skill_id",
)
DEFAULT_BUDGET_CHARS = 4000
TRIGGER_PRIORITY: tuple[str, ...] = (
    "action_pattern",
    "observation_pattern",
    "beginning",
    "retrieval",
    "general",
)


@dataclass(frozen=True)
class TurnContext:
    """What the triggers look at on one turn.

    >>> TurnContext(turn=0, previous_action=None, observation="You are in a kitchen.",
    ...             task="heat an apple").turn
    0
    """

    turn: int
    previous_action: str | None
    observation: str
    task: str


#: Widest padding or precision a template field may ask for (``{content:>80}`` is fine).
MAX_FORMAT_WIDTH = 1000


def _format_fields(fmt: str, where: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The field names of a ``str.format`` string, checked against ``allowed``."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise SkillError(
            f"not a valid format string ({exc}); write literal braces as {{{{ and }}}}",
            field=where,
        ) from None
    names = []
    shown = ", ".join(f"{{{f}}}" for f in allowed)
    for _text, field_name, spec, _conv in parsed:
        if field_name is None:
            continue
        if field_name not in allowed:
            raise SkillError(f"unknown field {{{field_name}}}; the fields are {shown}", field=where)
        if spec and ("{" in spec or "}" in spec):
            raise SkillError(
                f"nested fields in the format spec of {{{field_name}}} are not allowed",
                field=where,
            )
        widest = max((int(d) for d in re.findall(r"\d+", spec or "")), default=0)
        if widest > MAX_FORMAT_WIDTH:  # {content:>999999999} is a gigabyte per skill a turn
            raise SkillError(
                f"the format spec of {{{field_name}}} asks for width {widest}; "
                f"at most {MAX_FORMAT_WIDTH}",
                field=where,
            )
        names.append(field_name)
    try:  # a bad format spec (e.g. {content:d}) fails here, not on the first turn
        fmt.format(**{f: "" for f in allowed})
    except (ValueError, IndexError, KeyError) as exc:
        raise SkillError(f"cannot be rendered ({exc})", field=where) from None
    return tuple(names)


@dataclass(frozen=True)
class BundleTemplate:
    """How a bundle is rendered: ``header + separator.join(items) + footer``.

    ``item`` is a ``str.format`` string with the fields ``name``, ``description``,
    ``when_to_use``, ``content`` (the action text), ``examples``, ``trigger`` (the trigger
    type) and ``skill_id``. A line of ``item`` whose fields all render empty is left out
    (a skill without when-to-use or examples loses that line, label included); a line with
    no field is always kept. ``{examples}`` is the examples block: ``examples_label`` (its
    own line, if set) and one ``example`` line per item (``Skill.example_items``); empty
    when the skill has none or ``show_examples`` is false.

    An empty bundle renders as the empty string (no block) unless ``placeholder`` is set:
    then as ``header + placeholder + footer`` (the published prompts always show their
    skills section), as long as that fits the character budget.

    The template is checked when it is made: an unknown field, an attribute or index
    look-up (``{name.__class__}``: format strings can reach into objects) or a malformed
    format string is a ``SkillError`` naming the field, not a ``KeyError`` on the first turn.

    >>> t = BundleTemplate(header="Hints:\\n", item="- {content}", separator="\\n")
    >>> t.render_item(Skill(name="a", description="d", content="Open it first."))
    '- Open it first.'
    >>> t = BundleTemplate(item="{name}\\nWhen: {when_to_use}\\n{examples}", examples_label="e.g.")
    >>> t.render_item(Skill(name="a", description="d", content="c", examples="- open it"))
    'a\\ne.g.\\n- open it'
    >>> BundleTemplate(item="{nope}")
    Traceback (most recent call last):
    ...
    reskill_gym.skills.errors.SkillError: field 'template.item': unknown field {nope}; ...
    """

    header: str = "## Skills\n"
    item: str = "### {name}\n{content}"
    separator: str = "\n\n"
    footer: str = "\n"
    example: str = "- {example}"
    examples_label: str = ""
    show_examples: bool = True
    placeholder: str = ""
    _lines: tuple[tuple[str, tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False, hash=False, default=()
    )

    def __post_init__(self) -> None:
        for attr in ("header", "separator", "footer", "examples_label", "placeholder"):
            if not isinstance(getattr(self, attr), str):
                raise SkillError("must be a string", field=f"template.{attr}")
        if not isinstance(self.show_examples, bool):
            raise SkillError("must be true or false", field="template.show_examples")
        for attr in ("item", "example"):
            if not isinstance(getattr(self, attr), str):
                raise SkillError("must be a str.format string", field=f"template.{attr}")
        _format_fields(self.item, "template.item", TEMPLATE_FIELDS)
        _format_fields(self.example, "template.example", ("example",))
        lines = []
        for line in self.item.split("\n"):
            try:
                names = _format_fields(line, "template.item", TEMPLATE_FIELDS)
            except SkillError:
                raise SkillError(
                    f"a field must not span lines (line {line!r})", field="template.item"
                ) from None
            lines.append((line, names))
        object.__setattr__(self, "_lines", tuple(lines))

    def examples_block(self, skill: Skill) -> str:
        """What ``{examples}`` renders as for ``skill``."""
        items = skill.example_items if self.show_examples else ()
        if not items:
            return ""
        out = [self.examples_label] if self.examples_label else []
        out += [self.example.format(example=e) for e in items]
        return "\n".join(out)

    def render_item(self, skill: Skill) -> str:
        """One skill's text in the bundle."""
        values = {
            "name": skill.name,
            "description": skill.description,
            "when_to_use": skill.when_to_use.strip(),
            "content": skill.content.strip(),
            "examples": self.examples_block(skill) if "examples" in self._used else "",
            "trigger": skill.trigger.type,
            "skill_id": skill.skill_id,
        }
        out = []
        for line, names in self._lines:
            if names and not any(values[n] for n in names):
                continue
            out.append(line.format(**values))
        return "\n".join(out)

    @property
    def _used(self) -> frozenset[str]:
        return frozenset(n for _line, names in self._lines for n in names)

    @property
    def empty_text(self) -> str:
        """The block shown when no skill fires ('' without a ``placeholder``)."""
        return self.header + self.placeholder + self.footer if self.placeholder else ""


#: The published prompts' instruction about the skills section (verbatim).
PUBLISHED_SKILL_INSTRUCTION = (
    "Check the Available Skills section by reading each `when_to_use` field. "
    "If a skill matches your situation, state which skill you are applying "
    "and follow its `action` guidance; otherwise, proceed on your own."
)

COMPACT_TEMPLATE = BundleTemplate()
DEFAULT_TEMPLATE = COMPACT_TEMPLATE

PUBLISHED_TEMPLATE = BundleTemplate(
    header="## Available Skills\n\n",
    item='### skill: {name}\n  when_to_use: "{when_to_use}"\n  action: "{content}"\n{examples}',
    separator="\n\n",
    footer="\n\n" + PUBLISHED_SKILL_INSTRUCTION + "\n",
    example='    - "{example}"',
    examples_label="  examples:",
    placeholder="(no skills available)",
)
"""The published ReSkill skills section (``SkillLoader._format_skills`` +
``format_skills_section`` + ``_SKILL_INSTRUCTION_ACTIVE`` of the published prompts)."""

TEMPLATES: Mapping[str, BundleTemplate] = MappingProxyType(
    {"compact": COMPACT_TEMPLATE, "published": PUBLISHED_TEMPLATE}
)
"""Bundle templates by name."""

TemplateSpec: TypeAlias = BundleTemplate | str | Mapping[str, Any] | None
"""What a config may give for a template: see ``resolve_template``."""

_SPEC_KEYS = ("base", *(f.name for f in dataclasses.fields(BundleTemplate) if f.init))


def _named(name: str, where: str) -> BundleTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(TEMPLATES), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SkillError(
            f"unknown bundle template {name!r}{hint}; the templates are " + ", ".join(TEMPLATES),
            field=where,
        ) from None


def resolve_template(spec: TemplateSpec, *, where: str = "template") -> BundleTemplate:
    """The ``BundleTemplate`` a config value names.

    ``None``: the default (``compact``); a name from ``TEMPLATES``; a string with ``{``: an
    ``item`` format string on the default template (the older form); a mapping: the
    template named by ``base`` (default ``compact``) with the other keys (``BundleTemplate``
    fields) replaced, e.g. ``{"base": "published", "show_examples": False}``; a
    ``BundleTemplate``: itself. Errors are ``SkillError`` naming ``where``.

    >>> resolve_template("published").placeholder
    '(no skills available)'
    >>> resolve_template({"base": "published", "placeholder": ""}).empty_text
    ''
    >>> resolve_template("publisched")
    Traceback (most recent call last):
    ...
    reskill_gym.skills.errors.SkillError: field 'template': unknown bundle template 'publisched' (did you mean 'published'?); ...
    """
    if spec is None:
        return DEFAULT_TEMPLATE
    if isinstance(spec, BundleTemplate):
        return spec
    if isinstance(spec, str):
        if "{" in spec:
            try:
                return BundleTemplate(item=spec)
            except SkillError as exc:
                raise SkillError(exc.message, field=where) from None
        return _named(spec.strip(), where)
    if isinstance(spec, Mapping):
        data = dict(spec)
        base = data.pop("base", "compact")
        if not isinstance(base, str):
            raise SkillError("must be a template name", field=f"{where}.base")
        for key in data:
            if key not in _SPEC_KEYS:
                close = difflib.get_close_matches(str(key), _SPEC_KEYS, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SkillError(
                    f"unknown key {key!r}{hint}; the keys are " + ", ".join(_SPEC_KEYS),
                    field=where,
                )
        try:
            return dataclasses.replace(_named(base, f"{where}.base"), **data)
        except SkillError as exc:
            raise SkillError(
                exc.message, field=f"{where}.{(exc.field or '').split('.')[-1]}"
            ) from None
    raise SkillError(
        f"must be a template name ({', '.join(TEMPLATES)}), a mapping or a BundleTemplate, "
        f"got {type(spec).__name__}",
        field=where,
    )


@dataclass(frozen=True)
class Bundle:
    """The skills active on one turn and the text injected for them.

    >>> Bundle.empty().chars
    0
    """

    skills: tuple[Skill, ...]
    skill_ids: tuple[str, ...]
    text: str
    chars: int

    @classmethod
    def empty(cls) -> Bundle:
        """No skill fired."""
        return cls((), (), "", 0)

    @property
    def names(self) -> tuple[str, ...]:
        """Skill names in bundle order."""
        return tuple(s.name for s in self.skills)

    def __len__(self) -> int:
        return len(self.skills)


_EMPTY = Bundle((), (), "", 0)


@dataclass
class _Rendered:
    items: tuple[str, ...]
    lengths: tuple[int, ...]
    fixed: int  # len(header) + len(footer)
    sep: int


def _pattern_set(skills: list[Skill], ids: tuple[int, ...]) -> PatternSet:
    """The pattern set of ``skills[ids]``; one RE2 cannot build is an error naming the skills."""
    patterns = [skills[i].trigger.pattern or "" for i in ids]
    try:
        return PatternSet(patterns)
    except PatternSetError as exc:
        names = sorted({skills[i].name for i in ids if skills[i].trigger.pattern in exc.patterns})
        raise SkillError(f"{exc.message}; the skills: {', '.join(names)}") from None


class BundleSelector:
    """Pre-indexed, reusable selection over a fixed set of skills.

    >>> from reskill_gym.skills.model import Trigger
    >>> skills = [
    ...     Skill(name="open-first", description="d", content="Open receptacles first.",
    ...           trigger=Trigger(type="observation_pattern", pattern=r"\\bis closed\\b")),
    ...     Skill(name="plan", description="d", content="Plan first.",
    ...           trigger=Trigger(type="beginning")),
    ... ]
    >>> sel = BundleSelector(skills)
    >>> sel.select(TurnContext(0, None, "The fridge 1 is closed.", "cool an apple")).names
    ('open-first', 'plan')
    >>> sel.select(TurnContext(1, "go to fridge 1", "You see a fridge.", "cool an apple")).names
    ()
    """

    def __init__(self, skills: Iterable[Skill]) -> None:
        ordered = sorted(skills, key=lambda s: (TRIGGER_PRIORITY.index(s.trigger.type), s.name))
        names = [s.name for s in ordered]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate skill names in one selection: {dup}")
        self.skills: tuple[Skill, ...] = tuple(ordered)
        self.skill_ids: tuple[str, ...] = tuple(s.skill_id for s in ordered)
        by_type: dict[str, list[int]] = {t: [] for t in TRIGGER_PRIORITY}
        for i, s in enumerate(ordered):
            by_type[s.trigger.type].append(i)
        self._general = tuple(by_type["general"])
        self._beginning = tuple(by_type["beginning"])
        self._action_ids = tuple(by_type["action_pattern"])
        self._obs_ids = tuple(by_type["observation_pattern"])
        self._retr_ids = tuple(by_type["retrieval"])
        self._actions = _pattern_set(ordered, self._action_ids)
        self._observations = _pattern_set(ordered, self._obs_ids)
        self._retr_k = tuple(ordered[i].trigger.effective_top_k for i in self._retr_ids)
        self._retrieval: RetrievalIndex | None = None
        self._retr_lock = threading.Lock()
        self._rendered: dict[BundleTemplate, _Rendered] = {}
        self._last_render: tuple[BundleTemplate, _Rendered] | None = None

    def __len__(self) -> int:
        return len(self.skills)

    def _retrieval_index(self) -> RetrievalIndex:
        if self._retrieval is None:
            with self._retr_lock:
                if self._retrieval is None:
                    docs = []
                    for i in self._retr_ids:
                        s = self.skills[i]
                        docs.append(f"{s.name.replace('-', ' ')} {s.description} {s.when_to_use}")
                    self._retrieval = RetrievalIndex(docs)
        return self._retrieval

    def _render(self, template: BundleTemplate) -> _Rendered:
        r = self._rendered.get(template)
        if r is None:
            items = tuple(template.render_item(s) for s in self.skills)
            r = _Rendered(
                items,
                tuple(len(x) for x in items),
                len(template.header) + len(template.footer),
                len(template.separator),
            )
            self._rendered[template] = r
        self._last_render = (template, r)
        return r

    def fired(self, ctx: TurnContext) -> list[int]:
        """Indices (bundle order) of every skill whose trigger fires, before any cap."""
        out: list[int] = []
        for group in self._groups(ctx):
            out.extend(group)
        return out

    def select(
        self,
        ctx: TurnContext,
        *,
        max_active_skills: int = DEFAULT_MAX_ACTIVE_SKILLS,
        budget_chars: int | None = DEFAULT_BUDGET_CHARS,
        template: BundleTemplate = DEFAULT_TEMPLATE,
    ) -> Bundle:
        """The bundle for ``ctx``: fired skills in order, capped by count and characters."""
        if max_active_skills <= 0:
            return self._empty(template, budget_chars)
        last = self._last_render
        r = last[1] if last is not None and last[0] is template else self._render(template)
        lengths, sep = r.lengths, r.sep
        total = r.fixed
        budget = budget_chars if budget_chars is not None else 1 << 62
        chosen: list[int] = []
        for i in chain.from_iterable(self._groups(ctx)):
            extra = lengths[i] + sep if chosen else lengths[i]
            if total + extra > budget:
                continue
            chosen.append(i)
            total += extra
            if len(chosen) >= max_active_skills:
                break
        if not chosen:
            return self._empty(template, budget_chars)
        items = r.items
        text = (
            template.header + template.separator.join([items[i] for i in chosen]) + template.footer
        )
        skills, ids = self.skills, self.skill_ids
        return Bundle(
            tuple([skills[i] for i in chosen]), tuple([ids[i] for i in chosen]), text, total
        )

    @staticmethod
    def _empty(template: BundleTemplate, budget_chars: int | None) -> Bundle:
        """No skill fired: the template's placeholder block if it has one and it fits."""
        text = template.empty_text
        if not text or (budget_chars is not None and len(text) > budget_chars):
            return _EMPTY
        return Bundle((), (), text, len(text))

    def _groups(self, ctx: TurnContext) -> Iterable[Sequence[int]]:
        # Lazily, so a bundle filled by pattern matches never pays for retrieval.
        if ctx.previous_action is not None and self._action_ids:
            ids = self._action_ids
            yield [ids[j] for j in self._actions.match(ctx.previous_action)]
        if self._obs_ids:
            ids = self._obs_ids
            yield [ids[j] for j in self._observations.match(ctx.observation)]
        if ctx.turn == 0:
            yield self._beginning
        if self._retr_ids and ctx.task:
            ids = self._retr_ids
            yield [ids[j] for j in self._retrieval_index().top(ctx.task, self._retr_k)]
        yield self._general


@dataclass
class _SelectorCache:
    # The cached selector holds the skill objects, so their ids cannot be reused.
    key: tuple[int, ...] = field(default_factory=tuple)
    selector: BundleSelector | None = None


_last = _SelectorCache()


def select_bundle(
    view_or_skills: BundleSelector | Iterable[Skill],
    ctx: TurnContext,
    *,
    max_active_skills: int = DEFAULT_MAX_ACTIVE_SKILLS,
    budget_chars: int | None = DEFAULT_BUDGET_CHARS,
    template: BundleTemplate = DEFAULT_TEMPLATE,
) -> Bundle:
    """Select and render the bundle for one turn.

    ``view_or_skills`` is a ``LibraryView`` (fast path: its selector is built once and
    kept), a ``BundleSelector``, or any iterable of ``Skill`` (indexed on each call
    unless it is the same list of skill objects as the previous call).

    >>> s = Skill(name="always", description="d", content="Be brief.",
    ...           trigger={"type": "general"})
    >>> select_bundle([s], TurnContext(3, "look", "", "t")).text
    '## Skills\\n### always\\nBe brief.\\n'
    """
    if isinstance(view_or_skills, BundleSelector):
        selector = view_or_skills
    else:
        kept = getattr(view_or_skills, "selector", None)  # a LibraryView keeps its own
        if isinstance(kept, BundleSelector):
            selector = kept
        else:
            skills = tuple(view_or_skills)
            key = tuple(id(s) for s in skills)
            if _last.selector is not None and _last.key == key:
                selector = _last.selector
            else:
                selector = BundleSelector(skills)
                _last.key, _last.selector = key, selector
    return selector.select(
        ctx, max_active_skills=max_active_skills, budget_chars=budget_chars, template=template
    )
