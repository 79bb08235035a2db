"""Index of an ALFWorld dataset tree in the official ``json_2.1.1`` layout.

Exports ``OFFICIAL_SPLITS``, ``OfficialGame``, ``find_official_root`` and ``index_official``.

The official download (``alfworld-download``) puts games at
``$ALFWORLD_DATA/json_2.1.1/{train,valid_seen,valid_unseen}/<task>/<trial>/game.tw-pddl``
next to ``traj_data.json``; ``<task>`` starts with the task type
(``pick_and_place_simple-Apple-None-CounterTop-1``). We map ``train -> train``,
``valid_seen -> seen``, ``valid_unseen -> unseen`` and, like alfworld's own
``collect_game_files``, skip ``movable``/``Sliced`` variants, trials without
``traj_data.json`` and games not marked ``"solvable": true``. Checking ``solvable`` means
reading every game file once, so the index is cached (keyed by path, size and mtime).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from reskill_gym.atomic import atomic_write_text
from reskill_gym.envs.alfworld.spec import TASK_TYPES

__all__ = ["OFFICIAL_SPLITS", "OfficialGame", "find_official_root", "index_official"]

logger = logging.getLogger(__name__)

OFFICIAL_SPLITS: dict[str, str] = {"train": "train", "seen": "valid_seen", "unseen": "valid_unseen"}


@dataclass(frozen=True)
class OfficialGame:
    """One trial of the official tree; ``task_id`` is its path below ``json_2.1.1``."""

    task_id: str
    split: str
    task_type: str
    gamefile: str


def find_official_root(path: str | os.PathLike[str]) -> Path | None:
    """The ``json_2.1.1`` folder at or directly below ``path``, if any."""
    p = Path(path).expanduser()
    for candidate in (p, p / "json_2.1.1"):
        if candidate.is_dir() and any((candidate / d).is_dir() for d in OFFICIAL_SPLITS.values()):
            return candidate
    return None


def _task_type(task_dir: str) -> str | None:
    prefix = task_dir.split("-", 1)[0]
    return prefix if prefix in TASK_TYPES else None


def index_official(
    root: str | os.PathLike[str], *, cache_dir: Path | None = None
) -> dict[str, list[OfficialGame]]:
    """``split -> games`` (sorted by task id) for a ``json_2.1.1`` tree."""
    root_path = find_official_root(root)
    if root_path is None:
        raise FileNotFoundError(
            f"{root}: no json_2.1.1/{{train,valid_seen,valid_unseen}} tree here (set ALFWORLD_DATA or data_dir "
            "to the folder that holds json_2.1.1)"
        )
    cache_file = None
    known: dict[str, list[object]] = {}
    if cache_dir is not None:
        key = hashlib.sha256(str(root_path.resolve()).encode()).hexdigest()[:16]
        cache_file = cache_dir / "alfworld" / f"official-index-{key}.json"
        try:
            known = json.loads(cache_file.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}
    fresh: dict[str, list[object]] = {}
    out: dict[str, list[OfficialGame]] = {}
    skipped = 0
    for split, folder in OFFICIAL_SPLITS.items():
        games: list[OfficialGame] = []
        base = root_path / folder
        if not base.is_dir():
            out[split] = games
            continue
        for gamefile in sorted(base.glob("*/*/game.tw-pddl")):  # alfworld's downloaded data
            rel = gamefile.relative_to(root_path).as_posix()
            task_type = _task_type(gamefile.parent.parent.name)
            if "movable" in rel or "Sliced" in rel or task_type is None:
                skipped += 1
                continue
            if not (gamefile.parent / "traj_data.json").exists():
                skipped += 1
                continue
            stat = gamefile.stat()
            stamp = [stat.st_size, stat.st_mtime_ns]
            entry = known.get(rel)
            if entry is not None and entry[:2] == stamp:
                solvable = bool(entry[2])
            else:
                try:
                    solvable = bool(json.loads(gamefile.read_text()).get("solvable", False))
                except (OSError, json.JSONDecodeError) as exc:
                    logger.warning("skipping %s: %s", gamefile, exc)
                    solvable = False
            fresh[rel] = [*stamp, solvable]
            if not solvable:
                skipped += 1
                continue
            games.append(
                OfficialGame(task_id=rel, split=split, task_type=task_type, gamefile=str(gamefile))
            )
        out[split] = games
    if cache_file is not None and fresh != known:
        atomic_write_text(cache_file, json.dumps(fresh))
    logger.info(
        "ALFWorld data %s: %s games (%d skipped)",
        root_path,
        {k: len(v) for k, v in out.items()},
        skipped,
    )
    return out
