"""Render a :class:`~reskill_gym.envs.alfworld.spec.TaskSpec` into ALFWorld game files.

Exports ``render_problem``, ``render_game``, ``write_game``, ``object_ids`` and ``receptacle_ids``.

The output is what alfworld 0.4.2 and TextWorld's PDDL backend load: ``game.tw-pddl`` (JSON
with ``pddl_domain``, ``grammar`` with the goal text filled in, ``pddl_problem``,
``solvable``) next to ``traj_data.json`` (``task_type``, ``pddl_params``), in ALFRED's
``<task>/<trial>/`` layout. Domain, grammar, goal formulas and object affordances come from
the ``alfworld`` wheel, so this module imports ``alfworld`` (lazily, inside functions):
importing ``alfworld`` sets ``os.environ["ALFWORLD_DATA"]`` as a side effect, which the
env must not see, hence rendering runs in the engine worker or the generator.

Id conventions (checked against the demangler): ``Apple_bar_1`` shows as "apple 1"; basins
use ALFRED's ``Sink_bar_1_bar_SinkBasin`` form (else "sinkbasinbasin 1").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reskill_gym.atomic import atomic_write_text
from reskill_gym.envs.alfworld.spec import TaskSpec

__all__ = ["render_problem", "render_game", "write_game", "object_ids", "receptacle_ids"]

OPENABLE = ("Fridge", "Cabinet", "Microwave", "Drawer", "Safe", "Box")
_AFFORDANCES = (
    ("Heatable", "heatable"),
    ("Coolable", "coolable"),
    ("Cleanable", "cleanable"),
    ("Sliceable", "sliceable"),
)


def receptacle_ids(spec: TaskSpec) -> list[str]:
    """PDDL ids of the receptacles, numbered per class in room order.

    >>> from reskill_gym.envs.alfworld.spec import TaskSpec
    >>> s = TaskSpec("t", "tiny", "train", "pick_and_place_simple", "FloorPlan1", "Kitchen",
    ...     "Apple", "Fridge", "", "put a apple in fridge", ("SinkBasin", "Fridge", "Cabinet", "Cabinet"),
    ...     (("Apple", 0),), None, None, 0)
    >>> receptacle_ids(s)
    ['Sink_bar_1_bar_SinkBasin', 'Fridge_bar_1', 'Cabinet_bar_1', 'Cabinet_bar_2']
    """
    counts: dict[str, int] = {}
    out = []
    for cls in spec.receptacles:
        counts[cls] = counts.get(cls, 0) + 1
        n = counts[cls]
        if cls.endswith("Basin"):
            out.append(f"{cls[: -len('Basin')]}_bar_{n}_bar_{cls}")
        else:
            out.append(f"{cls}_bar_{n}")
    return out


def object_ids(spec: TaskSpec) -> list[str]:
    """PDDL ids of the objects (same order as ``spec.objects``), numbered per class."""
    counts: dict[str, int] = {}
    out = []
    for cls, _ in spec.objects:
        counts[cls] = counts.get(cls, 0) + 1
        out.append(f"{cls}_bar_{counts[cls]}")
    return out


def render_problem(spec: TaskSpec) -> str:
    """The PDDL problem text of ``spec`` (deterministic: no randomness involved)."""
    import alfworld.gen.constants as constants
    import alfworld.gen.goal_library as goal_library

    can_contain: dict[str, set[str]] = constants.VAL_RECEPTACLE_OBJECTS
    affordances: dict[str, set[str]] = constants.VAL_ACTION_OBJECTS
    movable = set(constants.MOVABLE_RECEPTACLES)

    rids = receptacle_ids(spec)
    oids = object_ids(spec)
    locs = [f"loc_{i + 1}" for i in range(len(rids))]
    rtypes = sorted(set(spec.receptacles))
    otypes = {cls for cls, _ in spec.objects}
    lamp_id = "DeskLamp_bar_1" if spec.lamp is not None else None
    if lamp_id:
        otypes.add("DeskLamp")

    start = "loc_start" if spec.agent_at is None else locs[spec.agent_at]
    facts = [f"(atLocation agent1 {start})"]
    for rid, cls, loc in zip(rids, spec.receptacles, locs):
        facts += [f"(receptacleAtLocation {rid} {loc})", f"(receptacleType {rid} {cls}Type)"]
        if cls in OPENABLE:
            facts.append(f"(openable {rid})")
    for oid, (cls, ridx) in zip(oids, spec.objects):
        facts += [
            f"(objectType {oid} {cls}Type)",
            f"(pickupable {oid})",
            f"(inReceptacle {oid} {rids[ridx]})",
            f"(objectAtLocation {oid} {locs[ridx]})",
        ]
        facts += [f"({pred} {oid})" for key, pred in _AFFORDANCES if cls in affordances[key]]
        if cls in movable:
            facts.append(f"(isReceptacleObject {oid})")
    if lamp_id is not None and spec.lamp is not None:
        # The lamp sits in a receptacle (ToggleObject needs the agent at that receptacle) and
        # is deliberately not pickupable, so it cannot be carried off.
        facts += [
            f"(objectType {lamp_id} DeskLampType)",
            f"(toggleable {lamp_id})",
            f"(inReceptacle {lamp_id} {rids[spec.lamp]})",
            f"(objectAtLocation {lamp_id} {locs[spec.lamp]})",
        ]
    for rt in rtypes:
        for ot in sorted(otypes):
            if ot in can_contain.get(rt, ()):
                facts.append(f"(canContain {rt}Type {ot}Type)")

    goal = goal_library.gdict[spec.task_type]["pddl"].format(
        obj=spec.object_target, recep=spec.parent_target, toggle=spec.toggle_target, mrecep=""
    )
    goal = goal.replace("#", "-")  # the goal library writes "?r # receptacle"
    all_objects = oids + ([lamp_id] if lamp_id else [])
    name = spec.task_id.replace("/", "_")
    lines = [
        f"(define (problem {name})",
        " (:domain alfred)",
        " (:objects",
        "   agent1 - agent",
        "   " + " ".join(f"{t}Type" for t in sorted(otypes)) + " - otype",
        "   " + " ".join(f"{t}Type" for t in rtypes) + " - rtype",
        "   " + " ".join(all_objects) + " - object",
        "   " + " ".join(rids) + " - receptacle",
        "   loc_start " + " ".join(locs) + " - location",
        " )",
        " (:init",
        "   " + "\n   ".join(facts),
        " )",
        goal.strip(),  # the goal text already ends with the ")" that closes (define
    ]
    return "\n".join(lines) + "\n"


def _wheel_file(name: str) -> str:
    from alfworld.info import BUILTIN_DATA_PATH

    return (Path(BUILTIN_DATA_PATH) / name).read_text()


def render_game(spec: TaskSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(game.tw-pddl content, traj_data.json content)`` for ``spec``."""
    grammar = _wheel_file("alfred.twl2").replace("UNKNOWN GOAL", spec.goal)
    game = {
        "pddl_domain": _wheel_file("alfred.pddl"),
        "grammar": grammar,
        "pddl_problem": render_problem(spec),
        "solvable": True,
    }
    traj = {
        "task_type": spec.task_type,
        "task_id": spec.task_id,
        "scene": {"floor_plan": spec.layout, "room_type": spec.room_type},
        "pddl_params": {
            "object_target": spec.object_target,
            "parent_target": spec.parent_target,
            "toggle_target": spec.toggle_target,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "turk_annotations": {"anns": [{"task_desc": spec.goal}]},
        "reskill": {
            "difficulty": spec.difficulty,
            "split": spec.split,
            "seed": spec.seed,
            "plan": list(spec.plan),
        },
    }
    return game, traj


def write_game(spec: TaskSpec, trial_dir: str | Path) -> Path:
    """Write ``game.tw-pddl`` + ``traj_data.json`` into ``trial_dir`` atomically; return the game path.

    ``traj_data.json`` is written first, so a present ``game.tw-pddl`` implies a complete trial.
    """
    trial_dir = Path(trial_dir)
    game, traj = render_game(spec)
    atomic_write_text(trial_dir / "traj_data.json", json.dumps(traj, indent=1))
    atomic_write_text(trial_dir / "game.tw-pddl", json.dumps(game))
    return trial_dir / "game.tw-pddl"
