"""The offline ``rules`` creator: skills derived from reservoir statistics, no LLM.

Exports ``RulesCreator``, ``Finding``, ``action_verb`` and the detectors
``find_rejections``, ``find_loops``, ``find_enriched_ngrams``, ``find_query_entities``.

It runs the same pipeline shape as the LLM creator: statistics play the analyst and the
diagnostician (each detector yields a *finding*: an assertion with its evidence and the
episodes that violate it), the strongest failing assertions are recommended, a skill is
written from a template filled with the data, and the shared verifier checks it. What it
looks for:

* **rejected actions** - a verb the engine answers with its rejection message ("Nothing
  happens.", "Your previous action is invalid ...") in several episodes, and what worked
  instead: the accepted action that made the same command succeed later (a precondition,
  e.g. ``open drawer 1`` before ``take ... from drawer 1``), or the accepted action that
  replaced it (e.g. ``move`` instead of ``put``). Trigger: ``action_pattern`` on the rejected
  verb (the hint shows on the turn right after it), or, for commands without a verb,
  ``observation_pattern`` on the opening words of the rejection message;
* **repeated-action loops** - the same action ``rules_loop_length`` times in a row, when
  looping episodes fail more often. Trigger: ``action_pattern`` on the looped verbs;
* **enriched action n-grams** - verb uni/bigrams of accepted actions much more frequent in
  successful than in failed episodes of one task type, shown by at least
  ``rules_min_support`` successes and with a one-sided Fisher exact p-value of at most
  ``rules_max_p_value``. Trigger: ``retrieval`` on the task type's words;
* **command templates** - per task type, the exact next command of successful episodes
  at one state: right after a command (``go to TARGET N``), what they did next
  (``move OBJECT N to TARGET N``), with objects named by their role (the object and the
  target the task names, the same object as the previous command, or a fixed tool such as
  ``microwave N``). Counted over the episodes that reached that state, shown by at least
  ``rules_min_support`` successes, with a one-sided Fisher exact p-value of at most
  ``rules_max_p_value``. Trigger: ``action_pattern`` on the previous command's verb, so the
  advice shows at the moment it applies. Why: in the efficacy runs the skills that helped
  a frozen policy named the exact command for the moment; order statistics ("`go to` then
  `move`") did not. Where a task type has a template, its n-gram finding is dropped;
* **search queries** - search queries that named the question's entities vs those that did
  not, when that separates successes from failures. Trigger: ``action_pattern`` on search.

Statistics use the whole reservoir snapshot (deterministic; the LLM creator samples groups
because it pays per episode).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from reskill_gym.creator.assertions import Assertion, AssertionChange
from reskill_gym.creator.pipeline import PassContext, finish_proposal
from reskill_gym.creator.results import Proposal, SkillVerification
from reskill_gym.episode import Episode
from reskill_gym.skills import Operation, Provenance, Skill, SkillError, Trigger
from reskill_gym.skills.model import split_examples

if TYPE_CHECKING:
    from reskill_gym.creator.config import CreatorConfig

__all__ = [
    "RulesCreator",
    "Finding",
    "action_verb",
    "verb_pattern",
    "find_rejections",
    "find_loops",
    "find_enriched_ngrams",
    "find_command_templates",
    "command_template",
    "find_query_entities",
]

_TAG = re.compile(r"<\s*([a-z_]+)\s*>", re.IGNORECASE)
_TWO_WORD = {
    ("go", "to"),
    ("pick", "up"),
    ("look", "at"),
    ("turn", "on"),
    ("turn", "off"),
    ("put", "down"),
}
_WORD = re.compile(r"[a-z0-9]+")
_OBJ = re.compile(r"\b[a-z]+ \d+\b")  # ALFWorld-style object ids: "mug 1"
_STOP = frozenset(
    "a an the of in on to and or for with from at by is was were be it its this that which "
    "what who whom whose where when how your you some put into".split()
)
UNTAGGED = "(untagged)"


def action_verb(action: str, tagged: bool = False) -> str:
    """The command word of an action: ``go to``, ``take``, a tag name like ``search``.

    >>> action_verb("go to fridge 1"), action_verb("<think>x</think><search>q</search>", True)
    ('go to', 'search')
    >>> action_verb("I think the answer is Paris", tagged=True)
    '(untagged)'
    """
    if tagged:
        tags = [
            t.lower() for t in _TAG.findall(action) if t.lower() not in ("think", "information")
        ]
        return tags[0] if tags else UNTAGGED
    words = action.lower().split()
    if not words:
        return ""
    if len(words) > 1 and (words[0], words[1]) in _TWO_WORD:
        return f"{words[0]} {words[1]}"
    return re.sub(r"[^a-z0-9-]", "", words[0]) or words[0]


def verb_pattern(verb: str, tagged: bool) -> str:
    r"""A safe regex matching actions with this verb (for ``action_pattern`` triggers).

    >>> verb_pattern("go to", False), verb_pattern("search", True), verb_pattern(UNTAGGED, True)
    ('^go\\s+to\\b', '<search>', '^[^<]*$')
    """
    if verb == UNTAGGED:
        return r"^[^<]*$"
    if tagged:
        return f"<{re.escape(verb)}>"
    return "^" + r"\s+".join(re.escape(w) for w in verb.split()) + r"\b"


def _search_content(action: str, tag: str = "search") -> str:
    m = re.search(rf"<{tag}>(.*?)</{tag}>", action, re.IGNORECASE | re.DOTALL)
    return " ".join(m.group(1).split()) if m else ""


def _feedback(ep: Episode, i: int) -> str:
    """The observation that answered turn ``i``'s action."""
    if i + 1 < len(ep.turns):
        return ep.turns[i + 1].observation
    return ep.final_observation


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _slug(*parts: str, limit: int = 48) -> str:
    words = [w for p in parts for w in _WORD.findall(p.lower())]
    slug = "-".join(words)[:limit].strip("-")
    return re.sub(r"-+", "-", slug) or "rule"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _common_opening(texts: Sequence[str], max_words: int = 4) -> str:
    """The longest run of opening words shared by most ``texts`` (lowercase)."""
    first = [_words(t)[:max_words] for t in texts if t.strip()]
    if not first:
        return ""
    best: list[str] = []
    for n in range(1, max_words + 1):
        c = Counter(tuple(w[:n]) for w in first if len(w) >= n)
        if not c:
            break
        top, cnt = c.most_common(1)[0]
        if cnt < 0.6 * len(first):
            break
        best = list(top)
    return " ".join(best)


