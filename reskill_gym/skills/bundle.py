"""Bundle selection: which skills fire on a turn, capped, ordered, rendered into one block.

Exports: ``TurnContext``, ``Bundle``, ``BundleTemplate``, ``BundleSelector``,
``select_bundle``, ``TRIGGER_PRIORITY``, ``DEFAULT_MAX_ACTIVE_SKILLS``,
``DEFAULT_BUDGET_CHARS``, ``DEFAULT_TEMPLATE``, ``TEMPLATE_FIELDS``.

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

Speed: a ``BundleSelector`` is built once per library view. It groups skills by trigger
type, puts all action patterns in one RE2 set and all observation patterns in another
(one linear scan each, memoised per text), ranks retrieval once per task text, and
pre-renders each skill's item, so a turn is a few dictionary look-ups and a join.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain

from reskill_gym.skills.errors import SkillError
from reskill_gym.skills.model import Skill
from reskill_gym.skills.triggers import PatternSet, RetrievalIndex

__all__ = [
    "TurnContext",
    "Bundle",
    "BundleTemplate",
    "BundleSelector",
    "select_bundle",
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


@dataclass(frozen=True)
class BundleTemplate:
    """How a bundle is rendered: ``header + separator.join(items) + footer``.

    ``item`` is a ``str.format`` string with the fields ``name``, ``description``,
    ``when_to_use``, ``content``, ``examples``, ``trigger`` (the trigger type) and
    ``skill_id``. An empty bundle renders as the empty string (no header).

    The template is checked when it is made: an unknown field, an attribute or index
    look-up (``{name.__class__}``: format strings can reach into objects) or a malformed
    format string is a ``SkillError`` naming the field, not a ``KeyError`` on the first turn.

    >>> t = BundleTemplate(header="Hints:\\n", item="- {content}", separator="\\n")
    >>> t.render_item(Skill(name="a", description="d", content="Open it first."))
    '- Open it first.'
    >>> BundleTemplate(item="{nope}")
    Traceback (most recent call last):
    ...
    reskill_gym.skills.errors.SkillError: field 'template.item': unknown field {nope}; ...
    """

    header: str = "## Skills\n"
    item: str = "### {name}\n{content}"
    separator: str = "\n\n"
    footer: str = "\n"

    def __post_init__(self) -> None:
        for attr in ("header", "separator", "footer"):
            if not isinstance(getattr(self, attr), str):
                raise SkillError("must be a string", field=f"template.{attr}")
        if not isinstance(self.item, str):
            raise SkillError("must be a str.format string", field="template.item")
        try:
            parsed = list(string.Formatter().parse(self.item))
        except ValueError as exc:
            raise SkillError(
                f"not a valid format string ({exc}); write literal braces as {{{{ and }}}}",
                field="template.item",
            ) from None
        allowed = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
        for _text, field_name, spec, _conv in parsed:
            if field_name is None:
                continue
            if field_name not in TEMPLATE_FIELDS:
                raise SkillError(
                    f"unknown field {{{field_name}}}; the fields are {allowed}",
                    field="template.item",
                )
            if spec and ("{" in spec or "}" in spec):
                raise SkillError(
                    f"nested fields in the format spec of {{{field_name}}} are not allowed",
                    field="template.item",
                )
        try:  # a bad format spec (e.g. {content:d}) fails here, not on the first turn
            self.item.format(**{f: "" for f in TEMPLATE_FIELDS})
        except (ValueError, IndexError, KeyError) as exc:
            raise SkillError(f"cannot be rendered ({exc})", field="template.item") from None

    def render_item(self, skill: Skill) -> str:
        """One skill's text in the bundle."""
        return self.item.format(
            name=skill.name,
            description=skill.description,
            when_to_use=skill.when_to_use,
            content=skill.content.strip(),
            examples=skill.examples,
            trigger=skill.trigger.type,
            skill_id=skill.skill_id,
        )


DEFAULT_TEMPLATE = BundleTemplate()


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
        self._actions = PatternSet([ordered[i].trigger.pattern or "" for i in self._action_ids])
        self._observations = PatternSet([ordered[i].trigger.pattern or "" for i in self._obs_ids])
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
            return _EMPTY
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
            return _EMPTY
        items = r.items
        text = (
            template.header + template.separator.join([items[i] for i in chosen]) + template.footer
        )
        skills, ids = self.skills, self.skill_ids
        return Bundle(
            tuple([skills[i] for i in chosen]), tuple([ids[i] for i in chosen]), text, total
        )

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
    view_or_skills: object,
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
    selector = getattr(view_or_skills, "selector", None)
    if isinstance(view_or_skills, BundleSelector):
        selector = view_or_skills
    if not isinstance(selector, BundleSelector):
        skills = tuple(view_or_skills)  # type: ignore[call-overload]
        key = tuple(id(s) for s in skills)
        if _last.selector is not None and _last.key == key:
            selector = _last.selector
        else:
            selector = BundleSelector(skills)
            _last.key, _last.selector = key, selector
    return selector.select(
        ctx, max_active_skills=max_active_skills, budget_chars=budget_chars, template=template
    )
