"""The experience reservoir: a bounded store of recent episodes, grouped by task.

Exports ``Reservoir`` and ``EpisodeGroup``.

The trainer adds every finished episode; the oldest fall out past ``capacity`` (200, the
reference size). The creator samples *groups* of episodes of the same task that mix
successes and failures, because a failure is only diagnosable next to a success on the
same task. Persistence is JSON lines (one header line, then one ``Episode`` per line),
written atomically, so a resumed run finds the reservoir it had.

>>> from reskill_gym.episode import Episode
>>> r = Reservoir(capacity=3)
>>> r.add([Episode(episode_id=f"e{i}", env_id="x", task_id=f"t{i % 2}", task="t",
...                won=i % 2 == 0) for i in range(5)])
>>> len(r), [e.episode_id for e in r.episodes()]
(3, ['e2', 'e3', 'e4'])
>>> sorted(g.task_id for g in r.sample_groups(2, min_success_ratio=0.3, rng=0))
['t0', 't1']
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from reskill_gym.atomic import atomic_write_text
from reskill_gym.episode import Episode

__all__ = ["Reservoir", "EpisodeGroup"]

log = logging.getLogger(__name__)

_FORMAT = "reskill-reservoir"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class EpisodeGroup:
    """Episodes of one task (oldest first)."""

    task_id: str
    episodes: tuple[Episode, ...]

    @property
    def n_success(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def mixed(self) -> bool:
        """Has at least one success and one failure."""
        return 0 < self.n_success < len(self.episodes)


class Reservoir:
    """Bounded, thread-safe episode store; ``path`` is where ``save()`` writes by default.

    Constructing with a ``path`` that exists loads it (resume). Re-adding an episode id
    replaces the old record and makes it the newest.
    """

    def __init__(self, capacity: int = 200, path: str | Path | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.path = Path(path) if path is not None else None
        self._eps: OrderedDict[str, Episode] = OrderedDict()
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self.add(_read_jsonl(self.path)[1])

    # ---- adding and reading ----------------------------------------------------------
    def add(self, episodes: Episode | Iterable[Episode]) -> None:
        """Add finished episodes (dropped ones, with ``error`` set, are skipped)."""
        if isinstance(episodes, Episode):
            episodes = [episodes]
        with self._lock:
            for ep in episodes:
                if not isinstance(ep, Episode):
                    raise TypeError(f"Reservoir.add takes Episode records, got {type(ep).__name__}")
                if ep.error is not None:
                    log.debug(
                        "reservoir: skipping dropped episode %s (%s)", ep.episode_id, ep.error
                    )
                    continue
                self._eps.pop(ep.episode_id, None)
                self._eps[ep.episode_id] = ep
            while len(self._eps) > self.capacity:
                self._eps.popitem(last=False)

    def __len__(self) -> int:
        return len(self._eps)

    def ready(self, min_size: int) -> bool:
        """Enough episodes for a creator pass."""
        return len(self._eps) >= min_size

    def episodes(self) -> list[Episode]:
        """All episodes, oldest first."""
        with self._lock:
            return list(self._eps.values())

    def get(self, episode_id: str) -> Episode | None:
        return self._eps.get(episode_id)

    def groups(self) -> list[EpisodeGroup]:
        """Episodes grouped by ``task_id`` (groups in order of first appearance)."""
        by: dict[str, list[Episode]] = {}
        for ep in self.episodes():
            by.setdefault(ep.task_id, []).append(ep)
        return [EpisodeGroup(k, tuple(v)) for k, v in by.items()]

    def counts(self) -> dict[str, int]:
        """Episodes, successes, failures and task groups (for logs and CLI output)."""
        eps = self.episodes()
        wins = sum(e.success for e in eps)
        return {
            "episodes": len(eps),
            "successes": wins,
            "failures": len(eps) - wins,
            "tasks": len({e.task_id for e in eps}),
        }

    def snapshot(self) -> Reservoir:
        """An independent copy (episodes are immutable records, so this is cheap)."""
        other = Reservoir(self.capacity)
        other._eps = OrderedDict(self._eps_items())
        return other

    def _eps_items(self) -> list[tuple[str, Episode]]:
        with self._lock:
            return list(self._eps.items())

    # ---- sampling --------------------------------------------------------------------
    def sample_groups(
        self,
        n_groups: int,
        min_success_ratio: float = 0.3,
        rng: np.random.Generator | int | None = None,
    ) -> list[EpisodeGroup]:
        """Up to ``n_groups`` task groups: mixed groups first, then topped up so that at least
        ``min_success_ratio`` of the sampled episodes are successes where the reservoir allows.

        Order within each tier is random under ``rng`` (a ``Generator`` or a seed), so a
        pass can be replayed from its seed.
        """
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        groups = self.groups()
        if not groups or n_groups < 1:
            return []

        def shuffled(items: list[EpisodeGroup]) -> list[EpisodeGroup]:
            return [items[i] for i in gen.permutation(len(items))]

        mixed = shuffled([g for g in groups if g.mixed])
        failing = shuffled([g for g in groups if g.n_success == 0])
        winning = shuffled([g for g in groups if g.n_success == len(g.episodes)])
        chosen = mixed[:n_groups]

        def ratio() -> float:
            n = sum(len(g.episodes) for g in chosen)
            return sum(g.n_success for g in chosen) / n if n else 0.0

        while len(chosen) < n_groups and (failing or winning):
            if winning and (ratio() < min_success_ratio or not failing):
                chosen.append(winning.pop(0))
            else:
                chosen.append(failing.pop(0))
        # Still short of successes (too many failure-only groups): swap failures for wins.
        while winning and ratio() < min_success_ratio:
            idx = next((i for i, g in enumerate(chosen) if g.n_success == 0), None)
            if idx is None:
                break
            chosen[idx] = winning.pop(0)
        return chosen

    # ---- persistence -----------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write all episodes as JSON lines, atomically; returns the path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("Reservoir.save: no path given and the reservoir has none")
        header = {"format": _FORMAT, "version": _FORMAT_VERSION, "capacity": self.capacity}
        lines = [json.dumps(header)] + [ep.model_dump_json() for ep in self.episodes()]
        atomic_write_text(target, "\n".join(lines) + "\n")
        return target

    @classmethod
    def load(cls, path: str | Path, capacity: int | None = None) -> Reservoir:
        """Read a file written by ``save`` (or plain ``Episode`` JSON lines)."""
        p = Path(path)
        header, eps = _read_jsonl(p)
        cap = capacity or int(header.get("capacity") or max(len(eps), 200))
        r = cls(cap)
        r.path = p
        r.add(eps)
        return r

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "episodes": [ep.model_dump(mode="json") for ep in self.episodes()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            eps = [Episode.model_validate(e) for e in state["episodes"]]
            cap = int(state["capacity"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"reservoir state: {e}") from e
        with self._lock:
            self.capacity = cap
            self._eps = OrderedDict()
        self.add(eps)


def _read_jsonl(path: Path) -> tuple[dict[str, Any], list[Episode]]:
    if not path.is_file():
        raise FileNotFoundError(f"reservoir file {path} does not exist")
    header: dict[str, Any] = {}
    eps: list[Episode] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None
            if lineno == 1 and isinstance(obj, dict) and obj.get("format") == _FORMAT:
                if int(obj.get("version", 0)) > _FORMAT_VERSION:
                    raise ValueError(
                        f"{path}: reservoir format version {obj['version']} is newer than "
                        f"this reskill-gym understands ({_FORMAT_VERSION})"
                    )
                header = obj
                continue
            try:
                eps.append(Episode.model_validate(obj))
            except ValidationError as e:
                first = e.errors()[0]
                field = ".".join(str(p) for p in first["loc"])
                raise ValueError(
                    f"{path}:{lineno}: episode field {field!r}: {first['msg']}"
                ) from None
    return header, eps
