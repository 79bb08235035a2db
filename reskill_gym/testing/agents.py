"""Scripted agents that make typical mistakes, for building reservoirs without a model.

Exports ``SearchMistakeAgent``, ``ALFWorldMistakeAgent`` and ``MISTAKE_AGENTS``.

They play the *real* engines (through :func:`reskill_gym.rollout.record_episode`); only
their decisions are scripted, so a reservoir for tests, demos, benchmarks and
``reskill creator record`` holds real trajectories with the failures a creator should find.
Each episode draws a profile from the agent's ``profiles`` weights:

* ``SearchMistakeAgent``: ``good`` (searches the question's entities, reads the answer off
  the retrieved passages, follows a second hop when needed), ``guess`` (answers without
  searching), ``untagged`` (replies without an action tag once or twice, then searches),
  ``vague`` (searches without the entity names, repeats the query, gives up);
* ``ALFWorldMistakeAgent`` (needs ``reset(options={"expert": True})``, which
  ``record_episode`` passes from ``reset_options``): follows the planner, except ``remote``
  (acts on a receptacle without going to it first and repeats the rejected command),
  ``wrong_verb`` (``put X in Y`` instead of ``move X to Y``), ``loop`` (keeps looking around).

>>> import numpy as np
>>> agent = ALFWorldMistakeAgent({"wrong_verb": 1.0})
>>> agent.begin(None, {}, np.random.default_rng(0))
>>> agent.act("You are in a room.", {"expert_plan": ["move apple 1 to table 1"]})
'put apple 1 in table 1'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["SearchMistakeAgent", "ALFWorldMistakeAgent", "MISTAKE_AGENTS"]


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


class SearchMistakeAgent:
    """Search-R1-style agent with scripted profiles (see the module docstring)."""

    reset_options: Mapping[str, Any] = {}

    def __init__(self, profiles: Mapping[str, float] | None = None) -> None:
        self.profiles = dict(profiles or {"good": 0.4, "guess": 0.2, "untagged": 0.2, "vague": 0.2})
        self.profile = "good"

    def begin(self, env: Any, info: Mapping[str, Any], rng: np.random.Generator) -> None:
        self.example = env.unwrapped.current_example
        self.rng = rng
        self.profile = _pick(rng, self.profiles)
        self.hops = list(self.example.hop_queries) or [self.example.question]
        self.untagged_left = int(rng.integers(1, 3))
        self.vague_left = int(rng.integers(2, 4))
        self.turn = 0

    def _vague_query(self) -> str:
        words = re.findall(r"[A-Za-z]+", self.example.question)
        kept = [w.lower() for i, w in enumerate(words) if not (i > 0 and w[0].isupper())]
        return " ".join(kept[:6]) or "answer"

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        self.turn += 1
        ex = self.example
        info_block = observation if "<information>" in observation else ""
        found = next(
            (a for a in ex.answers if info_block and a.lower() in info_block.lower()), None
        )
        if self.profile == "guess":
            words = re.findall(r"\b[A-Z][a-z]+\b", ex.question)
            return f"<answer> {words[-1] if words else 'Paris'} </answer>"
        if self.profile == "untagged" and self.untagged_left > 0:
            self.untagged_left -= 1
            return f"I need to look up {ex.question.rstrip('?')} first."
        if self.profile == "vague":
            if self.vague_left > 0 and not found:
                self.vague_left -= 1
                return f"<search> {self._vague_query()} </search>"
            return f"<answer> {found or 'unknown'} </answer>"
        if found and not self.hops:
            return f"<answer> {found} </answer>"
        if self.hops:
            return f"<search> {self.hops.pop(0)} </search>"
        return f"<answer> {found or 'unknown'} </answer>"


_INTERACT = re.compile(
    r"^(take \S+ \d+ from|move \S+ \d+ to|heat|cool|clean|use|open|close)\s", re.I
)


class ALFWorldMistakeAgent:
    """Planner-following ALFWorld agent with scripted mistakes (see the module docstring)."""

    reset_options: Mapping[str, Any] = {"expert": True}

    def __init__(self, profiles: Mapping[str, float] | None = None, recover_p: float = 0.5) -> None:
        self.profiles = dict(
            profiles or {"expert": 0.35, "remote": 0.3, "wrong_verb": 0.25, "loop": 0.1}
        )
        self.recover_p = recover_p
        self.profile = "expert"

    def begin(self, env: Any, info: Mapping[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng
        self.profile = _pick(rng, self.profiles)
        self.repeats = int(rng.integers(1, 4))  # times the wrong command is sent
        self.recovers = bool(rng.random() < self.recover_p)
        self.pending: list[str] = []
        self.mistake_done = False
        self.turn = 0

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        self.turn += 1
        if self.pending:
            return self.pending.pop(0)
        plan = list(info.get("expert_plan") or [])
        if not plan:
            return "look"
        nxt = plan[0]
        if self.profile == "loop" and self.turn > 1:
            return "look"
        if self.mistake_done:
            if not self.recovers:
                return "look"
            return nxt
        if self.profile == "remote" and nxt.startswith("go to ") and len(plan) > 1:
            target = nxt[len("go to ") :]
            follow = plan[1]
            if _INTERACT.match(follow) and target in follow:
                self.mistake_done = True
                self.pending = [follow] * (self.repeats - 1)
                return follow
        if self.profile == "wrong_verb":
            m = re.match(r"^move (\S+ \d+) to (\S+ \d+)$", nxt)
            if m:
                self.mistake_done = True
                wrong = f"put {m.group(1)} in {m.group(2)}"
                self.pending = [wrong] * (self.repeats - 1)
                return wrong
        return nxt


#: env name -> (scripted mistake agent, the env options it records under) for
#: ``reskill creator record``.
MISTAKE_AGENTS: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "search": (SearchMistakeAgent, {}),
    "alfworld": (ALFWorldMistakeAgent, {"source": "generated", "max_turns": 12}),
}