@dataclass
class Finding:
    """A statistic that became an assertion and, if it is failing, a skill candidate."""

    key: str
    text: str
    passed_ids: list[str]
    failed_ids: list[str]
    target_ids: list[str]
    score: float
    make_skill: Callable[[], Skill]
    why: str
    task_types: list[str] = field(default_factory=list)


def _is_tagged_env(episodes: Sequence[Episode]) -> bool:
    accepted = [t.action for e in episodes for t in e.turns if not t.invalid_action]
    if not accepted:
        return False
    return sum(bool(_TAG.search(a)) for a in accepted) >= 0.5 * len(accepted)


def _skill(
    name: str,
    description: str,
    when: str,
    content: str,
    trigger: Trigger,
    why: str,
    max_chars: int,
    examples: str = "",
) -> Skill:
    # the limit counts when-to-use + action + examples (Skill.counted_chars): the action
    # text gets what the other two leave
    room = max_chars - len(when.strip()) - sum(len(e) for e in split_examples(examples))
    if len(content) > room:
        content = content[: max(room - 3, 0)].rstrip() + "..."
    return Skill(
        name=name,
        description=description,
        when_to_use=when,
        content=content,
        examples=examples,
        trigger=trigger,
        provenance=Provenance(proposed_by="rules", rationale=why[:500]),
    )


