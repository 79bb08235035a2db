"""Compact, engine-free descriptions of generated ALFWorld tasks.

Exports ``TASK_TYPES``, ``DIFFICULTIES``, ``Difficulty``, ``TaskSpec``, ``TaskSet``,
``default_cache_dir`` and ``split_counts``.

A :class:`TaskSpec` lists a room (receptacle classes in a fixed order), where every object
starts, where the agent starts and the goal. It is *explicit* rather than "generator
parameters": rendering a spec into ``game.tw-pddl`` / ``traj_data.json`` involves no random
numbers, so a shipped task set renders to identical games on every machine and Python
version. Each spec also carries the plan the fast-downward planner found when the task was
verified (``plan``), so its solvability is recorded data, not an assumption.

This module imports no engine: the env reads task sets here and renders games in its worker.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from reskill_gym.atomic import atomic_write_text
from reskill_gym.llm.cache import cache_root

__all__ = [
    "TASK_TYPES",
    "DIFFICULTIES",
    "Difficulty",
    "TaskSpec",
    "TaskSet",
    "default_cache_dir",
    "split_counts",
]

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
Difficulty = Literal["tiny", "small", "std"]
DIFFICULTIES: tuple[str, ...] = ("tiny", "small", "std")
_SPLITS = ("train", "seen", "unseen")


def default_cache_dir() -> Path:
    """The project's one cache root (:func:`reskill_gym.llm.cache.cache_root`)."""
    return cache_root()


