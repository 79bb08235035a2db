"""Expert-labelled states for the efficacy metric: planner and perturbed trajectories, one-step
look-ahead labels, and an env that replays a state's prefix for the turn contract.

Exports ``StateConfig``, ``ActionLabel``, ``ExpertState``, ``collect_states``,
``label_by_replay``, ``select_states``, ``ReplayEnv`` and ``shuffled_task_texts``.

Why states and not episodes: success over 18 paired ALFWorld episodes has a 95 % CI of about
±20 points, so a library's effect drowns. A state is one decision with a known answer: the
set of admissible commands that keep the shortest plan shortest. The agent's probability
mass on that set is a dense per-turn measure of whether the skills in the prompt help.

Where states come from (ALFWorld, ``reset(options={"expert": True})``):

- the planner's own trajectory from the start to the goal (every state on it);
- ``perturbed`` trajectories: at each step a random admissible command with probability
  ``perturb_share`` (seeded: ``default_rng([seed, k, crc32(task_id)])``), else the planner's
  next command, until the goal or ``max_steps``. Random detours are what recovery skills
  (closed receptacles, "Nothing happens.") exist for; a state already on the planner's path
  (the same action prefix) is kept once.

``select_states`` keeps up to ``states_per_task`` per task, half on the planner path and half
off it where possible, evenly spread along each trajectory. Each kept state is labelled by
one-step look-ahead (:meth:`ALFWorldEnv.lookahead`: every admissible command applied to a copy
of the state and re-planned). With ``d(a)`` the plan length after command ``a`` (0 if it
wins), the state's distance is ``d* = min(len(plan), 1 + min_a d(a))`` and ``a`` is optimal
iff ``1 + d(a) == d*`` (taking the minimum keeps the labels consistent if the planner ever
returns a longer plan than a one-step detour proves possible; ``inconsistent`` records it).
``label_by_replay`` computes the same labels by replaying the prefix for every command (a
reset per command): the reference the snapshot look-ahead is tested against.

>>> s = ExpertState(key="unseen|t0|expert|0", env="alfworld", split="unseen", task_id="t0",
...     task="put a mug in desk", task_type="pick_and_place_simple", trajectory="expert",
...     step=0, prefix=[], observations=["You are in a room."], admissible=["look", "go to desk 1"],
...     expert_action="go to desk 1", plan_len=2,
...     labels=[ActionLabel(action="look", plan_len=2), ActionLabel(action="go to desk 1", plan_len=1)])
>>> s.optimal, s.distance
(['go to desk 1'], 2)
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from reskill_gym.envs.base import EngineStep, TextEnv

__all__ = [
    "StateConfig",
    "ActionLabel",
    "ExpertState",
    "collect_states",
    "label_by_replay",
    "select_states",
    "ReplayEnv",
    "shuffled_task_texts",
]

log = logging.getLogger(__name__)

TrajectoryKind = Literal["expert", "perturbed"]


class StateConfig(BaseModel):
    """How states are drawn (the ``expert:`` block of an eval config holds these fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    perturbed: int = Field(
        1, ge=0, description="Perturbed trajectories per task (besides the planner's own)."
    )
    perturb_share: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Share of steps of a perturbed trajectory that take a random admissible "
        "command instead of the planner's (seeded).",
    )
    states_per_task: int | None = Field(
        5, ge=1, description="States kept per task (half on the planner path); None = all."
    )
    max_steps: int = Field(20, ge=1, description="Step cap of a perturbed trajectory.")
    seed: int = Field(0, description="Seed of the random detours.")


class ActionLabel(BaseModel):
    """One admissible command of a state and what the planner says after it."""

    model_config = ConfigDict(extra="forbid")

    action: str
    plan_len: int | None = Field(
        description="Length of the plan after the command (0: it wins; None: no plan)."
    )