def find_rejections(
    episodes: Sequence[Episode], min_support: int, max_chars: int = 500
) -> list[Finding]:
    """Verbs the engine rejects in several episodes, with what worked instead."""
    tagged = _is_tagged_env(episodes)
    used: dict[str, set[str]] = defaultdict(set)
    rejected: dict[str, set[str]] = defaultdict(set)
    feedback: dict[str, list[str]] = defaultdict(list)
    examples: dict[str, list[str]] = defaultdict(list)
    precond: dict[str, Counter[tuple[str, str, str]]] = defaultdict(Counter)
    replaced: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for ep in episodes:
        turns = ep.turns
        for i, t in enumerate(turns):
            v = action_verb(t.action, tagged)
            if not v:
                continue
            used[v].add(ep.episode_id)
            if not t.invalid_action:
                continue
            rejected[v].add(ep.episode_id)
            feedback[v].append(_feedback(ep, i))
            examples[v].append(t.action)
            norm = " ".join(t.action.lower().split())
            later_ok = next(
                (
                    k
                    for k in range(i + 1, len(turns))
                    if not turns[k].invalid_action
                    and " ".join(turns[k].action.lower().split()) == norm
                ),
                None,
            )
            if later_ok is not None and later_ok > 0 and not turns[later_ok - 1].invalid_action:
                pre = turns[later_ok - 1].action
                pv = action_verb(pre, tagged)
                if pv and pv != v:
                    precond[v][(pv, pre, turns[later_ok].action)] += 1
                    continue
            # What the engine accepted instead: the next accepted action on the same
            # object ("move mug 1 to ..." after "put mug 1 in ..."), from winning episodes
            # when there are any (a losing agent's next move is no advice).
            objs = set(_OBJ.findall(t.action.lower()))
            nxt = next(
                (
                    k
                    for k in range(i + 1, len(turns))
                    if not turns[k].invalid_action
                    and (not objs or objs & set(_OBJ.findall(turns[k].action.lower())))
                ),
                None,
            )
            if nxt is not None:
                rv = action_verb(turns[nxt].action, tagged)
                if rv and rv != v:
                    replaced[v][(rv, turns[nxt].action)] += 3 if ep.success else 1
    out: list[Finding] = []
    for v, bad in rejected.items():
        if len(bad) < min_support:
            continue
        ok = sorted(used[v] - bad)
        opening = _common_opening(feedback[v])
        said = f"'{opening.capitalize()}...'" if opening else "a rejection"
        ex = Counter(examples[v]).most_common(1)[0][0]
        verb_txt = "free text without an action tag" if v == UNTAGGED else f"`{v}`"
        if precond[v]:
            (pv, pre_ex, retry_ex), n = Counter({k: c for k, c in precond[v].items()}).most_common(
                1
            )[0]
            pv_total = sum(c for (p, *_), c in precond[v].items() if p == pv)
            content = (
                f"{verb_txt} was rejected ({said}) in {len(bad)} episodes, e.g. `{ex}`. "
                f"It succeeded after `{pv}` on the same target ({pv_total} times), e.g. "
                f"`{pre_ex}` then `{retry_ex}`. Do `{pv}` first; do not repeat the rejected command."
            )
            advice = f"do `{pv}` first"
        elif replaced[v]:
            verb_counts = Counter({k[0]: 0 for k in replaced[v]})
            for (r, _), c in replaced[v].items():
                verb_counts[r] += c
            top_v = verb_counts.most_common(1)[0][0]
            rep_ex = next(a for (r, a), _ in replaced[v].most_common() if r == top_v)
            content = (
                f"{verb_txt} was rejected ({said}) in {len(bad)} episodes, e.g. `{ex}`. "
                f"What the engine accepted next was `{top_v}`, e.g. `{rep_ex}`. "
                f"Use `{top_v}` instead of repeating the rejected command."
            )
            advice = f"use `{top_v}` instead"
        else:
            content = (
                f"{verb_txt} was rejected ({said}) in {len(bad)} episodes, e.g. `{ex}`. "
                "Do not repeat it: check the admissible commands and change the verb or target."
            )
            advice = "change the command"
        if v == UNTAGGED:
            if not opening:
                continue
            words = r"\s+".join(re.escape(w) for w in opening.split())
            trigger = Trigger(type="observation_pattern", pattern=rf"\b{words}")
            name = _slug("wrap", "actions", "in", "tags")
            when = f"The observation says '{opening}...' after an untagged reply."
        else:
            trigger = Trigger(type="action_pattern", pattern=verb_pattern(v, tagged))
            name = _slug("when", v, "is", "rejected")
            when = f"The previous action was `{v}`; the engine may have rejected it."
        why = f"{verb_txt} rejected in {len(bad)} episodes; {advice}"
        out.append(
            Finding(
                key=f"rules:rejected:{v}",
                text=f"The engine accepts the agent's {verb_txt} commands.",
                passed_ids=ok,
                failed_ids=sorted(bad),
                target_ids=sorted(bad),
                score=float(len(bad)),
                make_skill=partial(
                    _skill,
                    name,
                    f"What to do when {verb_txt} is rejected.",
                    when,
                    content,
                    trigger,
                    why,
                    max_chars,
                ),
                why=why,
            )
        )
    return out


