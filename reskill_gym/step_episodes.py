"""The episodes a run played, kept in its run folder: compressed JSONL per step plus an index.

Exports ``EPISODES_DIR``, ``EpisodeIndexEntry``, ``StepIndex``, ``write_step_episodes``,
``truncate_step_episodes``, ``StepEpisodes``, ``episode_index_entry`` and ``shown_skill_texts``.

Every run writer (``reskill train``, ``reskill evolve``, a veRL run's ``<default_local_dir>/
reskill``) records each step's :class:`~reskill_gym.episode.Episode` records here, and readers
(``reskill view``, scripts) read them back as the same typed records::

    episodes/step_000004.jsonl.gz      one gzip member per episode: `zcat` prints JSONL
    episodes/step_000004.index.json    per episode: byte offset, length and a summary;
                                       the SKILL.md text of every skill the step's bundles showed

Why one gzip member per episode: a reader seeks to an episode's offset and inflates only it
(a 10,000-episode run opens without inflating anything), while the file stays ordinary gzip
that any tool reads whole. The index carries what a table of episodes needs (task, arm,
success, length, skills fired), so listing a run reads only the small index files. The skill
texts make an episode readable after the library pruned the version it saw.

Both files are written atomically (temp file + rename; the index last), so a reader never sees
half a step; a step replayed after a resume replaces its files, and
:func:`truncate_step_episodes` drops the steps after the checkpoint a run resumes from.

>>> import tempfile, pathlib
>>> from reskill_gym.episode import Episode, Turn
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> ep = Episode(episode_id="s0-g0-r0", env_id="ReSkill-ALFWorld-v0", task_id="t1", step=0,
...              turns=[Turn(observation="You are in a room.", action="look", skill_ids=["a@1"])],
...              won=True, reward=1.0)
>>> _ = write_step_episodes(run, 0, [ep], skill_texts={"a@1": "---\\nname: a\\n---\\nLook."})
>>> log = StepEpisodes(run)
>>> [(e.episode_id, e.won, e.skills) for e in log.entries()]
[('s0-g0-r0', True, ['a@1'])]
>>> log.read(log.entries()[0]) == ep, log.skill_text(0, "a@1")
(True, '---\\nname: a\\n---\\nLook.')
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_bytes, atomic_write_text
from reskill_gym.episode import Episode

__all__ = [
    "EPISODES_DIR",
    "EpisodeIndexEntry",
    "StepIndex",
    "write_step_episodes",
    "truncate_step_episodes",
    "StepEpisodes",
    "episode_index_entry",
    "shown_skill_texts",
]

logger = logging.getLogger(__name__)

EPISODES_DIR = "episodes"
#: Version of the index layout (bumped when a field changes meaning).
INDEX_FORMAT = 1
#: zlib level: 1 writes ~3x faster than the default 6 for ~10 % larger files on episode JSON,
#: and the write sits on a training step's critical path (benchmarks/perf/step_episodes.py).
COMPRESS_LEVEL = 1
#: Largest step file scanned when its index is missing (a step of ~400,000 episodes).
MAX_STEP_FILE_BYTES = 1 << 30
_STEP_FILE = re.compile(r"^step_(\d{6,})\.(jsonl\.gz|index\.json)$")


class EpisodeIndexEntry(BaseModel):
    """Where one episode lies in its step file, and what a table of episodes shows of it."""

    model_config = ConfigDict(extra="ignore")

    episode_id: str = Field(description="The episode's id (unique within the run).")
    step: int = Field(description="Training step that played it.")
    offset: int = Field(ge=0, description="Byte offset of its gzip member in the step file.")
    length: int = Field(ge=0, description="Byte length of its gzip member.")
    task_id: str = ""
    task_type: str = ""
    split: str = ""
    arm: str | None = Field(None, description="Version-test arm, when a test was live.")
    library_version: str | None = None
    group_id: str | None = None
    won: bool = False
    reward: float = 0.0
    turns: int = Field(0, description="Turns played.")
    invalid_turns: int = Field(0, description="Turns whose reply carried no valid action.")
    invalid_commands: int = Field(0, description="Commands the engine rejected.")
    skills: list[str] = Field(default_factory=list, description="Skill ids fired, sorted.")
    stop_reason: str = ""
    error: str | None = None


class StepIndex(BaseModel):
    """``step_<N>.index.json``: the step's episodes in file order and its skill texts."""

    model_config = ConfigDict(extra="ignore")

    format: int = INDEX_FORMAT
    step: int
    file: str = Field(description="Name of the step's ``.jsonl.gz`` file.")
    episodes: list[EpisodeIndexEntry] = Field(default_factory=list)
    skills: dict[str, str] = Field(
        default_factory=dict, description="Skill id (name@version) -> SKILL.md text shown."
    )


