"""The experience reservoir: a bounded store of recent episodes, grouped by task.

Exports ``Reservoir``, ``EpisodeGroup``, ``DedupBy``, ``arm_label`` and ``dedup_key``.

The trainer adds every finished episode; the oldest fall out past ``capacity`` (200, the
reference size). Two keying rules (``dedup_by``):

* ``task_arm_outcome`` (the published ``ExperienceReservoir``, ``dedup_by='task'``): at most
  one episode per (task, arm, outcome), where arm is ``new`` (the candidate of a live
  version test) or ``old`` (everything else) and outcome is success/failure. A newer
  episode with the same key replaces the older one and becomes the newest (FIFO eviction
  by insertion order), so 200 slots hold up to 200 *different* situations rather than many
  copies of one task from repeated GRPO groups. Each task holds at most 4 entries.
* ``episode``: one slot per episode id (no dedup; per-task runs, tiny demos).

The creator samples *groups* of episodes of the same task, because a failure is only
diagnosable next to a success on the same task: ``sample_task_groups`` (the published
group sampler) and ``sample_groups`` (the project's episode-share sampler). Persistence is
JSON lines (one header line, then one ``Episode`` per line), written atomically, so a
resumed run finds the reservoir it had.

>>> from reskill_gym.episode import Episode
>>> r = Reservoir(capacity=3)
>>> r.add([Episode(episode_id=f"e{i}", env_id="x", task_id=f"t{i % 2}", task="t",
...                won=i % 2 == 0) for i in range(5)])
>>> len(r), [e.episode_id for e in r.episodes()]
(3, ['e2', 'e3', 'e4'])
>>> sorted(g.task_id for g in r.sample_groups(2, min_success_ratio=0.3, rng=0))
['t0', 't1']
>>> d = Reservoir(capacity=10, dedup_by="task_arm_outcome")
>>> d.add([Episode(episode_id=f"e{i}", env_id="x", task_id="t", task="t", won=i == 3)
...        for i in range(5)])
>>> [e.episode_id for e in d.episodes()]  # one failure and one success of task t are kept
['e3', 'e4']
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text
from reskill_gym.episode import Episode

__all__ = ["Reservoir", "EpisodeGroup", "DedupBy", "arm_label", "dedup_key"]

log = logging.getLogger(__name__)

_FORMAT = "reskill-reservoir"
_FORMAT_VERSION = 1

DedupBy = Literal["task_arm_outcome", "episode"]
DEDUP_MODES: tuple[str, ...] = ("task_arm_outcome", "episode")


def arm_label(ep: Episode) -> str:
    """``new`` for the candidate arm of a live version test, else ``old`` (published labels).

    >>> arm_label(Episode(episode_id="e", env_id="x", task_id="t", task="t", arm="candidate"))
    'new'
    """
    return "new" if ep.arm == "candidate" else "old"


def dedup_key(ep: Episode, dedup_by: DedupBy) -> str:
    """The slot an episode occupies: its id, or ``task_id|arm|outcome``."""
    if dedup_by == "episode":
        return ep.episode_id
    outcome = "success" if ep.success else "failure"
    return f"{ep.task_id}|{arm_label(ep)}|{outcome}"


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

    @property
    def has_success(self) -> bool:
        return self.n_success > 0

    @property
    def has_failure(self) -> bool:
        return self.n_success < len(self.episodes)

    @property
    def arms(self) -> set[str]:
        """``new`` / ``old`` labels present (see ``arm_label``)."""
        return {arm_label(e) for e in self.episodes}


class Reservoir:
    """Bounded, thread-safe episode store; ``path`` is where ``save()`` writes by default.

    Constructing with a ``path`` that exists loads it (resume). Re-adding an episode id (or,
    with ``dedup_by="task_arm_outcome"``, an episode with the same key) replaces the old
    record and makes it the newest.
    """

    def __init__(
        self,
        capacity: int = 200,
        path: str | Path | None = None,
        *,
        dedup_by: DedupBy = "episode",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if dedup_by not in DEDUP_MODES:
            raise ValueError(f"dedup_by must be one of {', '.join(DEDUP_MODES)}, got {dedup_by!r}")
        self.capacity = capacity
        self.dedup_by: DedupBy = dedup_by
        self.path = Path(path) if path is not None else None
        self._eps: OrderedDict[str, Episode] = OrderedDict()  # slot key -> episode
        self._ids: dict[str, str] = {}  # episode id -> slot key
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
                self._insert(ep)
            while len(self._eps) > self.capacity:
                _, old = self._eps.popitem(last=False)
                self._ids.pop(old.episode_id, None)

    def _insert(self, ep: Episode) -> None:
        # An episode id re-added under a new key (its outcome changed) leaves its old slot.
        prev_key = self._ids.pop(ep.episode_id, None)
        if prev_key is not None:
            self._eps.pop(prev_key, None)
        key = dedup_key(ep, self.dedup_by)
        replaced = self._eps.pop(key, None)
        if replaced is not None:
            self._ids.pop(replaced.episode_id, None)
        self._eps[key] = ep
        self._ids[ep.episode_id] = key

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
        with self._lock:
            key = self._ids.get(episode_id)
            return self._eps.get(key) if key is not None else None

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
        other = Reservoir(self.capacity, dedup_by=self.dedup_by)
        with self._lock:
            other._eps = OrderedDict(self._eps)
            other._ids = dict(self._ids)
        return other

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

    def sample_task_groups(
        self,
        n_groups: int = 30,
        min_success_ratio: float = 0.3,
        rng: np.random.Generator | int | None = None,
        *,
        max_episodes: int = 6,
    ) -> list[EpisodeGroup]:
        """Up to ``n_groups`` task groups for contrastive analysis (the published sampler).

        Mixed groups (a success and a failure) come first, in random order. The remaining
        slots are filled with failure-only groups before success-only ones, except that at
        least ``min_success_ratio`` of the chosen *groups* contain a success where the
        reservoir has them (the published ``sample_task_groups`` takes the ratio as an
        argument but never applies it; here it is applied). Each group keeps at most
        ``max_episodes`` episodes (published: 1-6, labelled A-F), chosen newest first and
        round-robin over (arm, outcome) so a capped group still shows both outcomes and
        both arms; they are returned oldest first.
        """
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        groups = self.groups()
        if not groups or n_groups < 1:
            return []

        def shuffled(items: list[EpisodeGroup]) -> list[EpisodeGroup]:
            return [items[i] for i in gen.permutation(len(items))]

        mixed = shuffled([g for g in groups if g.mixed])
        fail_only = shuffled([g for g in groups if not g.has_success])
        win_only = shuffled([g for g in groups if not g.has_failure])
        chosen = mixed[:n_groups]
        total = min(n_groups, len(groups))
        want_wins = math.ceil(min_success_ratio * total - 1e-9) - len(chosen)
        n_win = max(0, min(want_wins, len(win_only), total - len(chosen)))
        n_fail = min(len(fail_only), total - len(chosen) - n_win)
        chosen += fail_only[:n_fail] + win_only[:n_win]
        chosen += win_only[n_win : n_win + total - len(chosen)]
        return [_cap_group(g, max_episodes) for g in chosen]

    # ---- persistence -----------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write all episodes as JSON lines, atomically; returns the path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("Reservoir.save: no path given and the reservoir has none")
        header = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "capacity": self.capacity,
            "dedup_by": self.dedup_by,
        }
        lines = [json.dumps(header)] + [ep.model_dump_json() for ep in self.episodes()]
        atomic_write_text(target, "\n".join(lines) + "\n")
        return target

    @classmethod
    def load(
        cls, path: str | Path, capacity: int | None = None, *, dedup_by: DedupBy | None = None
    ) -> Reservoir:
        """Read a file written by ``save`` (or plain ``Episode`` JSON lines).

        ``dedup_by`` defaults to the file's own (``episode`` for files without a header).
        """
        p = Path(path)
        header, eps = _read_jsonl(p)
        cap = capacity or int(header.get("capacity") or max(len(eps), 200))
        mode = dedup_by or header.get("dedup_by") or "episode"
        if mode not in DEDUP_MODES:
            raise ValueError(f"{p}: header field 'dedup_by': unknown mode {mode!r}")
        r = cls(cap, dedup_by=mode)
        r.path = p
        r.add(eps)
        return r

    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "dedup_by": self.dedup_by,
            "episodes": [ep.model_dump(mode="json") for ep in self.episodes()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output; the reservoir keeps its own ``dedup_by`` (the run
        config decides it), re-keying the saved episodes if the mode changed."""
        try:
            eps = [Episode.model_validate(e) for e in state["episodes"]]
            cap = int(state["capacity"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"reservoir state: {e}") from e
        with self._lock:
            self.capacity = cap
            self._eps = OrderedDict()
            self._ids = {}
        self.add(eps)


def _cap_group(group: EpisodeGroup, max_episodes: int) -> EpisodeGroup:
    """At most ``max_episodes`` of a group: newest first, round-robin over (arm, outcome)."""
    if len(group.episodes) <= max_episodes:
        return group
    buckets: dict[tuple[str, bool], list[int]] = {}
    for i in reversed(range(len(group.episodes))):
        e = group.episodes[i]
        buckets.setdefault((arm_label(e), e.success), []).append(i)
    picked: list[int] = []
    queues = list(buckets.values())
    while len(picked) < max_episodes:
        for q in queues:
            if q and len(picked) < max_episodes:
                picked.append(q.pop(0))
    return EpisodeGroup(group.task_id, tuple(group.episodes[i] for i in sorted(picked)))


def _read_jsonl(path: Path) -> tuple[dict[str, Any], list[Episode]]:
    if not path.is_file():
        raise FileNotFoundError(f"reservoir file {path} does not exist")
    header: dict[str, Any] = {}
    eps: list[Episode] = []
    with safe_files.open_text(path, follow_links=True) as fh:  # the path the user typed
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