@dataclass(frozen=True)
class TaskSpec:
    """One generated task.

    ``receptacles`` holds receptacle classes (``"Cabinet"`` twice means two cabinets);
    ``objects`` holds ``(class, receptacle index)`` pairs; ``lamp`` is the receptacle index
    holding the desk lamp (look-at-object tasks only); ``agent_at`` is the receptacle the
    agent starts facing, or ``None`` for "the middle of the room".

    >>> spec = TaskSpec(task_id="tiny/train/0000", difficulty="tiny", split="train",
    ...     task_type="pick_and_place_simple", layout="FloorPlan7", room_type="Kitchen",
    ...     object_target="Apple", parent_target="DiningTable", toggle_target="",
    ...     goal="put a apple in diningtable", receptacles=("CounterTop", "DiningTable"),
    ...     objects=(("Apple", 0),), lamp=None, agent_at=0, seed=0)
    >>> spec.trial_dir
    'pick_and_place_simple-Apple-None-DiningTable-7/trial_tiny_train_0000'
    """

    task_id: str
    difficulty: str
    split: str
    task_type: str
    layout: str
    room_type: str
    object_target: str
    parent_target: str
    toggle_target: str
    goal: str
    receptacles: tuple[str, ...]
    objects: tuple[tuple[str, int], ...]
    lamp: int | None
    agent_at: int | None
    seed: int
    plan: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"TaskSpec {self.task_id!r}"
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"{where}: task_type {self.task_type!r} not in {TASK_TYPES}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"{where}: difficulty {self.difficulty!r} not in {DIFFICULTIES}")
        if self.split not in _SPLITS:
            raise ValueError(f"{where}: split {self.split!r} not in {_SPLITS}")
        n = len(self.receptacles)
        for cls, idx in self.objects:
            if not 0 <= idx < n:
                raise ValueError(f"{where}: object {cls!r} in receptacle #{idx}, room has {n}")
        for name, at in (("lamp", self.lamp), ("agent_at", self.agent_at)):
            if at is not None and not 0 <= at < n:
                raise ValueError(f"{where}: {name}={at} out of range (room has {n} receptacles)")
        if (self.task_type == "look_at_obj_in_light") != (self.lamp is not None):
            raise ValueError(f"{where}: a lamp is needed exactly for look_at_obj_in_light tasks")

    @property
    def trial_dir(self) -> str:
        """``<task>/<trial>`` folder name in ALFRED's ``json_2.1.1`` naming."""
        scene = self.layout.removeprefix("FloorPlan")
        toggle = self.toggle_target or "None"
        parent = self.parent_target or "None"
        task = f"{self.task_type}-{self.object_target}-{toggle}-{parent}-{scene}"
        return f"{task}/trial_{self.task_id.replace('/', '_')}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["receptacles"] = list(self.receptacles)
        data["objects"] = [list(o) for o in self.objects]
        data["plan"] = list(self.plan)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str = "<json>") -> TaskSpec:
        try:
            return cls(
                task_id=str(data["task_id"]),
                difficulty=str(data["difficulty"]),
                split=str(data["split"]),
                task_type=str(data["task_type"]),
                layout=str(data["layout"]),
                room_type=str(data["room_type"]),
                object_target=str(data["object_target"]),
                parent_target=str(data["parent_target"]),
                toggle_target=str(data["toggle_target"]),
                goal=str(data["goal"]),
                receptacles=tuple(str(r) for r in data["receptacles"]),
                objects=tuple((str(c), int(i)) for c, i in data["objects"]),
                lamp=None if data["lamp"] is None else int(data["lamp"]),
                agent_at=None if data["agent_at"] is None else int(data["agent_at"]),
                seed=int(data["seed"]),
                plan=tuple(str(a) for a in data.get("plan", ())),
            )
        except KeyError as exc:
            raise ValueError(
                f"{source}: task {data.get('task_id', '?')!r} lacks field {exc}"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: task {data.get('task_id', '?')!r}: {exc}") from exc


@dataclass(frozen=True)
class TaskSet:
    """An ordered collection of :class:`TaskSpec` with lookup by id and by (difficulty, split).

    >>> TaskSet(tasks=()).ids("tiny", "train")
    []
    """

    tasks: tuple[TaskSpec, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for t in self.tasks:
            if t.task_id in seen:
                raise ValueError(f"duplicate task_id {t.task_id!r} in task set")
            seen.add(t.task_id)

    def ids(self, difficulty: str, split: str) -> list[str]:
        return [t.task_id for t in self.tasks if t.difficulty == difficulty and t.split == split]

    def get(self, task_id: str) -> TaskSpec:
        for t in self.tasks:
            if t.task_id == task_id:
                return t
        raise KeyError(f"unknown ALFWorld task id {task_id!r}")

    def select(self, *, difficulty: str | None = None, split: str | None = None) -> list[TaskSpec]:
        return [
            t
            for t in self.tasks
            if (difficulty is None or t.difficulty == difficulty)
            and (split is None or t.split == split)
        ]

    def digest(self) -> str:
        """Short content hash: the cache folder of rendered games is keyed by it."""
        blob = json.dumps([t.to_json() for t in self.tasks], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "meta": self.meta, "tasks": [t.to_json() for t in self.tasks]}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str = "<json>") -> TaskSet:
        if not isinstance(data, dict) or data.get("version") != 1 or "tasks" not in data:
            raise ValueError(
                f"{source}: not a version-1 ALFWorld task set (need keys version=1, tasks)"
            )
        return cls(
            tasks=tuple(TaskSpec.from_json(t, source=source) for t in data["tasks"]),
            meta=dict(data.get("meta", {})),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskSet:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON: {exc}") from exc
        return cls.from_json(data, source=str(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file + fsync + rename)."""
        atomic_write_text(
            Path(path), json.dumps(self.to_json(), indent=None, separators=(",", ":")) + "\n"
        )

    @classmethod
    def of(cls, tasks: Iterable[TaskSpec], meta: dict[str, Any] | None = None) -> TaskSet:
        return cls(tasks=tuple(tasks), meta=dict(meta or {}))


def split_counts(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """``"difficulty/split" -> count`` (for logs and the generator's summary)."""
    out: dict[str, int] = {}
    for t in tasks:
        key = f"{t.difficulty}/{t.split}"
        out[key] = out.get(key, 0) + 1
    return out