def _step_name(step: int) -> str:
    return f"step_{int(step):06d}"


def episode_index_entry(ep: Episode, offset: int, length: int) -> EpisodeIndexEntry:
    """The index summary of ``ep`` stored at ``offset`` / ``length``."""
    return EpisodeIndexEntry(
        episode_id=ep.episode_id,
        step=ep.step,
        offset=offset,
        length=length,
        task_id=ep.task_id,
        task_type=ep.task_type,
        split=ep.split,
        arm=ep.arm,
        library_version=ep.library_version,
        group_id=ep.group_id,
        won=ep.won,
        reward=ep.reward,
        turns=len(ep.turns),
        invalid_turns=ep.invalid_turns,
        invalid_commands=sum(t.invalid_action for t in ep.turns),
        skills=sorted(ep.skills_fired),
        stop_reason=ep.stop_reason,
        error=ep.error,
    )


def shown_skill_texts(episodes: Iterable[Episode], view: Callable[[str], Any]) -> dict[str, str]:
    """Skill id -> SKILL.md text for every skill the episodes' turns showed.

    ``view(version)`` returns the ``LibraryView`` an episode ran under (e.g.
    ``CoEvolution.view``); a version it cannot give (pruned) or a skill it lacks is left out.
    """
    wanted: dict[str, set[str]] = {}
    for ep in episodes:
        if ep.library_version is not None:
            wanted.setdefault(ep.library_version, set()).update(ep.skills_fired)
    texts: dict[str, str] = {}
    for version, ids in wanted.items():
        try:
            lib = view(version)
        except Exception as exc:  # a pruned version: its episodes keep their ids only
            logger.debug("skill texts of %s unavailable: %s", version, exc)
            continue
        for sid in ids:
            name = sid.split("@", 1)[0]
            if lib is not None and name in lib:
                texts[sid] = lib.text(name)
    return texts


_SEP = "\n\x00\n"  # no redaction pattern crosses whitespace or NUL


_TURN_TEXTS = ("observation", "reply", "action", "prompt")


def _redacted(ep: Episode) -> Episode:
    """``ep`` with credentials cut from its free text (observations, replies, actions, recorded
    prompts, task, error). The texts are redacted as one joined string rather than as the JSON
    line: the record's own key names (``input_tokens``) would send every line through the
    slow key=value scan, and one call instead of hundreds keeps the write off the step's time."""
    from reskill_gym.redaction import redact

    texts = [ep.task, ep.final_observation, ep.error or ""]
    for t in ep.turns:
        texts += [getattr(t, name) or "" for name in _TURN_TEXTS]
    joined = _SEP.join(texts)
    clean = redact(joined)
    if clean == joined:
        return ep
    parts = clean.split(_SEP)
    if len(parts) != len(texts):  # a text held the separator itself: field by field
        parts = [redact(x) for x in texts]
    k = len(_TURN_TEXTS)
    turns = []
    for i, t in enumerate(ep.turns):
        new = dict(zip(_TURN_TEXTS, parts[3 + k * i : 3 + k * (i + 1)]))
        if t.prompt is None:
            new.pop("prompt")
        turns.append(t.model_copy(update=new))
    top: dict[str, Any] = {"task": parts[0], "final_observation": parts[1]}
    if ep.error is not None:
        top["error"] = parts[2]
    return ep.model_copy(update={"turns": turns, **top})


def write_step_episodes(
    run_dir: str | os.PathLike[str],
    step: int,
    episodes: Iterable[Episode],
    *,
    skill_texts: Mapping[str, str] | None = None,
    level: int = COMPRESS_LEVEL,
) -> Path:
    """Write step ``step``'s episodes (and the skill texts they saw) under ``episodes/``.

    Replaces the step's files if they exist (a step replayed after a resume). Returns the
    ``.jsonl.gz`` path. Credentials are redacted from every record, as in the other logs.
    """
    from reskill_gym.redaction import redact

    folder = Path(run_dir) / EPISODES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = _step_name(step)
    blobs: list[bytes] = []
    entries: list[EpisodeIndexEntry] = []
    offset = 0
    for ep in episodes:
        line = _redacted(ep).model_dump_json() + "\n"
        blob = gzip.compress(line.encode("utf-8"), compresslevel=level, mtime=0)
        entry = episode_index_entry(ep, offset, len(blob))
        entry.step = int(step)  # the file's step, whatever the record says
        entries.append(entry)
        blobs.append(blob)
        offset += len(blob)
    fired = {s for e in entries for s in e.skills}
    texts = {k: redact(v) for k, v in sorted((skill_texts or {}).items()) if k in fired}
    data_path = atomic_write_bytes(folder / f"{name}.jsonl.gz", b"".join(blobs))
    index = StepIndex(step=int(step), file=data_path.name, episodes=entries, skills=texts)
    atomic_write_text(folder / f"{name}.index.json", index.model_dump_json())
    return data_path