def find_loops(
    episodes: Sequence[Episode], loop_length: int, min_support: int, max_chars: int = 500
) -> list[Finding]:
    """Episodes that repeat one action ``loop_length`` times in a row, if looping hurts."""
    tagged = _is_tagged_env(episodes)
    looping: dict[str, list[str]] = {}
    for ep in episodes:
        run, prev = 0, None
        for t in ep.turns:
            a = " ".join(t.action.lower().split())
            run = run + 1 if a == prev else 1
            prev = a
            if run >= loop_length:
                looping[ep.episode_id] = [a]
                break
    bad = [e for e in episodes if e.episode_id in looping]
    good = [e for e in episodes if e.episode_id not in looping]
    failed_bad = [e for e in bad if not e.success]
    if len(failed_bad) < min_support:
        return []
    win_bad = sum(e.success for e in bad) / len(bad)
    win_good = sum(e.success for e in good) / len(good) if good else 0.0
    if good and win_bad >= win_good:
        return []
    verbs = Counter(action_verb(looping[e.episode_id][0], tagged) for e in bad)
    top = [v for v, c in verbs.most_common(3) if v and c >= 0.2 * len(bad)]
    if not top:
        return []
    example = Counter(looping[e.episode_id][0] for e in bad).most_common(1)[0][0]
    pattern = "|".join(verb_pattern(v, tagged) for v in top)
    if len(top) > 1:
        pattern = f"(?:{pattern})"
    content = (
        f"Repeating the same action {loop_length}+ times in a row (e.g. `{example}`) happened in "
        f"{len(bad)} episodes; they succeeded {_pct(win_bad)} of the time vs {_pct(win_good)} "
        "otherwise. If your last action changed nothing, do not send it again: try another "
        "command, object or place."
    )
    why = f"{len(failed_bad)} failed episodes looped on one action"
    return [
        Finding(
            key="rules:loop",
            text="The agent does not repeat an action that changed nothing.",
            passed_ids=[e.episode_id for e in good],
            failed_ids=[e.episode_id for e in bad],
            target_ids=[e.episode_id for e in failed_bad],
            score=float(len(failed_bad)) * (win_good - win_bad + 0.1),
            make_skill=lambda: _skill(
                _slug("break", "repeated", *top[:1], "loops"),
                "Stop repeating an action that changed nothing.",
                "The previous action repeats earlier ones without progress.",
                content,
                Trigger(type="action_pattern", pattern=pattern),
                why,
                max_chars,
            ),
            why=why,
        )
    ]


def _grams(
    ep: Episode, tagged: bool
) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], tuple[str, ...]]]:
    verbs: list[str] = []
    acts: list[str] = []
    for t in ep.turns:
        if t.invalid_action:
            continue
        v = action_verb(t.action, tagged)
        if v and (not verbs or verbs[-1] != v):
            verbs.append(v)
            acts.append(t.action)
    grams: set[tuple[str, ...]] = set()
    example: dict[tuple[str, ...], tuple[str, ...]] = {}
    for n in (1, 2):
        for i in range(len(verbs) - n + 1):
            g = tuple(verbs[i : i + n])
            grams.add(g)
            example.setdefault(g, tuple(acts[i : i + n]))
    return grams, example


def fisher_greater(with_wins: int, wins: int, with_fails: int, fails: int) -> float:
    """One-sided Fisher exact p-value that successes carry a pattern more often than failures.

    The hypergeometric tail P(X >= with_wins) when ``with_wins + with_fails`` episodes that
    show the pattern are drawn from ``wins + fails`` episodes of which ``wins`` succeeded.
    Why: with a handful of successes per task type, "in 40 % of successes vs 0 % of failures"
    is 2 of 5 — chance level — and such n-grams became skills the loop then had to test.
    """
    total, shown = wins + fails, with_wins + with_fails
    denom = math.comb(total, wins)
    tail = sum(
        math.comb(shown, x) * math.comb(total - shown, wins - x)
        for x in range(with_wins, min(shown, wins) + 1)
    )
    return tail / denom


