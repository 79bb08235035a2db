"""The run folders a viewer was given: what kind each is and its files, read-only and followed live.

Exports ``RunKind``, ``RunFolder``, ``JsonlTail``, ``open_runs`` and ``ViewerInputError``.

Every kind of folder the project writes is recognised by the files it holds:

- ``train`` / ``evolve``: ``config.yaml``, ``metrics.jsonl``, ``events.jsonl``, ``skills/``
  (a library with history), ``episodes/`` (:mod:`reskill_gym.step_episodes`);
- ``verl``: the same files in ``<default_local_dir>/reskill`` with the library in ``library/``
  (``config.yaml``'s ``run.trainer`` says ``verl``);
- ``eval``: ``reskill eval`` success runs (``episodes.jsonl`` of ``EvalEpisode`` lines,
  ``config.json``);
- ``expert``: ``reskill eval --metric expert`` (``states.jsonl`` + ``scores.jsonl``).

Nothing here writes: files are opened for reading only, JSONL logs are followed by byte
offset (a live run's new lines are read, a truncated log - a resume - is read again), and
the skill library is read through ``SkillLibrary``'s read side (constructed, never
``open``-ed: no lock is taken and no interrupted write is recovered).

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> _ = (run / "metrics.jsonl").write_text('{"step": 0, "episode/success_rate": 0.5}\\n')
>>> folder = RunFolder(run, 0)
>>> folder.kind, folder.metrics.rows()[0]["episode/success_rate"]
('train', 0.5)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from reskill_gym import safe_files

__all__ = ["RunKind", "RunFolder", "JsonlTail", "open_runs", "ViewerInputError"]

logger = logging.getLogger(__name__)

RunKind = Literal["train", "evolve", "verl", "eval", "expert"]
#: The largest JSON line the viewer parses (a bigger one is skipped as damaged).
MAX_LINE_BYTES = 64 * 1024 * 1024


class ViewerInputError(ValueError):
    """A path given to ``reskill view`` that is not a run folder (one line, names the path)."""


class JsonlTail:
    """The JSON-object lines of an append-only file, read incrementally by byte offset.

    ``rows()`` re-checks the file: new complete lines are parsed and appended; a file that
    shrank or was replaced (a resume truncates its logs) is read again from the start. A
    torn last line (a writer mid-append) waits for its newline; a damaged line is skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: list[dict[str, Any]] = []
        self._offset = 0
        self._ident: tuple[int, int] | None = None
        self.version = 0
        """Bumped whenever ``rows()`` changes (callers cache derived data on it)."""

    def rows(self) -> list[dict[str, Any]]:
        try:
            st = self.path.stat()
        except OSError:
            if self._rows:
                self._rows, self._offset, self._ident = [], 0, None
                self.version += 1
            return self._rows
        ident = (st.st_dev, st.st_ino)
        if ident != self._ident or st.st_size < self._offset:
            self._rows, self._offset, self._ident = [], 0, ident
            self.version += 1
        if st.st_size == self._offset:
            return self._rows
        with safe_files.open_regular(self.path) as fh:
            fh.seek(self._offset)
            data = fh.read(st.st_size - self._offset)
        end = data.rfind(b"\n")
        if end < 0:
            return self._rows
        for raw in data[: end + 1].splitlines():
            if not raw.strip() or len(raw) > MAX_LINE_BYTES:
                continue
            try:
                row = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                logger.warning("%s: unreadable line skipped", self.path)
                continue
            if isinstance(row, dict):
                self._rows.append(row)
        self._offset += end + 1
        self.version += 1
        return self._rows


def _read_config(run: Path) -> dict[str, Any]:
    """``config.yaml`` (train/evolve/verl) or ``config.json`` (eval), as plain data."""
    yaml_path, json_path = run / "config.yaml", run / "config.json"
    try:
        if yaml_path.is_file():
            from reskill_gym.yaml_loading import load_yaml_file

            data = load_yaml_file(yaml_path)
        elif json_path.is_file():
            data = json.loads(safe_files.read_bytes(json_path))
        else:
            return {}
    except Exception as exc:  # a damaged config must not hide the rest of the run
        logger.warning("%s: config unreadable (%s)", run, exc)
        return {"error": f"config unreadable: {exc}"}
    return data if isinstance(data, dict) else {}


