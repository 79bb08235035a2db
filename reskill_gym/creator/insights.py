"""Contrastive insights: one per sampled task group, their index, and their clustering.

Exports ``GroupInsight``, ``Insight``, ``InsightGroup``, ``render_group``, ``reply_reasoning``,
``heuristic_insight``, ``summarize_insights``, ``normalize_insight_groups``,
``heuristic_insight_groups`` and ``render_insight_groups``.

Stage 1 of the published pipeline (``episode_analyzer.py``): one LLM call per task group of
1-6 episodes compares success with failure and the candidate (``new``) arm with the
incumbent (``old``) one, and returns one structured insight with action snippets, the
failure point, regexes of trigger-relevant actions, the arm delta and a confidence. When
the call fails the group still yields an insight, built from the trajectories alone
(``heuristic_insight``), so one bad answer never empties a pass. ``summarize_insights`` is the
deterministic bridge to the diagnosis: a numbered one-line index. The diagnosis clusters the
indices into 3-8 groups with a representative; ``normalize_insight_groups`` makes whatever
the LLM returned a partition of the indices, and ``heuristic_insight_groups`` clusters by
failure-mode label when there is no LLM answer.

>>> from reskill_gym.creator.reservoir import EpisodeGroup
>>> from reskill_gym.episode import Episode, Turn
>>> eps = (Episode(episode_id="a", env_id="x", task_id="t1", task="heat an egg", won=True,
...                turns=[Turn(observation="o", action="heat egg 1 with microwave 1")]),
...        Episode(episode_id="b", env_id="x", task_id="t1", task="heat an egg",
...                turns=[Turn(observation="o", action="look")] * 4))
>>> ins = heuristic_insight(EpisodeGroup("t1", eps), index=0)
>>> ins.failure_mode, ins.source, ins.success_snippet
('repeated_action', 'heuristic', ['heat egg 1 with microwave 1'])
>>> print(summarize_insights([ins]))
INSIGHT SUMMARIES (1 episode analyses):
<BLANKLINE>
0. Failed after 4 steps repeating 'look' 4 times in a row; a success took 1 steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from reskill_gym.creator.reservoir import EpisodeGroup, arm_label
from reskill_gym.episode import Turn

__all__ = [
    "GroupInsight",
    "Insight",
    "InsightGroup",
    "render_group",
    "reply_reasoning",
    "heuristic_insight",
    "summarize_insights",
    "normalize_insight_groups",
    "heuristic_insight_groups",
    "render_insight_groups",
]

_LABELS = "ABCDEF"


class GroupInsight(BaseModel):
    """What the contrastive analyst returns for one task group (the published fields)."""

    task_type: str = Field("unknown", max_length=200)
    insight: str = Field(
        max_length=1000, description="One sentence: the key behavioural finding of the group."
    )
    failure_mode: str = Field("unknown", max_length=120, description="short_label for clustering")
    failure_snippet: list[str] | None = Field(
        None, max_length=12, description="3-8 actions showing the failure (null: no failure)."
    )
    failure_point: str | None = Field(None, max_length=600)
    success_snippet: list[str] | None = Field(None, max_length=12)
    success_pattern: str | None = Field(None, max_length=600)
    trigger_relevant_actions: list[str] = Field(
        default_factory=list, max_length=12, description="Regexes over raw action strings."
    )
    skill_impact: str = Field("N/A", max_length=600)
    ab_delta: str = Field("N/A", max_length=600)
    confidence: Literal["high", "medium", "low"] = "low"

    @field_validator("confidence", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


class Insight(GroupInsight):
    """A ``GroupInsight`` with where it came from (set by the pipeline, not by the model)."""

    index: int
    task_id: str
    task_query: str = ""
    episode_ids: list[str] = Field(default_factory=list)
    source: Literal["llm", "heuristic"] = "llm"

    def line(self) -> str:
        """The one-liner of the index (``insight``, else the failure mode)."""
        return " ".join(self.insight.split()) or self.failure_mode or "unknown"


class InsightGroup(BaseModel):
    """A cluster of insight indices with its most informative member."""

    label: str = Field(max_length=200)
    insight_indices: list[int] = Field(default_factory=list)
    representative_index: int | None = None


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _longest_run(actions: Sequence[str]) -> tuple[str, int]:
    best, run, best_n = "", 0, 0
    for i, a in enumerate(actions):
        run = run + 1 if i and a == actions[i - 1] else 1
        if run > best_n:
            best, best_n = a, run
    return best, best_n


def _loop(actions: Sequence[str], window: int = 4) -> str | None:
    """A short action cycle repeated >= 3 times (e.g. 'go to x, open x' x5), if any."""
    for size in range(2, window + 1):
        for start in range(0, len(actions) - size * 2 + 1):
            pat = list(actions[start : start + size])
            reps, pos = 1, start + size
            while pos + size <= len(actions) and list(actions[pos : pos + size]) == pat:
                reps += 1
                pos += size
            if reps >= 3:
                shown = ", ".join(pat[:3]) + (", ..." if size > 3 else "")
                return f'loop: "{shown}" repeated {reps} times'
    return None


_REASONING_CHARS = 400
_ACTION_TAGS = ("<action>", "<search>", "<answer>")


def reply_reasoning(turn: Turn) -> str:
    """The model's reasoning in a turn's reply: the text before its first action tag
    (published ``format_contrastive_group``), the reply itself when it has no tag and is not
    just the action; '' for replies that are only their action (score mode, scripted).

    >>> reply_reasoning(Turn(observation="", action="look", reply="Lost; skill none. <action>look</action>"))
    'Lost; skill none.'
    >>> reply_reasoning(Turn(observation="", action="look", reply="look", parse="score"))
    ''
    """
    raw = turn.reply
    if not raw.strip() or raw.strip() == turn.action.strip():
        return ""
    for tag in _ACTION_TAGS:
        idx = raw.find(tag)
        if idx > 0:
            return raw[:idx].strip()[:_REASONING_CHARS]
    if any(tag in raw for tag in _ACTION_TAGS):
        return ""  # the reply starts with its action: nothing before it
    return raw.strip()[:_REASONING_CHARS]


def render_group(
    group: EpisodeGroup,
    *,
    max_actions: int = 30,
    last_n_observations: int = 2,
    max_observation_chars: int = 240,
) -> str:
    """The contrastive view of one task group (published ``format_contrastive_group``).

    Each episode is labelled A-F with its arm (``new`` = candidate version, ``old`` =
    incumbent / no test), outcome, reward and length; then one line per action with the
    skills that were in that turn's bundle. Long traces keep the first and last 5 actions
    and name a detected loop. For the last steps, as published, the model's reasoning (the
    reply before its action tag, ``reply_reasoning``: "which skill I applied" in the
    published turn format); a turn whose reply is only its action (score mode, scripted
    agents) shows the observation that action produced instead ("Nothing happens." is what
    explains many failures).
    """
    eps = group.episodes
    if not eps:
        return ""
    first = eps[0]
    lines = [
        f"TASK: {_clip(first.task, 500)}",
        f"TYPE: {first.task_type or 'unknown'}",
        "",
    ]
    for k, ep in enumerate(eps):
        label = _LABELS[k] if k < len(_LABELS) else str(k + 1)
        outcome = "SUCCESS" if ep.success else "FAIL"
        n = len(ep.turns)
        lines.append(
            f"EPISODE {label} [{arm_label(ep)}, {outcome}, reward={ep.reward:.1f}, {n} steps]:"
        )
        actions = [t.action for t in ep.turns]
        produced = [t.observation for t in ep.turns[1:]] + [ep.final_observation]
        shown = list(range(n)) if n <= max_actions else [*range(5), -1, *range(n - 5, n)]
        for j in shown:
            if j < 0:
                loop = _loop(actions)
                lines.append(
                    f"  ... ({n - 10} steps, {loop}) ..."
                    if loop
                    else f"  ... ({n - 10} more steps) ..."
                )
                continue
            skills = ep.turns[j].skill_ids
            suffix = f"  [skills: {', '.join(skills)}]" if skills else ""
            line = f"  {j + 1}. ACTION: {_clip(actions[j], 200)}{suffix}"
            if j >= n - last_n_observations:
                reasoning = reply_reasoning(ep.turns[j])
                if reasoning:
                    line += f"\n       REASONING: {_clip(reasoning, _REASONING_CHARS)}"
                elif produced[j]:
                    line += f"\n       OBSERVATION: {_clip(produced[j], max_observation_chars)}"
            lines.append(line)
        fired = sorted({s for t in ep.turns for s in t.skill_ids})
        if fired:
            lines.append(f"  Skills active: [{', '.join(fired)}]")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def heuristic_insight(group: EpisodeGroup, *, index: int) -> Insight:
    """An insight from the trajectories alone, for a group whose LLM call failed.

    The published fallback says only "Episode failed after N steps"; this one also names the
    longest run of one repeated action (the commonest failure in text games) and a loop.
    """
    eps = group.episodes
    fails = [e for e in eps if not e.success]
    wins = [e for e in eps if e.success]
    task = eps[0].task if eps else ""
    parts: list[str] = []
    mode = "unknown"
    fail_snip = fail_point = None
    if fails:
        f = fails[0]
        acts = [t.action for t in f.turns]
        act, run = _longest_run(acts)
        loop = _loop(acts)
        parts.append(f"Failed after {len(acts)} steps")
        if run >= 3:
            mode = "repeated_action"
            parts[-1] += f" repeating {_clip(act, 60)!r} {run} times in a row"
        elif loop:
            mode = "action_loop"
            parts[-1] += f" in a {loop}"
        fail_snip = acts[-6:]
        fail_point = f"Step {len(acts)}: episode ended without success"
    succ_snip = succ_pattern = None
    if wins:
        w = wins[0]
        succ_snip = [t.action for t in w.turns][:6]
        succ_pattern = f"Succeeded in {len(w.turns)} steps"
        parts.append(f"a success took {len(w.turns)} steps")
    return Insight(
        index=index,
        task_id=group.task_id,
        task_query=_clip(task, 500),
        episode_ids=[e.episode_id for e in eps],
        source="heuristic",
        task_type=(eps[0].task_type or "unknown") if eps else "unknown",
        insight=("; ".join(parts) + ".") if parts else "No episodes.",
        failure_mode=mode if fails else "none",
        failure_snippet=fail_snip,
        failure_point=fail_point,
        success_snippet=succ_snip,
        success_pattern=succ_pattern,
        confidence="low",
    )


def summarize_insights(insights: Sequence[Insight]) -> str:
    """The numbered one-line index the diagnosis reads (published ``summarize``)."""
    if not insights:
        return "No insights available."
    lines = [f"INSIGHT SUMMARIES ({len(insights)} episode analyses):", ""]
    lines += [f"{i}. {ins.line()}" for i, ins in enumerate(insights)]
    return "\n".join(lines)


_RANK = {"high": 0, "medium": 1, "low": 2}


def _best(indices: Sequence[int], insights: Sequence[Insight]) -> int:
    """The most informative member: highest confidence, then from an LLM, then longest."""
    return min(
        indices,
        key=lambda i: (
            _RANK.get(insights[i].confidence, 3),
            insights[i].source != "llm",
            -len(insights[i].insight),
            i,
        ),
    )


def normalize_insight_groups(
    groups: Sequence[InsightGroup],
    insights: Sequence[Insight],
    *,
    max_groups: int = 8,
) -> tuple[list[InsightGroup], list[str]]:
    """Make the diagnoser's clusters a partition of the insight indices, ranked by size.

    Out-of-range and repeated indices are dropped (first group wins), uncovered ones go to
    an ``other`` group, groups past ``max_groups`` are merged into ``other``, and a
    representative that is not a member is replaced by the best member. Returns the groups
    and a list of what was corrected (for the event log).
    """
    n = len(insights)
    notes: list[str] = []
    seen: set[int] = set()
    cleaned: list[InsightGroup] = []
    for g in groups:
        members: list[int] = []
        for i in g.insight_indices:
            if not isinstance(i, int) or not 0 <= i < n:
                notes.append(f"group {g.label!r}: index {i} out of range 0..{n - 1}")
            elif i in seen:
                notes.append(f"group {g.label!r}: index {i} already in another group")
            else:
                members.append(i)
                seen.add(i)
        if members:
            cleaned.append(g.model_copy(update={"insight_indices": members}))
        else:
            notes.append(f"group {g.label!r} has no valid index; dropped")
    missing = [i for i in range(n) if i not in seen]
    if missing:
        notes.append(f"indices {missing} were in no group; put in 'other'")
    cleaned.sort(key=lambda g: -len(g.insight_indices))
    if len(cleaned) + (1 if missing else 0) > max_groups:
        keep = max_groups - 1
        merged = [i for g in cleaned[keep:] for i in g.insight_indices]
        notes.append(f"{len(cleaned) - keep} smallest groups merged into 'other'")
        cleaned = cleaned[:keep]
        missing = sorted(missing + merged)
    if missing:
        cleaned.append(InsightGroup(label="other", insight_indices=missing))
    out = []
    for g in cleaned:
        rep = g.representative_index
        if rep not in g.insight_indices:
            if rep is not None:
                notes.append(f"group {g.label!r}: representative {rep} is not a member")
            rep = _best(g.insight_indices, insights)
        out.append(g.model_copy(update={"representative_index": rep}))
    out.sort(key=lambda g: -len(g.insight_indices))
    return out, notes


def heuristic_insight_groups(
    insights: Sequence[Insight], *, max_groups: int = 8
) -> list[InsightGroup]:
    """Clusters by failure-mode label (largest first), for when the diagnosis has no answer."""
    by: dict[str, list[int]] = {}
    for i, ins in enumerate(insights):
        by.setdefault((ins.failure_mode or "unknown").strip().lower(), []).append(i)
    groups = [InsightGroup(label=k, insight_indices=v) for k, v in by.items()]
    return normalize_insight_groups(groups, insights, max_groups=max_groups)[0]


def render_insight_groups(groups: Sequence[InsightGroup], insights: Sequence[Insight]) -> str:
    """The recommender's view: each cluster with its representative expanded."""
    if not groups:
        return "No insight groups available."
    lines = [f"FAILURE PATTERN GROUPS ({len(groups)} clusters):", ""]
    for rank, g in enumerate(groups, 1):
        lines.append(
            f"{rank}. {g.label} ({len(g.insight_indices)} insights: indices {g.insight_indices})"
        )
        rep = g.representative_index
        if rep is not None and 0 <= rep < len(insights):
            r = insights[rep]
            lines.append(f"   Representative (#{rep}):")
            if r.task_type and r.task_type != "unknown":
                lines.append(f"   Task type: {r.task_type}")
            if r.task_query:
                lines.append(f"   Task query: {r.task_query}")
            lines.append(f"   Insight: {r.insight}")
            if r.failure_mode:
                lines.append(f"   Failure mode: {r.failure_mode}")
            if r.failure_snippet:
                lines.append(f"   Failure actions: {' -> '.join(r.failure_snippet[:8])}")
            if r.failure_point:
                lines.append(f"   Failure point: {r.failure_point}")
            if r.success_snippet:
                lines.append(f"   Success actions: {' -> '.join(r.success_snippet[:8])}")
            if r.success_pattern:
                lines.append(f"   Success pattern: {r.success_pattern}")
            if r.trigger_relevant_actions:
                lines.append(f"   Trigger-relevant actions: {r.trigger_relevant_actions}")
            if r.ab_delta and r.ab_delta.strip().lower() != "n/a":
                lines.append(f"   AB delta: {r.ab_delta}")
            lines.append(f"   Confidence: {r.confidence}")
        lines.append("")
    return "\n".join(lines).rstrip()