class ExpertState(BaseModel):
    """One labelled decision: the prefix that reaches it, what the agent sees, the answer."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="split|task_id|trajectory|step: what resume skips by.")
    env: str
    split: str
    task_id: str
    task: str = Field(description="The goal sentence shown to the agent.")
    task_type: str
    difficulty: str | None = None
    trajectory: str = Field(description="expert, or perturbed-<k>.")
    step: int = Field(ge=0, description="Turns taken before this state (= len(prefix)).")
    prefix: list[str] = Field(description="Commands from the reset to this state.")
    observations: list[str] = Field(
        description="Bare observations from the reset to this state (len(prefix) + 1)."
    )
    admissible: list[str]
    expert_action: str = Field(description="The planner's next command here.")
    plan_len: int = Field(description="Length of the planner's plan from this state.")
    labels: list[ActionLabel] = Field(description="Look-ahead per admissible command.")
    off_path: int = Field(0, description="Random commands in the prefix (0: planner path).")
    shuffled_task: str | None = Field(
        None, description="Task sentence of another task type (the shuffled condition's triggers)."
    )
    label_s: float = Field(0.0, description="Seconds the look-ahead labelling took.")

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        # ``distance`` and ``optimal`` are written for readers of the JSONL and recomputed
        # from the labels on reading, so a hand-edited label cannot disagree with them
        if isinstance(data, dict) and ("distance" in data or "optimal" in data):
            data = {k: v for k, v in data.items() if k not in ("distance", "optimal")}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def distance(self) -> int:
        """``min(plan_len, 1 + min_a d(a))``: the shortest distance the labels support."""
        best = [lb.plan_len for lb in self.labels if lb.plan_len is not None]
        return min([self.plan_len, *(1 + d for d in best)])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def optimal(self) -> list[str]:
        """Commands after which the goal is one step closer (``1 + d(a) == distance``)."""
        d = self.distance
        return [lb.action for lb in self.labels if lb.plan_len is not None and lb.plan_len + 1 == d]

    @property
    def inconsistent(self) -> bool:
        """The planner's plan here is longer than a one-step look-ahead proves necessary."""
        return self.distance < self.plan_len

    @property
    def cluster(self) -> str:
        """The unit a bootstrap resamples: the task (states of one task are not independent)."""
        return f"{self.split}|{self.task_id}"


# ----- replaying a state for the turn contract ---------------------------------------------
class ReplayEnv(TextEnv):
    """A recorded prefix played back as a text env: the observations the engine gave, no engine.

    The efficacy metric shows the agent each state exactly as an episode would: a
    ``RolloutSession`` over ``SkillWrapper(ReplayEnv(state), view)`` is reset and fed the
    prefix (``act_command``), so the skill bundle comes from the same wrapper and triggers
    (previous action, observation, task) and the prompt from the same builder and history
    window as in training. Only the state's last observation carries admissible commands.

    >>> env = ReplayEnv(env_name="alfworld", task="t", task_type="x", task_id="t0",
    ...                 observations=["A room.", "A desk."], prefix=["go to desk 1"],
    ...                 admissible=["look"])
    >>> env.reset()[0], env.step("go to desk 1")[4]["admissible_actions"]
    ('A room.', ['look'])
    """

    env_name: ClassVar[str] = "text"

    def __init__(
        self,
        *,
        env_name: str,
        task: str,
        task_type: str,
        task_id: str,
        observations: Sequence[str],
        prefix: Sequence[str],
        admissible: Sequence[str],
        split: str = "train",
    ) -> None:
        if len(observations) != len(prefix) + 1:
            raise ValueError(
                f"ReplayEnv: {len(observations)} observations for {len(prefix)} commands "
                "(expected one more observation than commands)"
            )
        super().__init__(split=split, max_turns=len(prefix) + 1)
        self.env_name = env_name  # type: ignore[misc]  # per instance: the prompt's role
        self._task = task
        self._task_type = task_type
        self._task_id = task_id
        self._obs = list(observations)
        self._prefix = list(prefix)
        self._admissible = list(admissible)
        self._i = 0

    def task_ids(self, split: str | None = None) -> list[str]:
        return [self._task_id]

    def _adm(self) -> list[str] | None:
        return self._admissible if self._i == len(self._prefix) else None

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        self._i = 0
        info: dict[str, Any] = {"task": self._task, "task_type": self._task_type}
        if self._adm() is not None:
            info["admissible_actions"] = list(self._admissible)
        return self._obs[0], info

    def _engine_step(self, action: str) -> EngineStep:
        if self._i >= len(self._prefix):
            raise RuntimeError("ReplayEnv: the recorded prefix is over")
        if action != self._prefix[self._i]:
            raise ValueError(
                f"ReplayEnv: step {self._i} recorded {self._prefix[self._i]!r}, got {action!r}"
            )
        self._i += 1
        return EngineStep(
            observation=self._obs[self._i],
            reward=0.0,
            done=False,
            won=False,
            admissible_actions=self._adm(),
        )


