"""The verifier: every skill a creator proposes passes the same checks, LLM or rules.

Exports ``Verifier``, ``trigger_fire_rate``, ``similarity`` and ``schema_failure``.

Checks, in order (all are reported, so an author sees every problem at once):

* ``operation`` - add a new name, modify or delete an existing one;
* ``schema`` - the skill model validates (name is a safe folder name, trigger well formed);
* ``content_length`` - when-to-use + action + examples fit ``max_skill_content_chars``
  (``Skill.counted_chars``: the one definition, shared with the SKILL.md reader/writer and
  library commits, and what the ``published`` bundle template shows; as published);
* ``operation`` also refuses an add that would grow the library past ``max_library_skills``
  (``CreatorConfig.max_library_skills``, published 8: the library-size cap; the per-turn
  cap is the wrapper's ``max_active_skills``);
* ``regex`` - a pattern trigger is short, safe (no nested quantifiers, no back-references)
  and compiles, via ``reskill_gym.skills.triggers``;
* ``trigger_rate`` - replaying the trigger over the turns of the given trajectories (the
  whole reservoir in the published pipeline, the episodes the skill targets in the project
  one; ``TurnContext`` per turn, with the candidate library so retrieval ranks against its
  real neighbours) it fires in at least ``min_trigger_rate`` of them; a skill that never
  fires where it is needed is dead weight;
* ``duplicate`` - not a near copy of another skill (max of word Jaccard and difflib ratio
  of the injected text below ``duplicate_threshold``).

>>> from reskill_gym.skills import LibraryView, Operation, Skill, Trigger
>>> from reskill_gym.episode import Episode, Turn
>>> ep = Episode(episode_id="e1", env_id="x", task_id="t", task="put a mug on the desk",
...              turns=[Turn(observation="You see a drawer.", action="take mug 1 from drawer 1",
...                          invalid_action=True),
...                     Turn(observation="Nothing happens.", action="open drawer 1")])
>>> v = Verifier(LibraryView("v0", []), max_content_chars=500)
>>> s = Skill(name="open-then-take", description="Open before taking.",
...           content="Open the receptacle first.",
...           trigger=Trigger(type="action_pattern", pattern=r"^take\\b"))
>>> report = v.verify(Operation.add(s), [ep])
>>> report.passed, report.trigger_rate
(True, 1.0)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reskill_gym.creator.results import Check, SkillVerification
from reskill_gym.episode import Episode
from reskill_gym.skills import LibraryView, Operation, Skill, SkillError, TurnContext
from reskill_gym.skills.triggers import compile_pattern

if TYPE_CHECKING:  # pragma: no cover
    from reskill_gym.creator.config import CreatorConfig

__all__ = ["Verifier", "trigger_fire_rate", "similarity", "schema_failure"]

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def similarity(a: str, b: str) -> float:
    """max(word Jaccard, difflib ratio) of two texts, in [0, 1].

    >>> similarity("Open the fridge first.", "open the fridge first")
    1.0
    >>> similarity("Open the fridge first.", "Search before answering.") < 0.3
    True
    """
    wa, wb = _words(a), _words(b)
    jac = len(wa & wb) / len(wa | wb) if (wa or wb) else 1.0
    ratio = difflib.SequenceMatcher(None, " ".join(sorted(wa)), " ".join(sorted(wb))).ratio()
    norm_a, norm_b = " ".join(_WORD.findall(a.lower())), " ".join(_WORD.findall(b.lower()))
    seq = difflib.SequenceMatcher(None, norm_a, norm_b).ratio()
    return max(jac, min(ratio, seq))


def trigger_fire_rate(skill: Skill, view: LibraryView, episodes: Sequence[Episode]) -> float:
    """Share of ``episodes`` in which ``skill`` would be in the bundle on at least one turn.

    ``view`` must contain ``skill`` (retrieval ranks against the other skills); bundle caps
    are lifted so only the trigger decides. Non-retrieval triggers are decided by the skill
    alone, in one pass over each trajectory (an action pattern sees the previous action, so
    the last action of an episode never fires anything, as in the published estimator).
    """
    if not episodes:
        return 0.0
    t = skill.trigger
    if t.type in ("general", "beginning"):
        return sum(1 for ep in episodes if ep.turns) / len(episodes)
    if t.type in ("action_pattern", "observation_pattern") and t.pattern:
        m = compile_pattern(t.pattern)
        if t.type == "action_pattern":
            hits = sum(1 for ep in episodes if any(m.search(x.action) for x in ep.turns[:-1]))
        else:
            hits = sum(1 for ep in episodes if any(m.search(x.observation) for x in ep.turns))
        return hits / len(episodes)
    cap = len(view) + 1
    hits = 0
    for ep in episodes:
        prev: str | None = None
        for i, turn in enumerate(ep.turns):
            ctx = TurnContext(
                turn=i, previous_action=prev, observation=turn.observation, task=ep.task
            )
            if skill.name in view.select(ctx, max_active_skills=cap, budget_chars=None).names:
                hits += 1
                break
            prev = turn.action
    return hits / len(episodes)


def schema_failure(op: str, name: str, error: str, attempts: int = 1) -> SkillVerification:
    """The report for a candidate that could not even be built into a ``Skill``."""
    return SkillVerification(
        op=op,
        name=name or "(invalid name)",
        passed=False,
        checks=[Check(name="schema", ok=False, detail=error)],
        attempts=attempts,
    )


class Verifier:
    """Checks operations against one base library view (see the module docstring)."""

    def __init__(
        self,
        base: LibraryView,
        *,
        max_content_chars: int = 500,
        min_trigger_rate: float = 0.5,
        duplicate_threshold: float = 0.7,
        max_library_skills: int | None = None,
        targets_label: str = "targeted trajectories",
    ) -> None:
        self.base = base
        self.max_content_chars = max_content_chars
        self.min_trigger_rate = min_trigger_rate
        self.duplicate_threshold = duplicate_threshold
        self.max_library_skills = max_library_skills
        self.targets_label = targets_label

    @classmethod
    def from_config(
        cls, base: LibraryView, config: CreatorConfig, *, targets_label: str
    ) -> Verifier:
        """A verifier with the creator config's limits: content chars, trigger rate,
        duplicate threshold and the library-size cap (``max_library_skills``)."""
        return cls(
            base,
            max_content_chars=config.max_skill_content_chars,
            min_trigger_rate=config.min_trigger_rate,
            duplicate_threshold=config.duplicate_threshold,
            max_library_skills=config.max_library_skills,
            targets_label=targets_label,
        )

    def library_size_after(self, ops: Sequence[Operation]) -> int:
        """Skills in the library once ``ops`` are applied."""
        return len(self.candidate_view(ops))

    def candidate_view(self, ops: Sequence[Operation]) -> LibraryView:
        """The base view with ``ops`` applied (in memory, for trigger replay)."""
        skills = {s.name: s for s in self.base.skills}
        for op in ops:
            if op.op == "delete":
                skills.pop(op.name, None)
            elif op.skill is not None:
                skills[op.name] = op.skill
        return LibraryView(f"{self.base.version}+candidate", skills.values())

    def most_similar(self, skill: Skill) -> tuple[str | None, float]:
        """The existing skill (other than ``skill``'s own name) closest to it, and the score."""
        best: tuple[str | None, float] = (None, 0.0)
        for other in self.base.skills:
            if other.name == skill.name:
                continue
            sim = similarity(skill.content, other.content)
            if sim > best[1]:
                best = (other.name, sim)
        return best

    def verify(
        self,
        op: Operation,
        targets: Sequence[Episode],
        *,
        attempts: int = 1,
        accepted: Sequence[Operation] = (),
    ) -> SkillVerification:
        """Run every check on ``op``; ``accepted`` are operations already in this proposal
        (a second skill must not duplicate the first, retrieval ranks against both)."""
        checks: list[Check] = []
        name = op.name
        exists = name in self.base
        taken = {o.name for o in accepted}
        if name in taken:
            checks.append(
                Check(
                    name="operation",
                    ok=False,
                    detail=f"{name!r} is already changed in this proposal",
                )
            )
        elif op.op == "add" and exists:
            checks.append(
                Check(
                    name="operation",
                    ok=False,
                    detail=f"a skill named {name!r} exists; pick another name or modify it",
                )
            )
        elif op.op in ("modify", "delete") and not exists:
            known = ", ".join(self.base.names) or "none"
            checks.append(
                Check(
                    name="operation",
                    ok=False,
                    detail=f"no skill {name!r} to {op.op} (skills: {known})",
                )
            )
        elif op.op == "modify" and op.skill is not None and op.skill == self.base.get(name):
            checks.append(
                Check(
                    name="operation",
                    ok=False,
                    detail="the modified skill is identical to the current one",
                )
            )
        elif (
            op.op == "add"
            and self.max_library_skills is not None
            and self.library_size_after([*accepted, op]) > self.max_library_skills
        ):
            checks.append(
                Check(
                    name="operation",
                    ok=False,
                    detail=f"the library would hold {self.library_size_after([*accepted, op])} "
                    f"skills (limit {self.max_library_skills}); delete or modify a skill instead",
                )
            )
        else:
            checks.append(Check(name="operation", ok=True))
        if op.op == "delete":
            return SkillVerification(
                op="delete",
                name=name,
                passed=all(c.ok for c in checks),
                checks=checks,
                attempts=attempts,
            )

        skill = op.skill
        if skill is None:
            checks.append(Check(name="schema", ok=False, detail=f"{op.op} needs a skill"))
            return SkillVerification(
                op=op.op, name=name, passed=False, checks=checks, attempts=attempts
            )
        checks.append(Check(name="schema", ok=True))
        n = skill.counted_chars
        checks.append(
            Check(
                name="content_length",
                ok=n <= self.max_content_chars,
                detail=f"when_to_use + action + examples: {n} chars "
                f"(limit {self.max_content_chars})"
                + ("" if n <= self.max_content_chars else "; shorten it"),
            )
        )
        pattern = skill.trigger.pattern
        if pattern is not None:
            try:
                compile_pattern(pattern)
                checks.append(Check(name="regex", ok=True, detail=pattern))
            except SkillError as e:
                checks.append(Check(name="regex", ok=False, detail=str(e)))
        view = self.candidate_view([*accepted, op])
        try:
            rate = trigger_fire_rate(skill, view, targets)
        except SkillError:  # an unsafe pattern: already reported by the regex check
            rate = 0.0
        if not targets:
            checks.append(
                Check(
                    name="trigger_rate",
                    ok=False,
                    detail=f"no {self.targets_label} in the reservoir",
                )
            )
        else:
            checks.append(
                Check(
                    name="trigger_rate",
                    ok=rate >= self.min_trigger_rate,
                    detail=f"fires in {rate:.0%} of {len(targets)} {self.targets_label} "
                    f"(needs {self.min_trigger_rate:.0%})"
                    + (
                        ""
                        if rate >= self.min_trigger_rate
                        else "; make the trigger match the turns where the mistake happens"
                    ),
                )
            )
        other, sim = self.most_similar(skill)
        for acc in accepted:
            if acc.skill is not None and acc.name != name:
                s2 = similarity(skill.content, acc.skill.content)
                if s2 > sim:
                    other, sim = acc.name, s2
        dup = sim >= self.duplicate_threshold
        checks.append(
            Check(
                name="duplicate",
                ok=not dup,
                detail=(f"{sim:.2f} similar to {other!r}" if other else "no similar skill")
                + (
                    f" (threshold {self.duplicate_threshold}); say something new or modify {other!r}"
                    if dup
                    else ""
                ),
            )
        )
        return SkillVerification(
            op=op.op,
            name=name,
            passed=all(c.ok for c in checks),
            checks=checks,
            trigger_rate=rate if targets else None,
            targeted_episodes=len(targets),
            attempts=attempts,
        )
