"""The one contract between an environment and the rest of reskill-gym.

Exports ``EnvSpec``, ``SuccessRule``, ``TaskLister``, ``ExpertLabels`` and ``DEFAULT_ROLE``.

Everything past ``gym.make`` that depends on *which* env is played reads it from the env's
``EnvSpec``: the run configs (``env.name``), ``reskill eval``, ``reskill evolve``, the veRL
adapter, the prompt builder (the system-prompt role text, the reply format), the score-mode
default for local agents, the expert metric (does the env have a planner) and the offline
creator (its action vocabulary). A spec is data plus a few optional hooks, so a third-party
env is registered exactly like the built-in ones (:mod:`reskill_gym.envs.registration`).

>>> spec = EnvSpec(name="my-env", factory="my_pkg.env:MyEnv")
>>> spec.gym_id, spec.local_action_mode
('ReSkill-my-env-v0', 'score')
>>> EnvSpec(name="qa", factory="m:E", admissible_actions=False).local_action_mode
'generate'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["EnvSpec", "SuccessRule", "TaskLister", "ExpertLabels", "DEFAULT_ROLE"]

#: The role text of an env whose spec gives none.
DEFAULT_ROLE = "You are an agent acting in a text environment."

#: ``success(reward, info) -> bool``: did the episode that ended on this step succeed.
SuccessRule = Callable[[float, Mapping[str, Any]], bool]
#: ``list_tasks(split, env_kwargs) -> task ids``: the tasks of a split without an engine.
TaskLister = Callable[[str, Mapping[str, Any]], Sequence[str]]
#: How the expert metric labels states: ``lookahead`` (the env's ``lookahead()`` snapshot of
#: every command's plan length) or ``replay`` (reset, replay the prefix, step each command and
#: read the planner's remaining plan); both need ``reset(options={"expert": True})`` to fill
#: ``info["expert_action"]`` and ``info["expert_plan"]``.
ExpertLabels = Literal["lookahead", "replay"]

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}\Z")
_GYM_ID = re.compile(r"(?:[\w:-]+/)?[\w:.-]+?(?:-v\d+)?\Z")


@dataclass(frozen=True)
class EnvSpec:
    """What the package needs from an environment, by name.

    ``factory`` builds the *raw* env (no skills): a ``"module:attr"`` string (imported on
    first use, so registering costs no import) or a callable; it is called with the env's
    keyword arguments (``split``, ``max_turns`` and the env's own options). The env it
    returns follows :class:`reskill_gym.envs.base.TextEnv`'s contract: ``str`` observations
    and actions, ``info["task"]`` at reset, ``info["won"]`` on every step,
    ``info["admissible_actions"]`` when it has a list, ``reset(options={"task_id": ...,
    "split": ...})`` and ``task_ids(split)`` (or give ``list_tasks``). An env nobody wrote
    for this project is adapted by :mod:`reskill_gym.envs.gym_adapter`.
    """

    name: str
    factory: str | Callable[..., Any]
    gym_id: str = ""
    description: str = ""
    seed_skills: str | Path | None = None
    system_prompt: str = DEFAULT_ROLE
    reply_format: Literal["tagged", "passthrough"] = "tagged"
    admissible_actions: bool = True
    local_action_mode: Literal["score", "generate"] | None = None
    list_tasks: TaskLister | None = None
    success: SuccessRule | None = None
    expert: ExpertLabels | None = None
    creator_vocabulary: str | None = None
    difficulties: tuple[str, ...] = ()
    local_agent_defaults: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"env name {self.name!r}: use lowercase letters, digits, '-' and '_' "
                "(starting with a letter, at most 64 characters)"
            )
        if isinstance(self.factory, str):
            module, _, attr = self.factory.partition(":")
            if not module or not attr:
                raise ValueError(
                    f"env {self.name}: factory {self.factory!r} is not 'module:attribute'"
                )
        elif not callable(self.factory):
            raise ValueError(f"env {self.name}: factory must be 'module:attribute' or callable")
        if not self.gym_id:
            object.__setattr__(self, "gym_id", f"ReSkill-{self.name}-v0")
        if not _GYM_ID.match(self.gym_id):
            raise ValueError(f"env {self.name}: {self.gym_id!r} is not a Gymnasium id")
        if self.reply_format not in ("tagged", "passthrough"):
            raise ValueError(f"env {self.name}: reply_format must be tagged or passthrough")
        if self.expert not in (None, "lookahead", "replay"):
            raise ValueError(f"env {self.name}: expert must be lookahead, replay or None")
        if self.local_action_mode is None:
            mode = "score" if self.admissible_actions else "generate"
            object.__setattr__(self, "local_action_mode", mode)
        elif self.local_action_mode == "score" and not self.admissible_actions:
            raise ValueError(
                f"env {self.name}: local_action_mode score needs admissible_actions=True"
            )
        object.__setattr__(self, "difficulties", tuple(self.difficulties))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "local_agent_defaults", dict(self.local_agent_defaults))

    def is_success(self, reward: float, info: Mapping[str, Any]) -> bool:
        """The env's success rule (default: ``info["won"]``)."""
        if self.success is not None:
            return bool(self.success(reward, info))
        return bool(info.get("won"))