def truncate_step_episodes(run_dir: str | os.PathLike[str], keep_before: int) -> int:
    """Remove the files of steps ``>= keep_before`` (replayed after a resume); returns how many."""
    folder = Path(run_dir) / EPISODES_DIR
    removed = 0
    for e in safe_files.list_folder(folder, links="skip", special="skip", missing_ok=True):
        m = _STEP_FILE.match(e.name)
        if m and int(m.group(1)) >= keep_before and e.kind == "file":
            e.path.unlink()
            removed += 1
    return removed


def _scan_members(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of every gzip member of ``data`` (a step file without its index)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        try:
            d.decompress(data[pos:])
        except zlib.error:
            break  # a torn tail: keep the whole members before it
        if not d.eof:
            break
        length = len(data) - pos - len(d.unused_data)
        spans.append((pos, length))
        pos += length
    return spans


class StepEpisodes:
    """Read side of a run's ``episodes/`` folder; follows a live run (``refresh``).

    Holds only the index entries in memory; an episode is read from disk when asked for.
    Nothing is ever written: a step file without its index (a crash between the two
    renames, or another writer) is indexed in memory by scanning its gzip members.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(run_dir) / EPISODES_DIR
        self._steps: dict[int, StepIndex] = {}
        self._stamps: dict[int, tuple[int, int]] = {}
        self._entries: list[EpisodeIndexEntry] = []

    def refresh(self) -> bool:
        """Pick up steps written (or replaced) since the last call; True if anything changed."""
        found: dict[int, dict[str, Path]] = {}
        listed = safe_files.list_folder(self.folder, links="skip", special="skip", missing_ok=True)
        for e in listed:
            m = _STEP_FILE.match(e.name)
            if m and e.kind == "file":
                found.setdefault(int(m.group(1)), {})[m.group(2)] = e.path
        changed = False
        for step in [s for s in self._steps if s not in found]:
            del self._steps[step], self._stamps[step]
            changed = True
        for step, files in found.items():
            src = files.get("index.json") or files.get("jsonl.gz")
            assert src is not None
            st = src.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if self._stamps.get(step) == stamp:
                continue
            index = self._load_step(step, files)
            if index is None:
                continue
            self._steps[step], self._stamps[step] = index, stamp
            changed = True
        if changed or not self._entries and self._steps:
            self._entries = [e for s in sorted(self._steps) for e in self._steps[s].episodes]
        return changed

    def _load_step(self, step: int, files: Mapping[str, Path]) -> StepIndex | None:
        index_path = files.get("index.json")
        if index_path is not None:
            try:
                index = StepIndex.model_validate_json(safe_files.read_bytes(index_path))
                for e in index.episodes:  # an entry is found through its file's step
                    e.step = step
                return index
            except (ValidationError, ValueError, OSError) as exc:
                logger.warning("%s: unreadable index (%s); scanning the step file", index_path, exc)
        data_path = files.get("jsonl.gz")
        if data_path is None:
            return None
        return self._scan_step(step, data_path)

    def _scan_step(self, step: int, path: Path) -> StepIndex:
        data = safe_files.read_bytes(path, max_bytes=MAX_STEP_FILE_BYTES)
        entries = []
        for offset, length in _scan_members(data):
            try:
                ep = Episode.model_validate_json(gzip.decompress(data[offset : offset + length]))
            except (ValidationError, ValueError, OSError) as exc:
                logger.warning("%s@%d: unreadable episode skipped (%s)", path, offset, exc)
                continue
            entry = episode_index_entry(ep, offset, length)
            entry.step = step
            entries.append(entry)
        return StepIndex(step=step, file=path.name, episodes=entries)

    def entries(self) -> list[EpisodeIndexEntry]:
        """Every indexed episode, by step then file order (call :meth:`refresh` to follow)."""
        if not self._steps:
            self.refresh()
        return self._entries

    def steps(self) -> list[int]:
        """Steps with recorded episodes (call :meth:`refresh` to follow)."""
        if not self._steps:
            self.refresh()
        return sorted(self._steps)

    def read(self, entry: EpisodeIndexEntry) -> Episode:
        """The full record of ``entry`` (one gzip member inflated)."""
        index = self._steps[entry.step]
        with safe_files.open_regular(self.folder / index.file) as fh:
            fh.seek(entry.offset)
            blob = fh.read(entry.length)
        return Episode.model_validate_json(gzip.decompress(blob))

    def skill_text(self, step: int, skill_id: str) -> str | None:
        """SKILL.md text of ``skill_id`` as step ``step``'s bundles showed it (None: unknown)."""
        index = self._steps.get(step)
        return index.skills.get(skill_id) if index is not None else None