# ----- drawing and labelling states --------------------------------------------------------
def _trajectory(
    env: Any,
    task_id: str,
    *,
    split: str,
    choose: Callable[[int, list[str], str], tuple[str, bool]],
    max_steps: int,
) -> list[dict[str, Any]]:
    """Play one trajectory; every non-terminal state as a dict (prefix, obs, admissible, ...)."""
    obs, info = env.reset(options={"task_id": task_id, "split": split, "expert": True})
    difficulty = info.get("difficulty")  # reset info only
    observations = [obs]
    prefix: list[str] = []
    off = 0
    out = []
    for step in range(max_steps):
        adm = list(info.get("admissible_actions") or [])
        expert = info.get("expert_action")
        if not adm or not expert:
            break
        out.append(
            {
                "step": step,
                "prefix": list(prefix),
                "observations": list(observations),
                "admissible": adm,
                "expert_action": expert,
                "plan_len": len(info.get("expert_plan") or []),
                "off_path": off,
                "task": info["task"],
                "task_type": info["task_type"],
                "difficulty": difficulty,
            }
        )
        action, random_pick = choose(step, adm, expert)
        off += random_pick
        obs, _r, terminated, truncated, info = env.step(action)
        prefix.append(action)
        observations.append(obs)
        if terminated or truncated or info.get("won"):
            break
    return out


def select_states(
    on_path: Sequence[Any], off_path: Sequence[Any], n: int | None
) -> tuple[list[Any], list[Any]]:
    """Up to ``n`` items: half from each list where possible, evenly spread in each.

    >>> select_states(list("abcd"), list("wxyz"), 3)
    (['a', 'd'], ['w'])
    >>> select_states(list("ab"), list("vwxyz"), 5)
    (['a', 'b'], ['v', 'x', 'z'])
    """
    if n is None or len(on_path) + len(off_path) <= n:
        return list(on_path), list(off_path)
    n_on = min(len(on_path), max(n - len(off_path), math.ceil(n / 2)))
    n_off = min(len(off_path), n - n_on)

    def spread(items: Sequence[Any], k: int) -> list[Any]:
        if k <= 0:
            return []
        picks = np.linspace(0, len(items) - 1, k).round().astype(int)
        return [items[i] for i in dict.fromkeys(picks.tolist())]

    return spread(on_path, n_on), spread(off_path, n_off)


def _labels_from(reply: Mapping[str, Any]) -> list[ActionLabel]:
    return [ActionLabel(action=x["action"], plan_len=x["plan_len"]) for x in reply["lookahead"]]


def _replay_to(env: Any, task_id: str, split: str, prefix: Sequence[str]) -> tuple[str, dict]:
    obs, info = env.reset(options={"task_id": task_id, "split": split, "expert": True})
    for a in prefix:
        obs, _r, _te, _tr, info = env.step(a)
    return obs, info


def label_by_replay(env: Any, state: ExpertState) -> list[ActionLabel]:
    """Look-ahead labels by brute force: for every command, reset, replay the prefix, step it.

    ``(1 + len(prefix)) x len(admissible)`` engine steps per state: the reference the
    snapshot look-ahead (:meth:`ALFWorldEnv.lookahead`) is checked against.
    """
    out = []
    for a in state.admissible:
        _replay_to(env, state.task_id, state.split, state.prefix)
        _obs, _r, _te, _tr, info = env.step(a)
        won = bool(info.get("won"))
        plan = list(info.get("expert_plan") or [])
        out.append(ActionLabel(action=a, plan_len=0 if won else (len(plan) if plan else None)))
    return out


