"""A scripted ALFWorld agent for `reskill evolve` dry runs and tests: no model, no network.

Use it as ``agent.spec: python:scripted_alfworld_agent:act`` with this folder on the
Python path (``PYTHONPATH=configs/evolve``). It is a noisy pick-and-place solver: half of its
turns follow the task (take the object, go to the destination, move it there), the other
half pick a random admissible command, repeat the previous command (a loop) or use ``put``
where ALFWorld wants ``move`` (the engine rejects it). So its groups mix successes and
failures, and the offline ``rules`` creator finds rejected verbs and loops to write skills
about - enough to exercise the whole evolve loop (creator, version test, decision) on CPU.
Replies are tagged (``<action>...</action>``), as the ALFWorld turn contract asks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["act"]

_RNG = random.Random(0)
_LAST: dict[str, str] = {}
_TASK = re.compile(r"put (?:a |an |some )?(\w+) (?:in|on) (\w+)")


def _plan(task: str, admissible: list[str]) -> list[str]:
    """Commands that make progress on a pick-and-place task, in order of preference."""
    m = _TASK.search(task)
    if not m:
        return []
    obj, dest = m.groups()
    moves = [a for a in admissible if a.startswith(f"move {obj}") and f" to {dest}" in a]
    takes = [a for a in admissible if a.startswith(f"take {obj}")]
    gos = [a for a in admissible if a.startswith(f"go to {dest}")]
    return moves + takes + gos


def act(messages: list[dict[str, str]], info: Mapping[str, Any]) -> str:
    """One tagged reply for the turn described by ``messages`` / ``info``."""
    admissible = list(info.get("admissible_actions") or ["look"])
    task = str(info.get("task", ""))
    last = _LAST.get(task)
    u = _RNG.random()
    plan = _plan(task, admissible)
    if u < 0.5 and plan:
        action = plan[0]
    elif u < 0.65 and last:
        action = last  # a loop
    elif u < 0.75 and plan and plan[0].startswith("move "):
        action = plan[0].replace("move ", "put ", 1).replace(" to ", " in ", 1)  # rejected
    else:
        action = _RNG.choice(admissible)
    _LAST[task] = action
    return f"<action>{action}</action>"