class RunFolder:
    """One run folder: its kind, config, logs and library, all read on demand."""

    def __init__(self, path: str | os.PathLike[str], index: int) -> None:
        self.path = Path(path)
        self.index = index
        self.name = self.path.name if self.path.name != "reskill" else self.path.parent.name
        self.kind = self._detect()
        self._tails: dict[str, JsonlTail] = {}
        self.metrics = self.tail("metrics.jsonl")
        self.events = self.tail("events.jsonl")
        self._config: dict[str, Any] | None = None
        self._config_stamp: float | None = None

    def _detect(self) -> RunKind:
        p = self.path
        if (p / "scores.jsonl").is_file() or (p / "states.jsonl").is_file():
            return "expert"
        if (p / "episodes.jsonl").is_file() and not (p / "metrics.jsonl").exists():
            return "eval"
        config = _read_config(p)
        run = config.get("run") if isinstance(config.get("run"), dict) else {}
        if isinstance(run, dict) and run.get("trainer") == "verl" or (p / "library").is_dir():
            return "verl"
        if "agent" in config:
            return "evolve"
        return "train"

    def tail(self, name: str) -> JsonlTail:
        """The followed JSONL file ``name`` of this folder (one reader per file)."""
        if name not in self._tails:
            self._tails[name] = JsonlTail(self.path / name)
        return self._tails[name]

    @property
    def config(self) -> dict[str, Any]:
        """The run's config (re-read when the file changes: a resume may rewrite it)."""
        target = self.path / ("config.json" if self.kind in ("eval", "expert") else "config.yaml")
        try:
            stamp: float | None = target.stat().st_mtime
        except OSError:
            stamp = None
        if self._config is None or stamp != self._config_stamp:
            self._config, self._config_stamp = _read_config(self.path), stamp
        return self._config

    @property
    def library_dir(self) -> Path | None:
        """The run's skill library (with history), if it has one."""
        from reskill_gym.skills.source import is_library

        for name in ("skills", "library"):
            d = self.path / name
            if not d.is_symlink() and is_library(d):
                return d
        return None

    @property
    def creator_dir(self) -> Path | None:
        """Creator pass artifacts (``creator/step_<N>/``), if the run kept them."""
        for d in (self.path / "creator", self.path / "checkpoints" / "creator"):
            if d.is_dir() and not d.is_symlink():
                return d
        return None

    def describe(self) -> dict[str, Any]:
        """Name, kind and the headline facts the run list shows."""
        cfg = self.config
        env = cfg.get("env") if isinstance(cfg.get("env"), dict) else cfg.get("env")
        env_name = env.get("name") if isinstance(env, dict) else env
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "env": env_name if isinstance(env_name, str) else None,
        }


def _check_run(path: Path) -> Path:
    if not path.exists():
        raise ViewerInputError(f"{path}: no such folder")
    if not path.is_dir():
        raise ViewerInputError(f"{path}: not a folder (give a run folder)")
    markers = (
        "metrics.jsonl",
        "events.jsonl",
        "config.yaml",
        "episodes.jsonl",
        "scores.jsonl",
        "states.jsonl",
        "episodes",
    )
    if not any((path / m).exists() for m in markers):
        hint = (
            " (a veRL run: give <default_local_dir>/reskill)" if (path / "reskill").is_dir() else ""
        )
        raise ViewerInputError(
            f"{path}: not a run folder: no metrics.jsonl, events.jsonl, episodes or eval "
            f"records{hint}"
        )
    return path


def open_runs(paths: Sequence[str | os.PathLike[str]]) -> list[RunFolder]:
    """A ``RunFolder`` per path, in order; a veRL checkpoint root is taken to its ``reskill/``."""
    if not paths:
        raise ViewerInputError("give at least one run folder")
    runs = []
    for i, raw in enumerate(paths):
        path = Path(raw).expanduser()
        if path.is_dir() and (path / "reskill" / "metrics.jsonl").is_file():
            path = path / "reskill"
        runs.append(RunFolder(_check_run(path).resolve(), i))
    return runs
