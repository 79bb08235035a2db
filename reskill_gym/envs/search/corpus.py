"""Passages, corpora and the on-disk cache shared by the search environment.

Exports ``Passage``, ``Corpus``, ``CorpusFormatError``, ``load_corpus_jsonl``,
``write_corpus_jsonl``, ``format_information``, and ``default_cache_dir``.

A passage is stored the way Search-R1's ``wiki-18.jsonl`` stores it: one JSON object per line
with ``id`` and ``contents``, where ``contents`` is ``"Title"\\ntext`` (the title in double
quotes on the first line). Keeping that layout means a user's Wikipedia dump, our synthetic
knowledge base and an HTTP retrieval server all produce the same ``Passage`` objects, and the
agent sees the same ``Doc 1(Title: ...) ...`` rendering Search-R1 models were trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text
from reskill_gym.llm.cache import cache_root

__all__ = [
    "Passage",
    "Corpus",
    "CorpusFormatError",
    "load_corpus_jsonl",
    "write_corpus_jsonl",
    "format_information",
    "default_cache_dir",
]


class CorpusFormatError(ValueError):
    """A corpus or dataset file does not have the expected fields (message names file + line)."""


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of text.

    >>> p = Passage.from_contents("7", '"Velm River"\\nThe Velm River is a river in Orvania.')
    >>> p.title, p.text
    ('Velm River', 'The Velm River is a river in Orvania.')
    >>> p.contents.splitlines()[0]
    '"Velm River"'
    """

    id: str
    title: str
    text: str
    score: float | None = None

    @property
    def contents(self) -> str:
        """The wiki-18 ``contents`` string: quoted title, newline, text."""
        return f'"{self.title}"\n{self.text}'

    @classmethod
    def from_contents(cls, id: str, contents: str, score: float | None = None) -> Passage:
        """Parse a wiki-18 ``contents`` string (first line = title, optionally quoted)."""
        title, _, text = contents.partition("\n")
        title = title.strip()
        if len(title) >= 2 and title[0] == title[-1] == '"':
            title = title[1:-1]
        return cls(id=str(id), title=title, text=text.strip(), score=score)

    def with_score(self, score: float | None) -> Passage:
        return Passage(self.id, self.title, self.text, score)


class Corpus(Sequence[Passage]):
    """An ordered, immutable list of passages with an id lookup and a content fingerprint.

    The fingerprint keys on-disk indexes: a BM25 or dense index built for one corpus is never
    reused for another.

    >>> c = Corpus([Passage("a", "Orvan", "Orvan is a city."), Passage("b", "Velm", "A river.")])
    >>> len(c), c.by_id("b").title
    (2, 'Velm')
    """

    def __init__(self, passages: Iterable[Passage]) -> None:
        self._passages: tuple[Passage, ...] = tuple(passages)
        self._index: dict[str, int] = {}
        for i, p in enumerate(self._passages):
            if p.id in self._index:
                raise CorpusFormatError(f"duplicate passage id {p.id!r}")
            self._index[p.id] = i
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._passages)

    @overload
    def __getitem__(self, i: int) -> Passage: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[Passage, ...]: ...

    def __getitem__(self, i: int | slice) -> Passage | tuple[Passage, ...]:
        return self._passages[i]

    def __iter__(self) -> Iterator[Passage]:
        return iter(self._passages)

    def by_id(self, passage_id: str) -> Passage:
        try:
            return self._passages[self._index[passage_id]]
        except KeyError:
            raise KeyError(f"no passage with id {passage_id!r}") from None

    def position(self, passage_id: str) -> int:
        return self._index[passage_id]

    @property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) over every id and contents, in order."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for p in self._passages:
                h.update(p.id.encode())
                h.update(b"\x00")
                h.update(p.contents.encode())
                h.update(b"\x01")
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


def load_corpus_jsonl(path: str | os.PathLike[str], *, limit: int | None = None) -> Corpus:
    """Load a Search-R1 / FlashRAG corpus file (``{"id", "contents"}`` per line).

    ``{"id", "title", "text"}`` lines (the DPR/FlashRAG split layout) are accepted too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    passages: list[Passage] = []
    with safe_files.open_text(path, follow_links=True) as fh:  # data caches link files
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "id" not in row:
                raise CorpusFormatError(f"{path}:{lineno}: expected an object with an 'id' field")
            if "contents" in row:
                passages.append(Passage.from_contents(str(row["id"]), str(row["contents"])))
            elif "text" in row:
                passages.append(
                    Passage(str(row["id"]), str(row.get("title", "")), str(row["text"]))
                )
            else:
                raise CorpusFormatError(
                    f"{path}:{lineno}: passage {row['id']!r} has neither 'contents' nor 'text'"
                )
            if limit is not None and len(passages) >= limit:
                break
    return Corpus(passages)


def write_corpus_jsonl(path: str | os.PathLike[str], passages: Iterable[Passage]) -> None:
    """Write passages in the wiki-18 layout, atomically."""
    lines = (json.dumps({"id": p.id, "contents": p.contents}, ensure_ascii=False) for p in passages)
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def format_information(passages: Sequence[Passage]) -> str:
    """Render retrieved passages exactly as Search-R1's ``_passages2string`` does.

    >>> print(format_information([Passage("1", "Velm River", "A river.")]))
    Doc 1(Title: "Velm River") A river.
    """
    lines = []
    for i, p in enumerate(passages, 1):
        title, _, text = p.contents.partition("\n")
        lines.append(f"Doc {i}(Title: {title}) {text}")
    return "\n".join(lines)


def default_cache_dir() -> Path:
    """The project's one cache root (:func:`reskill_gym.llm.cache.cache_root`)."""
    return cache_root()