def _by_task_type(episodes: Sequence[Episode]) -> list[tuple[str, list[Episode]]]:
    """Episodes grouped by task type (``task`` when untyped), in a stable order."""
    by_type: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_type[ep.task_type or "task"].append(ep)
    return sorted(by_type.items())


def _type_words(ttype: str) -> list[str]:
    """A task type's words for skill text: ``pick_and_place_simple`` -> pick place simple."""
    return [w for w in _words(ttype.replace("_", " ")) if w not in _STOP and not w.isdigit()]


def find_enriched_ngrams(
    episodes: Sequence[Episode],
    min_support: int,
    min_enrichment: float,
    max_chars: int = 500,
    max_p_value: float = 1.0,
) -> list[Finding]:
    """Per task type: the verb n-gram most over-represented in successes vs failures.

    An n-gram counts only if at least ``min_support`` successes show it, at least
    ``min_support`` failures lack it, and its one-sided Fisher exact p-value is at most
    ``max_p_value`` (:func:`fisher_greater`)."""
    tagged = _is_tagged_env(episodes)
    out: list[Finding] = []
    for ttype, eps in _by_task_type(episodes):
        wins = [e for e in eps if e.success]
        fails = [e for e in eps if not e.success]
        if len(fails) < min_support or len(wins) < 2:
            continue
        info = {e.episode_id: _grams(e, tagged) for e in eps}
        cand: Counter[tuple[str, ...]] = Counter()
        for e in wins:
            cand.update(info[e.episode_id][0])
        best = None
        for g in cand:
            n_ws = sum(g in info[e.episode_id][0] for e in wins)
            n_fs = sum(g in info[e.episode_id][0] for e in fails)
            ps, pf = n_ws / len(wins), n_fs / len(fails)
            lacking = [e for e in fails if g not in info[e.episode_id][0]]
            if ps - pf < min_enrichment or len(lacking) < min_support or n_ws < min_support:
                continue
            if max_p_value < 1.0 and (
                fisher_greater(n_ws, len(wins), n_fs, len(fails)) > max_p_value
            ):
                continue
            key = (ps - pf, len(g), ps)
            if best is None or key > best[0]:
                best = (key, g, ps, pf, lacking)
        if best is None:
            continue
        _, g, ps, pf, lacking = best
        ex_ep = next(e for e in wins if g in info[e.episode_id][0])
        ex = info[ex_ep.episode_id][1][g]
        seq = " then ".join(f"`{v}`" for v in g)
        ex_txt = " then ".join(f"`{a[:80]}`" for a in ex)
        type_words = _type_words(ttype)
        task_words = Counter(
            w
            for e in lacking
            for w in set(_words(e.task))
            if w not in _STOP and len(w) > 2 and not w.isdigit()
        )
        common = [w for w, c in task_words.most_common(12) if c >= 0.5 * len(lacking)][:6]
        label = " ".join(type_words) or ttype
        content = (
            f"In {label} tasks, successful episodes did {seq} ({_pct(ps)} of successes vs "
            f"{_pct(pf)} of failures), e.g. {ex_txt}. Follow that order before finishing."
        )
        why = f"{seq} in {_pct(ps)} of {ttype} successes vs {_pct(pf)} of failures"
        desc = (
            f"{label.capitalize()} tasks: "
            + " ".join(dict.fromkeys(type_words + common))
            + f": {seq}."
        )
        name = _slug(
            *type_words[:3],
            *("-".join(v.split()) for v in g),
            "first" if len(g) == 1 else "",
            limit=56,
        )
        out.append(
            Finding(
                key=f"rules:ngram:{ttype}:{'>'.join(g)}",
                text=f"In {ttype} tasks the agent does {seq}.",
                passed_ids=[e.episode_id for e in eps if g in info[e.episode_id][0]],
                failed_ids=[e.episode_id for e in lacking],
                target_ids=[e.episode_id for e in lacking],
                score=(ps - pf) * len(lacking),
                make_skill=partial(
                    _skill,
                    name,
                    desc.replace("`", "")[:1000],
                    f"The task is a {label} task.",
                    content,
                    Trigger(type="retrieval", top_k=2),
                    why,
                    max_chars,
                ),
                why=why,
                task_types=[ttype],
            )
        )
    return out


_ROLES = ("OBJECT", "TARGET")


