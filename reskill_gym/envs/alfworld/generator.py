"""Deterministic ALFWorld task generator (all six task types, three difficulty levels).

Exports ``RoomTemplate``, ``LevelConfig``, ``LEVELS``, ``UNSEEN_OBJECTS``,
``load_room_templates``, ``generate_task`` and ``generate_tasks``.

Rooms come from ALFRED's own scene data shipped in the ``alfworld`` wheel: every
``gen/layouts/FloorPlan<N>-objects.json`` lists the object classes of scene N and
``FloorPlan<N>-openable.json`` its receptacle instances; ``alfworld.gen.constants`` says which
receptacle may hold which object (``VAL_RECEPTACLE_OBJECTS``), which objects can be heated,
cooled, cleaned (``VAL_ACTION_OBJECTS``) and in which room types a task type occurs
(``GOALS_VALID``). A generated task picks a scene, a target, a goal receptacle, samples a
sub-room of the scene's receptacles, and places the target and some distractors where
ALFRED's tables allow.

Splits follow ALFRED: ``train`` and ``seen`` use the training scenes (ALFRED's
``TRAIN_SCENE_NUMBERS``); ``seen`` tasks are new tasks (no train task has the same type,
target, goal receptacle and scene); ``unseen`` uses the held-out scenes
(``TEST_SCENE_NUMBERS``) and, where the room allows, target classes that never occur in
train/seen rooms (:data:`UNSEEN_OBJECTS`).

Everything is driven by ``random.Random`` seeded with a string, so a given
``(difficulty, split, index)`` always yields the same :class:`TaskSpec`; solvability is
checked separately by the planner (``python -m reskill_gym.envs.alfworld.taskset``).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reskill_gym.envs.alfworld.spec import TASK_TYPES, TaskSpec

__all__ = [
    "RoomTemplate",
    "LevelConfig",
    "LEVELS",
    "UNSEEN_OBJECTS",
    "load_room_templates",
    "generate_task",
    "generate_tasks",
]

# Target classes held out of train/seen rooms entirely (like ALFRED's unseen split, but for
# object types too). Chosen so every task type keeps several training targets.
UNSEEN_OBJECTS: frozenset[str] = frozenset({"Potato", "Cup", "Pencil", "Watch", "Spatula", "Plate"})

_APPLIANCE = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
_AFFORDANCE = {
    "pick_clean_then_place_in_recep": "Cleanable",
    "pick_heat_then_place_in_recep": "Heatable",
    "pick_cool_then_place_in_recep": "Coolable",
}
# Small portable things one would look at under a lamp (ALFRED's look_at_obj targets).
_LOOK_TARGETS = frozenset(
    {"AlarmClock", "Book", "Bowl", "CD", "CellPhone", "CreditCard", "KeyChain", "Laptop", "Mug", "Pen", "Pencil",
     "Pillow", "RemoteControl", "Statue", "Vase", "Watch", "Box", "Newspaper", "Plate", "Cup"}
)  # fmt: skip
_LAMP_HOLDERS = ("SideTable", "Desk", "Dresser")
# Classes that exist as scene objects but are not sensible pick-up targets.
_NOT_PICKUPABLE = frozenset(
    {"DeskLamp", "FloorLamp", "Television", "Painting", "Window", "Mirror", "Blinds"}
)
_ROOM_RANGES = {"Kitchen": range(1, 31), "LivingRoom": range(201, 231), "Bedroom": range(301, 331), "Bathroom": range(401, 431)}  # fmt: skip
# openable.json names sinks/bathtubs by their scene object; ALFWorld's receptacle is the basin.
_RECEPTACLE_ALIASES = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}


@dataclass(frozen=True)
class RoomTemplate:
    """One ALFRED scene: its receptacle instances and the object classes found in it."""

    layout: str
    room_type: str
    receptacles: tuple[tuple[str, int], ...]  # (class, instance count), sorted by class
    objects: tuple[str, ...]  # pickupable object classes present in the scene

    def count(self, cls: str) -> int:
        return dict(self.receptacles).get(cls, 0)


@dataclass(frozen=True)
class LevelConfig:
    """Room size and task shape of one difficulty level."""

    n_receptacles: int  # receptacles in the room (upper bound for tiny: required ones only)
    n_distractors: int
    agent_facing_target: bool  # agent starts facing the receptacle that holds the target
    closed_sources: bool  # the target may start inside a closed receptacle
    openable_goals: bool  # goal receptacle may be openable (adds open steps)
    counts: tuple[int, int, int]  # tasks in train, seen, unseen


LEVELS: dict[str, LevelConfig] = {
    "tiny": LevelConfig(3, 1, True, False, False, (60, 18, 18)),
    "small": LevelConfig(5, 3, False, True, True, (60, 18, 18)),
    "std": LevelConfig(10, 6, False, True, True, (60, 18, 18)),
}


@lru_cache(maxsize=1)
def load_room_templates() -> tuple[RoomTemplate, ...]:
    """All scenes of the ``alfworld`` wheel as :class:`RoomTemplate`, sorted by scene number."""
    import alfworld.gen.constants as constants

    layouts = Path(constants.__file__).parent / "layouts"
    static = set(constants.RECEPTACLES) - set(constants.MOVABLE_RECEPTACLES)
    placeable: set[str] = set().union(*constants.VAL_RECEPTACLE_OBJECTS.values())
    templates = []
    for room_type, numbers in _ROOM_RANGES.items():
        for n in numbers:
            obj_file = layouts / f"FloorPlan{n}-objects.json"
            rec_file = layouts / f"FloorPlan{n}-openable.json"
            if not obj_file.exists() or not rec_file.exists():
                continue
            classes = set(json.loads(obj_file.read_text()))
            counts: dict[str, int] = {}
            for key in json.loads(rec_file.read_text()):
                cls = _RECEPTACLE_ALIASES.get(key.split("|")[0], key.split("|")[0])
                if cls in static:
                    counts[cls] = counts.get(cls, 0) + 1
            for cls in classes:
                cls = _RECEPTACLE_ALIASES.get(cls, cls)
                if cls in static and cls not in counts:
                    counts[cls] = 1
            objects = sorted(
                c
                for c in classes
                if c in placeable and c not in static and c not in _NOT_PICKUPABLE
            )
            templates.append(
                RoomTemplate(
                    f"FloorPlan{n}", room_type, tuple(sorted(counts.items())), tuple(objects)
                )
            )
    return tuple(templates)


def _layout_split(template: RoomTemplate) -> str:
    import alfworld.gen.constants as constants

    n = int(template.layout.removeprefix("FloorPlan"))
    return "unseen" if n in constants.TEST_SCENE_NUMBERS else "train"


def _pick_two(obj: str) -> bool:
    return obj not in {"Bowl", "Mug", "Plate", "Cup"}  # keep "find two X" about small items


def _target_candidates(task_type: str, room: RoomTemplate, objects: list[str]) -> list[str]:
    import alfworld.gen.constants as constants

    if task_type == "look_at_obj_in_light":
        return [o for o in objects if o in _LOOK_TARGETS]
    if task_type in _AFFORDANCE:
        return [o for o in objects if o in constants.VAL_ACTION_OBJECTS[_AFFORDANCE[task_type]]]
    if task_type == "pick_two_obj_and_place":
        return [o for o in objects if _pick_two(o)]
    return list(objects)


def generate_task(difficulty: str, split: str, index: int, *, attempt: int = 0) -> TaskSpec | None:
    """The task ``index`` of ``difficulty``/``split``; ``None`` if this attempt's draw is infeasible.

    Pure function of its arguments (string-seeded ``random.Random``).
    """
    import alfworld.gen.constants as constants
    import alfworld.gen.goal_library as goal_library

    level = LEVELS[difficulty]
    can: dict[str, set[str]] = constants.VAL_RECEPTACLE_OBJECTS
    openable = set(constants.OPENABLE_CLASS_LIST)
    seed_text = f"alfworld/{difficulty}/{split}/{index}/{attempt}"
    rng = random.Random(seed_text)
    task_type = TASK_TYPES[index % len(TASK_TYPES)]
    want_split = "unseen" if split == "unseen" else "train"

    rooms = [
        r
        for r in load_room_templates()
        if _layout_split(r) == want_split and r.room_type in constants.GOALS_VALID[task_type]
    ]
    appliance = _APPLIANCE.get(task_type)
    if appliance:
        rooms = [r for r in rooms if r.count(appliance)]
    if task_type == "look_at_obj_in_light":
        rooms = [
            r
            for r in rooms
            if "DeskLamp" in _all_classes(r) and any(r.count(h) for h in _LAMP_HOLDERS)
        ]
    if not rooms:
        return None
    room = rng.choice(rooms)
    objects = [o for o in room.objects if split == "unseen" or o not in UNSEEN_OBJECTS]

    candidates = _target_candidates(task_type, room, objects)
    if split == "unseen" and rng.random() < 0.5:
        held_out = [o for o in candidates if o in UNSEEN_OBJECTS]
        candidates = held_out or candidates
    if not candidates:
        return None
    target = rng.choice(sorted(candidates))

    room_classes = [c for c, _ in room.receptacles]
    # Goal receptacle: can hold the target, is not the task's appliance, and (tiny) opens freely.
    if task_type == "look_at_obj_in_light":
        parent = ""
    else:
        parents = [
            c
            for c in room_classes
            if target in can.get(c, ())
            and c != appliance
            and c not in {"SinkBasin", "BathtubBasin", "GarbageCan"}
            and (level.openable_goals or c not in openable)
        ]
        if not parents:
            return None
        parent = rng.choice(parents)
    # Source receptacle of the target: never the goal class, never the fridge for cooling.
    forbid = {parent, "GarbageCan"} | (
        {"Fridge"} if task_type == "pick_cool_then_place_in_recep" else set()
    )
    sources = [
        c
        for c in room_classes
        if target in can.get(c, ())
        and c not in forbid
        and (level.closed_sources or c not in openable)
    ]
    lamp_holder = None
    if task_type == "look_at_obj_in_light":
        holders = [h for h in _LAMP_HOLDERS if room.count(h)]
        lamp_holder = rng.choice(holders)
        if difficulty == "tiny" and lamp_holder in sources and rng.random() < 0.5:
            sources = [lamp_holder]
    if not sources:
        return None
    source = rng.choice(sources)

    # ---- the room: required receptacles first, then a sample of the scene's other instances.
    required = [source]
    for extra in (parent, appliance, lamp_holder):
        if extra and extra not in required:
            required.append(extra)
    pool = [c for c, k in room.receptacles for _ in range(k)]
    for c in required:
        pool.remove(c)
    rng.shuffle(pool)
    n_total = max(len(required), level.n_receptacles)
    if difficulty == "tiny":
        n_total = max(2, len(required))
        if n_total < 3 and rng.random() < 0.5:
            n_total += 1
        pool = [
            c
            for c in pool
            if c not in openable and c not in {"SinkBasin", "BathtubBasin", "Microwave", "Fridge"}
        ]
    receptacles = required + pool[: max(0, n_total - len(required))]
    rng.shuffle(receptacles)
    index_of = {c: receptacles.index(c) for c in required}

    # ---- objects
    placed: list[tuple[str, int]] = [(target, index_of[source])]
    if task_type == "pick_two_obj_and_place":
        if difficulty == "tiny":
            placed.append((target, index_of[parent]))  # one is already in place: 3-step task
        else:
            spots = [
                i for i, c in enumerate(receptacles) if target in can.get(c, ()) and c not in forbid
            ]
            placed.append((target, rng.choice(spots)))
    distractor_classes = [o for o in objects if o != target]
    rng.shuffle(distractor_classes)
    for cls in distractor_classes:
        if len(placed) - (2 if task_type == "pick_two_obj_and_place" else 1) >= level.n_distractors:
            break
        spots = [i for i, c in enumerate(receptacles) if cls in can.get(c, ())]
        if spots:
            placed.append((cls, rng.choice(spots)))

    template = rng.choice(goal_library.gdict[task_type]["templates"])
    goal = template.format(obj=target.lower(), recep=parent.lower(), toggle="desklamp", mrecep="")
    return TaskSpec(
        task_id=f"{difficulty}/{split}/{index:04d}",
        difficulty=difficulty,
        split=split,
        task_type=task_type,
        layout=room.layout,
        room_type=room.room_type,
        object_target=target,
        parent_target=parent,
        toggle_target="DeskLamp" if lamp_holder else "",
        goal=goal,
        receptacles=tuple(receptacles),
        objects=tuple(placed),
        lamp=index_of[lamp_holder] if lamp_holder else None,
        agent_at=index_of[source] if level.agent_facing_target else None,
        seed=attempt,
    )


def _all_classes(room: RoomTemplate) -> set[str]:
    import alfworld.gen.constants as constants

    layouts = Path(constants.__file__).parent / "layouts"
    return set(json.loads((layouts / f"{room.layout}-objects.json").read_text()))


def _key(spec: TaskSpec) -> tuple[str, str, str, str]:
    return (spec.task_type, spec.object_target, spec.parent_target, spec.layout)


def generate_tasks(
    difficulty: str,
    *,
    verify: Callable[[TaskSpec], tuple[str, ...] | None] | None = None,
    max_attempts: int = 50,
) -> list[TaskSpec]:
    """All tasks of one level (train, seen, unseen).

    ``verify`` (the planner, in ``generate.py``) returns the winning plan or ``None``; a
    rejected draw moves on to the next attempt and the accepted spec carries the plan.
    Seen tasks never repeat a train task's (type, target, goal receptacle, scene).
    """
    level = LEVELS[difficulty]
    out: list[TaskSpec] = []
    train_keys: set[tuple[str, str, str, str]] = set()
    for split, count in zip(("train", "seen", "unseen"), level.counts):
        for index in range(count):
            for attempt in range(max_attempts):
                spec = generate_task(difficulty, split, index, attempt=attempt)
                if spec is None or (split == "seen" and _key(spec) in train_keys):
                    continue
                if verify is not None:
                    plan = verify(spec)
                    if plan is None:
                        continue
                    spec = dataclasses.replace(spec, plan=plan)
                break
            else:
                raise RuntimeError(
                    f"no feasible task for {difficulty}/{split}/{index} in {max_attempts} attempts"
                )
            if split == "train":
                train_keys.add(_key(spec))
            out.append(spec)
    return out
