"""ALFWorld for ReSkill: the real text engine, a planner-verified task generator, official data.

Exports ``ALFWorldEnv`` (the ``ReSkill-ALFWorld-v0`` entry point), ``TaskSpec``, ``TaskSet``
and ``TASK_TYPES``. Nothing here imports ``alfworld`` or ``textworld``: the engine lives in
a worker process started by the env on its first ``reset``.
"""

from __future__ import annotations

from reskill_gym.envs.alfworld.env import ALFWorldEnv
from reskill_gym.envs.alfworld.spec import TASK_TYPES, TaskSet, TaskSpec

__all__ = ["ALFWorldEnv", "TaskSpec", "TaskSet", "TASK_TYPES"]
