"""ScienceWorld's 30 task families, their variation sets, and the ReSkill splits.

Exports ``TaskFamily``, ``HELD_OUT_TASKS``, ``SIMPLIFICATIONS``, ``load_task_table``,
``parse_task_id``, ``format_task_id``, ``split_task_ids``, ``build_task_table`` and
``write_task_table``.

Why a shipped table: the engine only reports a task's train/dev/test variation indices
after a JVM is up and the task is loaded. ``task_table.json`` (next to this module) is
that answer, recorded once from the ``scienceworld`` 1.2.3 engine by
:func:`build_task_table`, so that listing task ids and choosing a task under a seed need
neither Java nor seconds of loading. A test checks the table against the live engine.

Splits (task id = ``"<task_name>:<variation>"``):

* ``train``: the engine's *train* variations of the 20 training task families;
* ``seen``: the engine's *test* variations (or *dev*, on request) of the same families;
* ``unseen``: the *test* (or *dev*) variations of the 10 held-out families in
  :data:`HELD_OUT_TASKS`.

The held-out families are the last task of each of ScienceWorld's ten topic groups
(``1-4`` ... ``10-2``): every held-out task has at least one sibling in training that
exercises the same science knowledge (state changes, thermometers, circuits, ...), but
its goal is new and usually the compositional or "unknown" variant (unknown substance,
unnamed surfaces, tertiary colours, longest-then-shortest). That is the spirit of the
paper's in-/out-of-distribution split: new task types within known domains.

>>> parse_task_id("find-animal:151")
('find-animal', 151)
>>> len(split_task_ids("seen")) > 0 and split_task_ids("seen")[0].startswith("boil:")
True
>>> sorted(set(HELD_OUT_TASKS) & {t.split(":")[0] for t in split_task_ids("train")})
[]
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    from reskill_gym.envs.scienceworld.engine import ScienceWorldEngine

__all__ = [
    "TaskFamily",
    "HELD_OUT_TASKS",
    "SIMPLIFICATIONS",
    "TASK_TABLE_PATH",
    "load_task_table",
    "parse_task_id",
    "format_task_id",
    "split_task_ids",
    "build_task_table",
    "write_task_table",
]

TASK_TABLE_PATH = Path(__file__).with_name("task_table.json")

#: Last family of each topic group (see the module docstring for why).
HELD_OUT_TASKS: tuple[str, ...] = (
    "change-the-state-of-matter-of",  # 1-4
    "measure-melting-point-unknown-substance",  # 2-3
    "test-conductivity-of-unknown-substances",  # 3-4
    "find-animal",  # 4-4
    "grow-fruit",  # 5-2
    "chemistry-mix-paint-tertiary-color",  # 6-3
    "lifespan-longest-lived-then-shortest-lived",  # 7-3
    "identify-life-stages-2",  # 8-2
    "inclined-plane-friction-unnamed-surfaces",  # 9-3
    "mendelian-genetics-unknown-plant",  # 10-2
)

#: Simplifications the engine accepts (comma-separated in ``simplifications=``).
SIMPLIFICATIONS: tuple[str, ...] = (
    "teleportAction",
    "selfWateringFlowerPots",
    "openContainers",
    "openDoors",
    "noElectricalAction",
    "easy",
)

VariationSet = Literal["train", "dev", "test"]
_VARIATION_SETS: tuple[str, ...] = ("train", "dev", "test")
_TASK_ID_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*):(?P<variation>\d+)\Z")


@dataclass(frozen=True)
class TaskFamily:
    """One ScienceWorld task and its variation sets (half-open index ranges)."""

    name: str
    task_num: str
    topic: str
    title: str
    max_variations: int
    train: tuple[int, int]
    dev: tuple[int, int]
    test: tuple[int, int]

    def variations(self, which: VariationSet) -> range:
        """The variation indices of one of the engine's sets."""
        lo, hi = getattr(self, which)
        return range(lo, hi)


