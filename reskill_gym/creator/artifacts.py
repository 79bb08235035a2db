"""Per-step creator artifacts: every stage's inputs, prompts, raw answers and results on disk.

Exports ``PassArtifacts``.

The published pipeline writes each stage's prompt and response next to the checkpoints so a
researcher can read why a skill was proposed. Here one folder per pass,
``<artifacts_dir>/step_<step:06d>/``, holds numbered files in stage order (see
``SkillCreator`` for the list); writes are atomic (temp file + rename), and a failed write
is logged and skipped: artifacts never stop training. Every file passes through
``reskill_gym.redaction`` like the other records a run writes.

>>> import tempfile, pathlib, json
>>> a = PassArtifacts(pathlib.Path(tempfile.mkdtemp()), step=7)
>>> p = a.json("01_sample.json", {"groups": 2})
>>> p.parent.name, json.loads(p.read_text())
('step_000007', {'groups': 2})
>>> PassArtifacts(None, step=7).json("x.json", {}) is None
True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reskill_gym.atomic import atomic_write_text

__all__ = ["PassArtifacts"]

log = logging.getLogger(__name__)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


class PassArtifacts:
    """Writer for one pass's folder; ``root=None`` turns every write into a no-op."""

    def __init__(self, root: Path | None, step: int | None) -> None:
        self.folder = None if root is None else Path(root) / f"step_{(step or 0):06d}"
        self.written: list[str] = []
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def text(self, name: str, text: str) -> Path | None:
        """Write ``name`` (a file name inside the step folder) atomically, credentials
        redacted: replies and error texts of an endpoint can echo the request's key."""
        if self.folder is None:
            return None
        from reskill_gym.redaction import redact

        path = self.folder / name
        try:
            atomic_write_text(path, redact(text))
        except OSError as e:
            if not self._warned:
                log.warning("creator artifacts: cannot write %s (%s); skipping", path, e)
                self._warned = True
            return None
        self.written.append(name)
        return path

    def json(self, name: str, obj: Any) -> Path | None:
        return self.text(name, json.dumps(obj, indent=2, ensure_ascii=False, default=_default))

    def messages(self, name: str, messages: Sequence[Mapping[str, Any]]) -> Path | None:
        """A chat prompt as Markdown: one ``## <role>`` section per message."""
        body = "\n\n".join(f"## {m['role']}\n\n{m['content']}" for m in messages)
        return self.text(name, body + "\n")