def _task_roles(task: str, actions: Sequence[str]) -> dict[str, str]:
    """Object types the task names, in the order it names them: OBJECT, TARGET, ..."""
    words = _words(task)
    seen = {m.split()[0] for a in actions for m in _OBJ.findall(a.lower())}
    named = sorted((words.index(w), w) for w in seen if w in words)
    return {w: _ROLES[i] if i < len(_ROLES) else f"THING{i + 1}" for i, (_, w) in enumerate(named)}


def command_template(action: str, roles: dict[str, str], other: str | None = None) -> str:
    """An action with its object ids abstracted: a type the task names becomes its role,
    any other keeps its type (or becomes ``other``), and every number becomes ``N``.

    States are written with ``other="PLACE"`` (where the agent took the mug from should not
    split the evidence); advice keeps the type (``go to microwave N`` is the point).

    >>> roles = {"mug": "OBJECT", "desk": "TARGET"}
    >>> command_template("move mug 2 to desk 1", roles), command_template("go to microwave 1", roles)
    ('move OBJECT N to TARGET N', 'go to microwave N')
    >>> command_template("take mug 2 from shelf 3", roles, other="PLACE")
    'take OBJECT N from PLACE N'
    """

    def sub(m: re.Match[str]) -> str:
        kind = m.group(0).split()[0]
        return f"{roles.get(kind, other or kind)} N"

    return _OBJ.sub(sub, " ".join(action.lower().split()))


def find_command_templates(
    episodes: Sequence[Episode],
    min_support: int,
    min_enrichment: float,
    max_chars: int = 500,
    max_p_value: float = 1.0,
) -> list[Finding]:
    """Per task type: the next command successes took at one state, as a template.

    The state is the previous accepted command's template (``go to TARGET N``); the
    statistic compares, among the episodes of the task type that reached that state, the
    successes and the failures that followed it with the same next template. A template
    counts if at least ``min_support`` successes took it, its share among those successes
    beats the failures' by ``min_enrichment``, at least ``min_support`` failures that got
    there did something else, and the one-sided Fisher exact p-value is at most
    ``max_p_value``. The best template per task type becomes one finding."""
    if _is_tagged_env(episodes):
        return []
    out: list[Finding] = []
    for ttype, eps in _by_task_type(episodes):
        wins = [e for e in eps if e.success]
        fails = [e for e in eps if not e.success]
        if len(fails) < min_support or len(wins) < min_support:
            continue
        reached: dict[str, set[str]] = defaultdict(set)  # state -> episode ids
        took: dict[tuple[str, str], set[str]] = defaultdict(set)
        example: dict[tuple[str, str], tuple[str, str]] = {}
        for e in eps:
            acts = [t.action for t in e.turns if not t.invalid_action]
            roles = _task_roles(e.task, acts)
            for prev, nxt in zip(acts, acts[1:]):
                state = command_template(prev, roles, other="PLACE")
                move = command_template(nxt, roles)
                if not _OBJ.search(prev.lower()) or state == command_template(nxt, roles, "PLACE"):
                    continue  # an object-less command or a repeat is no state to advise at
                reached[state].add(e.episode_id)
                took[(state, move)].add(e.episode_id)
                if e.success:
                    example.setdefault((state, move), (prev, nxt))
        win_ids = {e.episode_id for e in wins}
        best = None
        for (state, move), ids in took.items():
            there = reached[state]
            w_there, f_there = there & win_ids, there - win_ids
            n_ws, n_fs = len(ids & win_ids), len(ids - win_ids)
            if n_ws < min_support or not f_there:
                continue
            ps, pf = n_ws / len(w_there), n_fs / len(f_there)
            lacking = sorted(f_there - ids)
            if ps - pf < min_enrichment or len(lacking) < min_support:
                continue
            p = fisher_greater(n_ws, len(w_there), n_fs, len(f_there))
            if p > max_p_value:
                continue
            key = (ps - pf, n_ws, -p, state, move)
            if best is None or key > best[0]:
                best = (key, state, move, n_ws, len(w_there), n_fs, len(f_there), lacking)
        if best is None:
            continue
        _, state, move, n_ws, n_w, n_fs, n_f, lacking = best
        ex_prev, ex_next = example[(state, move)]
        type_words = _type_words(ttype)
        label = " ".join(type_words) or ttype
        verb = action_verb(state)
        used = [(r, n) for r, n in zip(_ROLES, ("first", "second")) if r in state or r in move]
        named = (
            " (" + ", ".join(f"{r} = the {n} thing the task names" for r, n in used) + ")"
            if used
            else ""
        )
        content = (
            f"In {label} tasks{named}: right after `{state}`, do `{move}`. Successful "
            f"episodes did it there ({n_ws} of {n_w}; failures {n_fs} of {n_f}), e.g. "
            f"`{ex_prev[:80]}` -> `{ex_next[:80]}`."
        )
        why = (
            f"after `{state}` in {ttype}: `{move}` in {n_ws}/{n_w} successes vs "
            f"{n_fs}/{n_f} failures that got there"
        )
        name = _slug(
            *type_words[:3], "after", *verb.split(), "then", *action_verb(move).split(), limit=56
        )
        out.append(
            Finding(
                key=f"rules:template:{ttype}:{state}>{move}",
                text=f"In {ttype} tasks, right after `{state}` the agent does `{move}`.",
                passed_ids=sorted(took[(state, move)]),
                failed_ids=lacking,
                target_ids=lacking,
                score=(n_ws / n_w - n_fs / n_f) * len(lacking) + 0.5,
                make_skill=partial(
                    _skill,
                    name,
                    f"{label.capitalize()} tasks: after {state}, do {move}.".replace("`", "")[
                        :1000
                    ],
                    f"The previous command was `{state}` in a {label} task.",
                    content,
                    Trigger(type="action_pattern", pattern=verb_pattern(verb, False)),
                    why,
                    max_chars,
                ),
                why=why,
                task_types=[ttype],
            )
        )
    return out