def _field(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise ValueError(f"{where}: missing field {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _parse_family(name: str, entry: Any, where: str) -> TaskFamily:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    max_var = _field(entry, "max_variations", int, where)
    ranges: dict[str, tuple[int, int]] = {}
    for which in _VARIATION_SETS:
        value = _field(entry, which, list, where)
        if len(value) != 2 or not all(isinstance(v, int) for v in value):
            raise ValueError(f"{where}: field {which!r} must be [start, stop], got {value!r}")
        lo, hi = value
        if not 0 <= lo <= hi <= max_var:
            raise ValueError(f"{where}: field {which!r} range {value} outside 0..{max_var}")
        ranges[which] = (lo, hi)
    return TaskFamily(
        name=name,
        task_num=_field(entry, "task_num", str, where),
        topic=_field(entry, "topic", str, where),
        title=_field(entry, "title", str, where),
        max_variations=max_var,
        train=ranges["train"],
        dev=ranges["dev"],
        test=ranges["test"],
    )


@functools.lru_cache(maxsize=4)
def load_task_table(path: str | os.PathLike[str] | None = None) -> dict[str, TaskFamily]:
    """Read the task table (default: the shipped ``task_table.json``), validated."""
    file = Path(path) if path is not None else TASK_TABLE_PATH
    try:
        raw = json.loads(safe_files.read_text(file, follow_links=True))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file}: cannot read the ScienceWorld task table: {exc}") from exc
    tasks = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(f"{file}: expected a non-empty object under 'tasks'")
    return {
        name: _parse_family(name, entry, f"{file}: tasks.{name}") for name, entry in tasks.items()
    }


def parse_task_id(task_id: str, table: dict[str, TaskFamily] | None = None) -> tuple[str, int]:
    """Split ``"<task_name>:<variation>"`` and check both parts against the table."""
    table = table if table is not None else load_task_table()
    match = _TASK_ID_RE.match(task_id.strip()) if isinstance(task_id, str) else None
    if match is None:
        raise ValueError(f"ScienceWorld task id must look like 'boil:3', got {task_id!r}")
    name, variation = match["name"], int(match["variation"])
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown ScienceWorld task {name!r} in task id {task_id!r}{hint}")
    limit = table[name].max_variations
    if variation >= limit:
        raise ValueError(f"task id {task_id!r}: {name} has variations 0..{limit - 1}")
    return name, variation


def format_task_id(name: str, variation: int) -> str:
    """The inverse of :func:`parse_task_id`."""
    return f"{name}:{variation}"


def split_task_ids(
    split: str,
    *,
    held_out: Iterable[str] = HELD_OUT_TASKS,
    eval_variations: VariationSet = "test",
    tasks: Sequence[str] | None = None,
    table: dict[str, TaskFamily] | None = None,
) -> list[str]:
    """Task ids of a split, in table order (families) then variation order.

    ``tasks`` restricts every split to some families (e.g. a curriculum of the four
    ``find-*`` tasks); ``eval_variations`` picks the engine set used by ``seen``/``unseen``.
    """
    table = table if table is not None else load_task_table()
    held = set(held_out)
    for name in held | set(tasks or ()):
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown ScienceWorld task {name!r}{hint}")
    if eval_variations not in ("dev", "test"):
        raise ValueError(f"eval_variations must be 'dev' or 'test', got {eval_variations!r}")
    wanted = set(tasks) if tasks is not None else set(table)
    which: VariationSet
    if split == "train":
        families, which = [n for n in table if n not in held], "train"
    elif split == "seen":
        families, which = [n for n in table if n not in held], eval_variations
    elif split == "unseen":
        families, which = [n for n in table if n in held], eval_variations
    else:
        raise ValueError(f"split must be 'train', 'seen' or 'unseen', got {split!r}")
    return [
        format_task_id(name, v)
        for name in families
        if name in wanted
        for v in table[name].variations(which)
    ]


def build_task_table(engine: ScienceWorldEngine) -> dict[str, Any]:
    """Ask a running engine for every task's variation sets (loads each task once).

    The engine numbers sets as contiguous index blocks; this is checked, not assumed.
    """
    from scienceworld.constants import TASKS

    meta = {t["task_name"]: t for t in TASKS}
    out: dict[str, Any] = {}
    for name in engine.task_names():
        engine.load(name, 0)
        entry: dict[str, Any] = {
            "task_num": meta[name]["task_id"],
            "topic": meta[name]["topic"],
            "title": meta[name]["task"],
            "max_variations": engine.max_variations(name),
        }
        for which, values in zip(_VARIATION_SETS, engine.variation_sets(), strict=True):
            if values != list(range(values[0], values[-1] + 1)):
                raise RuntimeError(f"{name}: {which} variations are not contiguous: {values}")
            entry[which] = [values[0], values[-1] + 1]
        out[name] = entry
    return {"engine": f"scienceworld {_engine_version()}", "tasks": out}


def _engine_version() -> str:
    from scienceworld.version import __version__

    return str(__version__)


def write_task_table(table: dict[str, Any], path: str | os.PathLike[str] = TASK_TABLE_PATH) -> None:
    """Write a table atomically (temp file + fsync + rename)."""
    atomic_write_text(Path(path), json.dumps(table, indent=1, sort_keys=False) + "\n")
    load_task_table.cache_clear()
