"""Seeded TextWorld Cooking games, generated offline and cached.

Exports ``LEVELS``, ``SPLIT_SEEDS``, ``GameRef``, ``game_ref``, ``task_ids``,
``ensure_game`` and ``cache_folder``.

A task id ``<level>/<split>/<NNNN>`` names one game: TextWorld's ``tw-cooking`` challenge
(the generator behind ``tw-make tw-cooking``) with the level's settings, the split's food
distribution and a seed from the split's own seed range, so the same id is the same game on
every machine with the same TextWorld version. Splits:

* ``train``: TextWorld's *train* foods and preparations, seeds from 1,000;
* ``seen``: the same foods and preparations, held-out seeds (50,000 on): new maps, rooms and
  recipes over known ingredients;
* ``unseen``: TextWorld's *test* foods (ingredients never seen in train) and unseen
  preparations of the train foods, held-out seeds (90,000 on).

Levels set recipe size, rooms and which skills a recipe needs (``take``/``open``/``cut``/
``cook``): ``tiny`` (one ingredient in the kitchen, closed containers), ``small`` (two
ingredients to fetch over 6 rooms, cutting) and ``std`` (three ingredients over 9 rooms,
cutting and cooking). A game is generated on first use (seconds, no network) into
``$RESKILL_CACHE/textworld/<textworld version>/<level>/<split>/`` and written atomically
(``.json`` then ``.z8``, each renamed into place), so concurrent envs never read half a game.

>>> game_ref("tiny/unseen/0003").seed, game_ref("tiny/unseen/0003").food_split
(90003, 'test')
>>> task_ids("small", "seen", 2)
['small/seen/0000', 'small/seen/0001']
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reskill_gym.atomic import fsync_dir

__all__ = [
    "LEVELS",
    "SPLIT_SEEDS",
    "GameRef",
    "game_ref",
    "task_ids",
    "ensure_game",
    "cache_folder",
]

logger = logging.getLogger(__name__)

#: ``tw-cooking`` settings per level (recipe size, ingredients to fetch, rooms, skills).
LEVELS: dict[str, dict[str, Any]] = {
    "tiny": {"recipe": 1, "take": 1, "go": 1, "open": True, "cut": False, "cook": False},
    "small": {"recipe": 2, "take": 2, "go": 6, "open": True, "cut": True, "cook": False},
    "std": {"recipe": 3, "take": 3, "go": 9, "open": True, "cut": True, "cook": True},
}
#: split -> (first seed, TextWorld's food split).
SPLIT_SEEDS: dict[str, tuple[int, str]] = {
    "train": (1_000, "train"),
    "seen": (50_000, "train"),
    "unseen": (90_000, "test"),
}
_ID = re.compile(r"(?P<level>[a-z]+)/(?P<split>[a-z]+)/(?P<index>\d{4,6})\Z")


@dataclass(frozen=True)
class GameRef:
    """One game: its task id, level settings, seed and food split."""

    task_id: str
    level: str
    split: str
    index: int

    @property
    def seed(self) -> int:
        return SPLIT_SEEDS[self.split][0] + self.index

    @property
    def food_split(self) -> str:
        return SPLIT_SEEDS[self.split][1]

    def settings(self) -> dict[str, Any]:
        """The ``tw-cooking`` settings (``tw-make tw-cooking --recipe ... --split ...``)."""
        return {
            **LEVELS[self.level],
            "drop": False,
            "recipe_seed": self.seed,
            "split": self.food_split,
        }


def game_ref(task_id: str) -> GameRef:
    """Parse ``<level>/<split>/<NNNN>``; a ``ValueError`` naming the expected form otherwise."""
    m = _ID.match(task_id)
    if m is None or m["level"] not in LEVELS or m["split"] not in SPLIT_SEEDS:
        raise ValueError(
            f"textworld task id {task_id!r}: expected <level>/<split>/<NNNN> with level in "
            f"{', '.join(LEVELS)} and split in {', '.join(SPLIT_SEEDS)}"
        )
    return GameRef(task_id, m["level"], m["split"], int(m["index"]))


def task_ids(level: str, split: str, n: int) -> list[str]:
    """The first ``n`` task ids of ``split`` at ``level`` (no game is generated)."""
    return [f"{level}/{split}/{i:04d}" for i in range(n)]


def cache_folder(cache_dir: Path) -> Path:
    """Games of this TextWorld version (another version generates other games)."""
    import textworld

    return cache_dir / "textworld" / str(textworld.__version__)


def ensure_game(ref: GameRef, cache_dir: Path) -> tuple[Path, float]:
    """The compiled game file of ``ref`` (generated if missing) and the seconds generating
    took (0.0 when cached)."""
    folder = cache_folder(cache_dir) / ref.level / ref.split
    z8 = folder / f"{ref.index:04d}.z8"
    if z8.is_file() and z8.with_suffix(".json").is_file():
        return z8, 0.0
    import textworld
    import textworld.generator
    from textworld.challenges import CHALLENGES

    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    make = CHALLENGES["tw-cooking"][1]
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=folder))
    try:
        options = textworld.GameOptions()
        options.seeds = ref.seed
        options.path = str(tmp / "game.z8")
        options.force_recompile = True
        options.file_ext = ".z8"
        with warnings.catch_warnings():
            # the generator replays its walkthrough through jericho, which calls every
            # generated game "not fully supported" (its own score detection)
            warnings.filterwarnings("ignore", message=".*not fully supported", module="jericho")
            game = make(ref.settings(), options)
            compiled = Path(textworld.generator.compile_game(game, options))
        # the .json is read with the .z8: it goes into place first, the .z8 marks it done
        for src, dest in ((compiled.with_suffix(".json"), z8.with_suffix(".json")), (compiled, z8)):
            with open(src, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(src, dest)
        fsync_dir(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    took = time.perf_counter() - t0
    logger.info("textworld: generated %s in %.1fs", ref.task_id, took)
    return z8, took