def _entities(question: str) -> set[str]:
    toks = re.findall(r"[A-Za-z][\w'-]*", question)
    return {
        t.lower() for i, t in enumerate(toks) if i > 0 and t[0].isupper() and t.lower() not in _STOP
    }


def find_query_entities(
    episodes: Sequence[Episode], min_support: int, min_enrichment: float, max_chars: int = 500
) -> list[Finding]:
    """Search queries: did naming the question's entities separate wins from losses?"""
    if not _is_tagged_env(episodes):
        return []
    with_q: list[tuple[Episode, bool, str]] = []
    for ep in episodes:
        ents = _entities(ep.task)
        queries = [
            _search_content(t.action) for t in ep.turns if action_verb(t.action, True) == "search"
        ]
        queries = [q for q in queries if q]
        if not queries or not ents:
            continue
        named = any(e in queries[0].lower() for e in ents)  # later hops name other things
        with_q.append((ep, named, queries[0]))
    named_eps = [x for x in with_q if x[1]]
    vague = [x for x in with_q if not x[1]]
    vague_failed = [x for x in vague if not x[0].success]
    if len(vague_failed) < min_support or not named_eps:
        return []
    p_named = sum(x[0].success for x in named_eps) / len(named_eps)
    p_vague = sum(x[0].success for x in vague) / len(vague)
    if p_named - p_vague < min_enrichment:
        return []
    good_q = next((q for ep, n, q in named_eps if ep.success), named_eps[0][2])
    bad_q = vague_failed[0][2]
    content = (
        f"Queries that named the people or places of the question found the answer: "
        f"{_pct(p_named)} success vs {_pct(p_vague)} for queries without them (e.g. "
        f"`{bad_q[:60]}`). Put the exact names in <search>, e.g. `<search> {good_q[:80]} </search>`; "
        "if the information does not contain the answer, search again with the names."
    )
    why = f"entity-named queries won {_pct(p_named)} vs {_pct(p_vague)}"
    return [
        Finding(
            key="rules:query-entities",
            text="The agent's search queries name the entities of the question.",
            passed_ids=[x[0].episode_id for x in named_eps],
            failed_ids=[x[0].episode_id for x in vague],
            target_ids=[x[0].episode_id for x in vague_failed],
            score=(p_named - p_vague) * len(vague_failed),
            make_skill=lambda: _skill(
                "name-entities-in-queries",
                "Search with the exact names from the question.",
                "Right after a search whose query may have missed the question's names.",
                content,
                Trigger(type="action_pattern", pattern=r"<search>"),
                why,
                max_chars,
            ),
            why=why,
        )
    ]