def collect_states(
    env: Any,
    tasks: Mapping[str, Sequence[str]],
    config: StateConfig,
    *,
    label: Literal["snapshot", "replay"] = "snapshot",
    env_name: str = "alfworld",
    progress: Callable[[str, int, float], None] | None = None,
) -> list[ExpertState]:
    """Draw, select and label the states of ``tasks`` (split -> task ids) on an ALFWorld env.

    ``env`` is a raw ``ALFWorldEnv`` (no wrapper: states record bare observations).
    ``progress(task_id, n_states, seconds)`` is called after each task.
    """
    import time

    out: list[ExpertState] = []
    for split, ids in tasks.items():
        for task_id in ids:
            t0 = time.monotonic()
            expert = _trajectory(
                env,
                task_id,
                split=split,
                choose=lambda step, adm, exp: (exp, False),
                max_steps=config.max_steps,
            )
            seen = {tuple(s["prefix"]) for s in expert}
            for s in expert:
                s["trajectory"] = "expert"
            off: list[dict[str, Any]] = []
            for k in range(config.perturbed):
                rng = np.random.default_rng([config.seed, k, zlib.crc32(task_id.encode())])

                def choose(
                    step: int, adm: list[str], exp: str, rng: np.random.Generator = rng
                ) -> tuple[str, bool]:
                    if rng.random() < config.perturb_share:
                        pick = adm[int(rng.integers(len(adm)))]
                        return pick, pick != exp
                    return exp, False

                for s in _trajectory(
                    env, task_id, split=split, choose=choose, max_steps=config.max_steps
                ):
                    if s["off_path"] and tuple(s["prefix"]) not in seen:
                        seen.add(tuple(s["prefix"]))
                        s["trajectory"] = f"perturbed-{k}"
                        off.append(s)
            on_keep, off_keep = select_states(expert, off, config.states_per_task)
            for s in [*on_keep, *off_keep]:
                obs, info = _replay_to(env, task_id, split, s["prefix"])
                if (
                    obs != s["observations"][-1]
                    or list(info["admissible_actions"]) != s["admissible"]
                ):
                    raise RuntimeError(
                        f"alfworld task {task_id}: replaying {s['prefix']} did not reproduce the "
                        "recorded state (the engine is not deterministic?)"
                    )
                state = ExpertState(
                    key=f"{split}|{task_id}|{s['trajectory']}|{s['step']}",
                    env=env_name,
                    split=split,
                    task_id=task_id,
                    task=s["task"],
                    task_type=s["task_type"],
                    difficulty=s["difficulty"],
                    trajectory=s["trajectory"],
                    step=s["step"],
                    prefix=s["prefix"],
                    observations=s["observations"],
                    admissible=s["admissible"],
                    expert_action=s["expert_action"],
                    plan_len=s["plan_len"],
                    labels=[],
                    off_path=s["off_path"],
                    shuffled_task=None,
                    label_s=0.0,
                )
                t_label = time.monotonic()
                if label == "snapshot":
                    state.labels = _labels_from(env.lookahead())
                else:
                    state.labels = label_by_replay(env, state)
                state.label_s = round(time.monotonic() - t_label, 4)
                if state.expert_action not in state.optimal:
                    log.warning(
                        "expert states: %s: the planner's command %r is not optimal by look-ahead",
                        state.key,
                        state.expert_action,
                    )
                out.append(state)
            if progress is not None:
                progress(task_id, len(on_keep) + len(off_keep), time.monotonic() - t0)
    return out


def shuffled_task_texts(states: Iterable[ExpertState]) -> dict[str, str]:
    """task_id -> the task sentence of a task of *another* type (the shuffled condition).

    Task types are put in a cycle (sorted) and each task takes the sentence of the first task
    (by split, then id) of the next type, so a heat task's triggers see, e.g., a cool task:
    the library's task-type skills fire on the wrong tasks, the state-triggered ones as
    usual. With a single task type there is nothing to shuffle: an empty mapping.

    >>> mk = lambda i, tt, task: ExpertState(key=i, env="alfworld", split="seen", task_id=i,
    ...     task=task, task_type=tt, trajectory="expert", step=0, prefix=[], observations=["o"],
    ...     admissible=[], expert_action="", plan_len=1, labels=[])
    >>> shuffled_task_texts([mk("a", "heat", "heat a mug"), mk("b", "cool", "cool an egg")])
    {'a': 'cool an egg', 'b': 'heat a mug'}
    """
    first: dict[str, tuple[tuple[str, str], str]] = {}
    by_task: dict[str, str] = {}
    for s in states:
        by_task[s.task_id] = s.task_type
        k = (s.split, s.task_id)
        if s.task_type not in first or k < first[s.task_type][0]:
            first[s.task_type] = (k, s.task)
    types = sorted(first)
    if len(types) < 2:
        return {}
    donor = {t: first[types[(i + 1) % len(types)]][1] for i, t in enumerate(types)}
    return {tid: donor[tt] for tid, tt in by_task.items()}
