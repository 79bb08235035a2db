"""ScienceWorld for ReSkill: the real simulator (``scienceworld`` wheel, Java) as a text env.

Exports ``ScienceWorldEnv`` (the Gymnasium env behind ``ReSkill-ScienceWorld-v0``),
``ScienceWorldEngine`` (one JVM), ``EngineActionError``, ``TaskFamily``,
``HELD_OUT_TASKS``, ``load_task_table``, ``parse_task_id`` and ``split_task_ids``.

Importing this package needs neither Java nor the wheel; the JVM starts on the first
``reset()``.
"""

from __future__ import annotations

from reskill_gym.envs.scienceworld.engine import EngineActionError, ScienceWorldEngine
from reskill_gym.envs.scienceworld.env import ScienceWorldEnv
from reskill_gym.envs.scienceworld.tasks import (
    HELD_OUT_TASKS,
    TaskFamily,
    load_task_table,
    parse_task_id,
    split_task_ids,
)

__all__ = [
    "ScienceWorldEnv",
    "ScienceWorldEngine",
    "EngineActionError",
    "TaskFamily",
    "HELD_OUT_TASKS",
    "load_task_table",
    "parse_task_id",
    "split_task_ids",
]