def _ngrams_or_templates(episodes: Sequence[Episode], cfg: CreatorConfig) -> list[Finding]:
    """Command templates where a task type has one, else its enriched n-gram."""
    args = (episodes, cfg.rules_min_support, cfg.rules_min_enrichment, cfg.max_skill_content_chars)
    ngrams = find_enriched_ngrams(*args, max_p_value=cfg.rules_max_p_value)
    if not cfg.rules_command_templates:
        return ngrams
    templates = find_command_templates(*args, max_p_value=cfg.rules_max_p_value)
    covered = {t for f in templates for t in f.task_types}
    return templates + [f for f in ngrams if not covered & set(f.task_types)]


class RulesCreator:
    """Offline creator (see the module docstring)."""

    name = "rules"

    def run(self, ctx: PassContext) -> Proposal | None:
        cfg = ctx.config
        episodes = ctx.reservoir.episodes()
        if not episodes:
            ctx.stop("nothing_to_propose", "reservoir", "the reservoir is empty")
            return None
        if all(e.success for e in episodes):
            ctx.stop(
                "nothing_to_propose",
                "reservoir",
                f"no failed episodes among {len(episodes)}: nothing to diagnose",
            )
            return None
        mc = cfg.max_skill_content_chars
        findings = [
            *find_rejections(episodes, cfg.rules_min_support, mc),
            *find_loops(episodes, cfg.rules_loop_length, cfg.rules_min_support, mc),
            *_ngrams_or_templates(episodes, cfg),
            *find_query_entities(episodes, cfg.rules_min_support, cfg.rules_min_enrichment, mc),
        ]
        ctx.checkpoint()
        by_id = {e.episode_id: e for e in episodes}
        seen_keys = set()
        linked: list[tuple[Finding, Assertion]] = []
        for f in findings:
            seen_keys.add(f.key)
            old = ctx.store.by_key(f.key)
            ex = f.failed_ids[-cfg.max_assertion_examples :][::-1]
            types = sorted(
                {by_id[i].task_type for i in f.failed_ids if by_id[i].task_type} | set(f.task_types)
            )
            change = AssertionChange(
                op="create" if old is None else "update",
                id=None if old is None else old.id,
                text=f.text,
                passed=len(f.passed_ids),
                failed=len(f.failed_ids),
                example_episode_ids=ex,
                task_types=types,
            )
            linked.append((f, ctx.store.apply(change, step=ctx.step, key=f.key)))
        for a in ctx.store.all():
            if a.key and a.key.startswith("rules:") and a.key not in seen_keys:
                ctx.store.apply(
                    AssertionChange(
                        op="retire", id=a.id, reason="no longer observed in the reservoir"
                    ),
                    step=ctx.step,
                )
        ctx.event(
            "assertions_updated",
            "rules",
            f"{len(findings)} statistics -> {len(ctx.store.all())} active assertions",
        )
        if not findings:
            ctx.stop("nothing_to_propose", "rules", "no statistic reached the support thresholds")
            return None
        failing = {a.id for a in ctx.store.failing(cfg.failing_assertion_min_rate)}
        ranked = sorted(
            ((f, a) for f, a in linked if a.id in failing),
            key=lambda fa: (-fa[0].score, fa[1].id),
        )
        if not ranked:
            ctx.stop("nothing_to_propose", "recommend", "no failing assertion")
            return None
        accepted: list[tuple[Operation, SkillVerification, list[Assertion], str]] = []
        for f, a in ranked:
            ctx.checkpoint()
            if len(accepted) >= cfg.max_operations_per_pass:
                break
            try:
                skill = f.make_skill().replace(created_at_step=ctx.step)
            except SkillError as e:
                ctx.event("rejected", "author", f"{f.key}: could not build a skill: {e}")
                continue
            op = Operation.add(skill)
            rep = ctx.verifier.verify(
                op, ctx.episodes_by_id(f.target_ids), accepted=[o for o, *_ in accepted]
            )
            if not rep.passed:
                ctx.event(
                    "verification_failed",
                    "verify",
                    f"{skill.name}: {rep.feedback()}",
                    skill=skill.name,
                )
                continue
            ctx.event("skill_verified", "verify", f"add {skill.name} ({f.why})", skill=skill.name)
            accepted.append((op, rep, [a], f.why))
        return finish_proposal(ctx, accepted, self.name)
