"""What a creator pass knows besides the reservoir: past version tests and the action vocabulary.

Exports ``VersionTestRecord``, ``version_test_history``, ``render_version_history`` and
``action_vocabulary``.

The published recommender reads the last ``n_version_history`` (5) version-test decisions
("Step 40: REJECTED (new=0.412 vs old=0.455) -- ADD: x") so it does not repeat a rejected
idea, and the environment's action vocabulary so triggers match real commands. Here the
decisions are read from the skill library's own history (a version test's decision is
logged there by ``CoEvolution``, the commit that created the candidate carries the
operations), so they survive a resume with no extra state. The vocabulary is a short table
per registered environment (its ``EnvSpec.creator_vocabulary``) plus the action templates actually seen in the reservoir (numbers
replaced by ``<N>``), so an unknown environment still gets one.

>>> print(render_version_history([VersionTestRecord(step=40, accepted=False, new_mean=0.412,
...       old_mean=0.455, operations=["ADD: open-first"])], n_last=5))
Version History (last 1 of 1):
  Step 40: REJECTED (new=0.412 vs old=0.455) -- ADD: open-first
>>> print(action_vocabulary("ReSkill-Search-v0", []).splitlines()[0])
The agent answers multi-hop questions with a search engine. Actions are tagged:
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from reskill_gym.episode import Episode

__all__ = [
    "VersionTestRecord",
    "version_test_history",
    "render_version_history",
    "action_vocabulary",
]


class VersionTestRecord(BaseModel):
    """One decided version test, as the recommender sees it."""

    step: int | None = None
    started_step: int | None = None
    accepted: bool
    candidate: str = ""
    incumbent: str = ""
    new_mean: float = Field(0.0, description="Candidate arm's success rate over the test.")
    old_mean: float = Field(0.0, description="Incumbent arm's success rate over the test.")
    new_episodes: int = 0
    old_episodes: int = 0
    operations: list[str] = Field(default_factory=list, description="e.g. 'ADD: open-first'.")

    def line(self) -> str:
        verdict = "ACCEPTED" if self.accepted else "REJECTED"
        ops = ", ".join(self.operations) or "?"
        step = "?" if self.step is None else self.step
        return (
            f"  Step {step}: {verdict} (new={self.new_mean:.3f} vs old={self.old_mean:.3f}) "
            f"-- {ops}"
        )


def version_test_history(library: Any, last: int | None = None) -> list[VersionTestRecord]:
    """Decided version tests from ``library.history()`` (oldest first, ``last`` newest)."""
    ops_of: dict[str, list[str]] = {}
    out: list[VersionTestRecord] = []
    for e in library.history():
        if e.kind == "commit" and e.version:
            ops_of[e.version] = [f"{o.op.upper()}: {o.name}" for o in e.operations]
            continue
        test = e.extra.get("version_test") if e.kind == "event" else None
        if not isinstance(test, dict):
            continue
        cands = list(test.get("candidates") or [])
        cand = cands[0] if cands else ""
        inc = str(test.get("incumbent", ""))
        counts = test.get("counts") or {}

        def mean(v: str, counts: dict[str, Any] = counts) -> tuple[float, int]:
            c = counts.get(v) or {}
            n = int(c.get("episodes", 0) or 0)
            return ((c.get("successes", 0) or 0) / n if n else 0.0), n

        new_m, new_n = mean(cand)
        old_m, old_n = mean(inc)
        out.append(
            VersionTestRecord(
                step=test.get("step", e.step),
                started_step=test.get("started_step"),
                accepted=test.get("outcome") == "accept",
                candidate=cand,
                incumbent=inc,
                new_mean=new_m,
                old_mean=old_m,
                new_episodes=new_n,
                old_episodes=old_n,
                operations=ops_of.get(cand, []),
            )
        )
    return out[-last:] if last else out


def render_version_history(history: Sequence[VersionTestRecord], n_last: int = 5) -> str:
    """The published one-liner per decision, last ``n_last`` of them."""
    if not history:
        return "No version history."
    recent = list(history)[-n_last:]
    lines = [f"Version History (last {len(recent)} of {len(history)}):"]
    lines += [r.line() for r in recent]
    return "\n".join(lines)


def _known_vocabulary(env_id: str) -> str | None:
    """The env spec's ``creator_vocabulary``: by Gymnasium id or name, else the registered
    name the id contains (``ReSkill-ALFWorld-v0`` -> alfworld)."""
    from reskill_gym.envs.registration import find_spec, specs

    spec = find_spec(env_id)
    if spec is None:
        low = env_id.lower()
        spec = next((s for s in specs() if s.name in low), None)
    return spec.creator_vocabulary if spec is not None else None


_NUM = re.compile(r"\b\d+\b")


def action_vocabulary(env_id: str, episodes: Sequence[Episode], *, top: int = 12) -> str:
    """The known table for ``env_id`` plus the commonest action templates in ``episodes``."""
    parts = []
    known = _known_vocabulary(env_id)
    if known:
        parts.append(known)
    counts: Counter[str] = Counter()
    for ep in episodes:
        for t in ep.turns:
            text = " ".join(t.action.split())
            if text:
                counts[_NUM.sub("<N>", text)[:80]] += 1
    if counts:
        shown = [f"- {a}  (x{n})" for a, n in counts.most_common(top)]
        parts.append("Most frequent actions in the reservoir:\n" + "\n".join(shown))
    return "\n\n".join(parts) if parts else "(no action vocabulary available)"
