"""The Episodes page's data: a compact index of a run's episodes and one episode at a time.

Exports ``EpisodeSource``, ``EPISODE_COLUMNS`` and ``episode_source``.

Two layouts are read: the per-step episode log of training runs
(:class:`reskill_gym.step_episodes.StepEpisodes`: index files, one gzip member per episode) and
the ``episodes.jsonl`` of ``reskill eval`` (one ``EvalEpisode`` per line; its line offsets
are indexed here, incrementally, as a live evaluation appends). Either way the server keeps
only one small row per episode in memory and reads a full episode from disk by offset when it
is opened, so a 10,000-episode run costs its index, not its turns.

An episode is sent with the SKILL.md text of every skill its turns showed, at the version
it saw: from the step's index (what the writer recorded), else from the run's own library
store if that version was not pruned. A path written inside a record (``library_source``)
is never followed: the server reads only the folders it was given.

>>> EPISODE_COLUMNS[:4]
('step', 'arm', 'version', 'task_id')
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from reskill_gym import safe_files
from reskill_gym.step_episodes import EpisodeIndexEntry, StepEpisodes
from reskill_gym.view.sources import MAX_LINE_BYTES, RunFolder

__all__ = ["EpisodeSource", "EPISODE_COLUMNS", "episode_source"]

logger = logging.getLogger(__name__)

#: Columns of an index row, in order; ``skills`` holds indices into the source's skill list.
EPISODE_COLUMNS: tuple[str, ...] = (
    "step",
    "arm",
    "version",
    "task_id",
    "task_type",
    "won",
    "turns",
    "invalid",
    "skills",
    "reward",
    "group",
    "split",
    "error",
)


def _skill_name(skill_id: str) -> str:
    return skill_id.split("@", 1)[0]


class EpisodeSource(ABC):
    """A run's episodes: ``rows`` for the table, ``episode`` for one, ``pairs`` for the diff."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._skill_ids: dict[str, int] = {}
        self._rows: list[list[Any]] = []
        self._groups: dict[tuple[Any, Any], list[int]] = {}
        self._library_cache: dict[str, dict[str, str] | None] = {}

    # ----- index ---------------------------------------------------------------------------
    def _add_row(self, row: list[Any], skills: Sequence[str]) -> None:
        ids = []
        for s in skills:
            if s not in self._skill_ids:
                self._skill_ids[s] = len(self._skill_ids)
            ids.append(self._skill_ids[s])
        row[EPISODE_COLUMNS.index("skills")] = ids
        n = len(self._rows)
        self._rows.append(row)
        key = (row[0], row[EPISODE_COLUMNS.index("group")])
        if key[1] is not None:
            self._groups.setdefault(key, []).append(n)

    def _reset_index(self) -> None:
        self._rows, self._groups, self._skill_ids = [], {}, {}

    @abstractmethod
    def refresh(self) -> None:
        """Index what was written since the last call."""

    def rows(self, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """Index rows ``[offset, offset + limit)`` with the skill ids they refer to."""
        with self._lock:
            self.refresh()
            total = len(self._rows)
            end = total if limit is None else min(total, offset + limit)
            return {
                "columns": list(EPISODE_COLUMNS),
                "offset": offset,
                "total": total,
                "rows": [[offset + i, *r] for i, r in enumerate(self._rows[offset:end])],
                "skills": list(self._skill_ids),
            }

    def __len__(self) -> int:
        with self._lock:
            self.refresh()
            return len(self._rows)

    # ----- one episode ---------------------------------------------------------------------
    @abstractmethod
    def _record(self, n: int) -> dict[str, Any]:
        """The full record of row ``n`` as plain data."""

    def _recorded_skill_text(self, n: int, skill_id: str) -> str | None:
        return None

    def _library_texts(self, version: str | None) -> dict[str, str] | None:
        """name -> SKILL.md text of ``version`` in the run's own library (None: not stored)."""
        lib = self.run.library_dir
        if version is None or lib is None:
            return None
        if version not in self._library_cache:
            from reskill_gym.skills import SkillLibrary

            try:
                view = SkillLibrary(lib).view(version)
                self._library_cache[version] = {s.name: view.text(s.name) for s in view.skills}
            except Exception as exc:  # pruned or damaged: the page says so
                logger.info("%s: version %s unavailable (%s)", lib, version, exc)
                self._library_cache[version] = None
        return self._library_cache[version]

    def episode(self, n: int) -> dict[str, Any]:
        """Row ``n``'s record, its skill texts, and the other-arm episodes of its group."""
        with self._lock:
            self.refresh()
            if not 0 <= n < len(self._rows):
                raise KeyError(n)
            record = self._record(n)
            row = self._rows[n]
            fired = sorted({s for t in record.get("turns", []) for s in t.get("skill_ids", [])})
            version = record.get("library_version")
            texts: dict[str, dict[str, Any]] = {}
            library = None
            for sid in fired:
                text = self._recorded_skill_text(n, sid)
                source = "recorded"
                if text is None:
                    library = library if library is not None else self._library_texts(version)
                    text = (library or {}).get(_skill_name(sid))
                    source = "library" if text is not None else "missing"
                texts[sid] = {"text": text, "source": source}
            return {
                "index": n,
                "record": record,
                "skills": texts,
                "pairs": self._pairs(n, row),
            }

    def _pairs(self, n: int, row: list[Any]) -> list[dict[str, Any]]:
        arm_i = EPISODE_COLUMNS.index("arm")
        key = (row[0], row[EPISODE_COLUMNS.index("group")])
        out = []
        for m in self._groups.get(key, []):
            other = self._rows[m]
            if m != n and other[arm_i] != row[arm_i]:
                out.append({"index": m, "arm": other[arm_i], "won": other[5], "turns": other[6]})
        return out

    def diff(self, a: int, b: int) -> dict[str, Any]:
        """Two episodes' actions aligned (difflib opcodes over the action sequences)."""
        ra, rb = self.episode(a)["record"], self.episode(b)["record"]
        acts_a = [t.get("action", "") for t in ra.get("turns", [])]
        acts_b = [t.get("action", "") for t in rb.get("turns", [])]
        ops = difflib.SequenceMatcher(a=acts_a, b=acts_b, autojunk=False).get_opcodes()
        first = next((i for i, (x, y) in enumerate(zip(acts_a, acts_b)) if x != y), None)
        if first is None and len(acts_a) != len(acts_b):
            first = min(len(acts_a), len(acts_b))
        return {
            "a": a,
            "b": b,
            "opcodes": [list(op) for op in ops],
            "first_divergence": first,
        }


class _LogSource(EpisodeSource):
    """Training runs: ``episodes/step_<N>.{jsonl.gz,index.json}``."""

    def __init__(self, run: RunFolder) -> None:
        super().__init__(run)
        self.log = StepEpisodes(run.path)
        self._entries: list[EpisodeIndexEntry] = []

    def refresh(self) -> None:
        if not self.log.refresh() and self._entries:
            return
        entries = self.log.entries()
        if entries[: len(self._entries)] != self._entries:  # a step replaced or removed
            self._reset_index()
            self._entries = []
        for e in entries[len(self._entries) :]:
            self._add_row(
                [
                    e.step,
                    e.arm or "",
                    e.library_version,
                    e.task_id,
                    e.task_type,
                    e.won,
                    e.turns,
                    e.invalid_turns,
                    None,
                    e.reward,
                    e.group_id,
                    e.split,
                    e.error,
                ],
                e.skills,
            )
        self._entries = list(entries)

    def _record(self, n: int) -> dict[str, Any]:
        return self.log.read(self._entries[n]).model_dump(mode="json")

    def _recorded_skill_text(self, n: int, skill_id: str) -> str | None:
        return self.log.skill_text(self._entries[n].step, skill_id)


class _EvalSource(EpisodeSource):
    """``reskill eval`` runs: ``episodes.jsonl``, one ``EvalEpisode`` per line."""

    def __init__(self, run: RunFolder) -> None:
        super().__init__(run)
        self.path = run.path / "episodes.jsonl"
        self._spans: list[tuple[int, int]] = []
        self._offset = 0
        self._ident: tuple[int, int] | None = None

    def refresh(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            return
        ident = (st.st_dev, st.st_ino)
        if ident != self._ident or st.st_size < self._offset:
            self._reset_index()
            self._spans, self._offset, self._ident = [], 0, ident
        if st.st_size == self._offset:
            return
        with safe_files.open_regular(self.path) as fh:
            fh.seek(self._offset)
            data = fh.read(st.st_size - self._offset)
        pos = 0
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                break
            raw = data[pos:end]
            start = self._offset + pos
            pos = end + 1
            if not raw.strip() or len(raw) > MAX_LINE_BYTES:
                continue
            try:
                rec = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("turns", []), list):
                continue
            turns = [t for t in rec.get("turns", []) if isinstance(t, dict)]
            skills = sorted({str(s) for t in turns for s in t.get("skill_ids") or []})
            self._spans.append((start, len(raw)))
            self._add_row(
                [
                    rec.get("step", 0),
                    str(rec.get("condition", "")),
                    rec.get("library_version"),
                    str(rec.get("task_id", "")),
                    str(rec.get("task_type", "")),
                    bool(rec.get("won")),
                    len(turns),
                    sum(not t.get("valid", True) for t in turns),
                    None,
                    rec.get("reward", 0.0),
                    rec.get("group_id"),
                    str(rec.get("split", "")),
                    rec.get("error"),
                ],
                skills,
            )
        self._offset += pos

    def _record(self, n: int) -> dict[str, Any]:
        start, length = self._spans[n]
        with safe_files.open_regular(self.path) as fh:
            fh.seek(start)
            rec = json.loads(fh.read(length))
        return rec if isinstance(rec, dict) else {}


def episode_source(run: RunFolder) -> EpisodeSource | None:
    """The episode source of ``run`` (None for kinds without episodes: expert runs)."""
    if run.kind == "eval":
        return _EvalSource(run)
    if run.kind == "expert":
        return None
    return _LogSource(run)
