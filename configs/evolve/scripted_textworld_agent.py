"""A scripted TextWorld Cooking agent for `reskill evolve` dry runs: no model, no network.

Use it as ``agent.spec: python:scripted_textworld_agent:act`` with this folder on the Python
path (``PYTHONPATH=configs/evolve``). It reads the cookbook, takes the recipe's ingredients
(opening containers until they show up), prepares the meal and eats it - on 60 % of its turns.
On the others it picks a random admissible command, which is how it loses: eating a raw
ingredient, dropping what it holds, wandering off. Its groups mix successes and failures, so
the offline ``rules`` creator has something to write skills about. Replies are tagged
(``<action>...</action>``), as the turn contract asks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["act"]

_RNG = random.Random(0)
_RECIPE: dict[str, list[str]] = {}
_INGREDIENTS = re.compile(r"Ingredients:\s*\n(.*?)\n\s*\n", re.S)


def _plan(task_id: str, observation: str, admissible: list[str]) -> list[str]:
    """Commands that make progress, best first."""
    m = _INGREDIENTS.search(observation)
    if m:
        _RECIPE[task_id] = [line.strip() for line in m.group(1).splitlines() if line.strip()]
    recipe = _RECIPE.get(task_id)
    if recipe is None:
        return [a for a in admissible if a == "examine cookbook"]
    takes = [a for a in admissible if a.startswith("take ") and any(i in a for i in recipe)]
    finish = [a for a in admissible if a in ("eat meal", "prepare meal")]
    opens = [a for a in admissible if a.startswith("open ")]
    return (finish if "eat meal" in finish else []) + takes + opens + finish


def act(messages: list[dict[str, str]], info: Mapping[str, Any]) -> str:
    """One tagged reply for the turn described by ``messages`` / ``info``."""
    admissible = list(info.get("admissible_actions") or ["look"])
    task_id = str(info.get("task_id", ""))
    if info.get("turn", 0) == 0:
        _RECIPE.pop(task_id, None)
    plan = _plan(task_id, str(info.get("observation", "")), admissible)
    action = plan[0] if plan and _RNG.random() < 0.6 else _RNG.choice(admissible)
    return f"<action>{action}</action>"
