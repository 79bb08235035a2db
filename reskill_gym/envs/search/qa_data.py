"""Question-answering examples and loaders for the real benchmark files.

Exports ``QAExample``, ``SEEN_DATASETS``, ``UNSEEN_DATASETS``, ``DATASET_ALIASES``,
``load_qa_file``, ``write_qa_jsonl``, ``find_dataset_file`` and ``load_benchmark``.

Two layouts are read, because those are what users download:

* FlashRAG jsonl (``RUC-NLPIR/FlashRAG_datasets``): ``{"id", "question", "golden_answers",
  "metadata"}`` per line, one folder per dataset (``nq/test.jsonl``, ``hotpotqa/dev.jsonl``).
* Search-R1 parquet (``nq_search``, ``nq_hotpotqa_train``): rows with ``question``,
  ``golden_answers`` and/or ``reward_model.ground_truth.target``, and a ``data_source`` column;
  either per dataset (``nq/test.parquet``) or merged (``train.parquet``, ``test.parquet``).

Splits follow the ReSkill / Search-R1 protocol: NQ and HotpotQA are the in-domain (``train``
and ``seen``) sets, PopQA, TriviaQA, 2WikiMultiHopQA, MuSiQue and Bamboogle the out-of-domain
(``unseen``) ones. Evaluation files are preferred in the order ``test``, ``dev`` — which picks
exactly the files Search-R1 reports on (NQ/TriviaQA/PopQA/Bamboogle test, the rest dev).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text
from reskill_gym.envs.search.corpus import CorpusFormatError

__all__ = [
    "QAExample",
    "SEEN_DATASETS",
    "UNSEEN_DATASETS",
    "DATASET_ALIASES",
    "load_qa_file",
    "write_qa_jsonl",
    "find_dataset_file",
    "load_benchmark",
]

SEEN_DATASETS: tuple[str, ...] = ("nq", "hotpotqa")
UNSEEN_DATASETS: tuple[str, ...] = ("popqa", "triviaqa", "2wikimultihopqa", "musique", "bamboogle")
DATASET_ALIASES: dict[str, str] = {
    "natural_questions": "nq",
    "hotpot": "hotpotqa",
    "hotpot_qa": "hotpotqa",
    "trivia_qa": "triviaqa",
    "tqa": "triviaqa",
    "2wiki": "2wikimultihopqa",
    "2wikimqa": "2wikimultihopqa",
    "wiki2": "2wikimultihopqa",
    "pop_qa": "popqa",
}
logger = logging.getLogger(__name__)
_SUFFIXES = (".jsonl", ".parquet", ".json")
_EVAL_SPLITS = ("test", "dev", "validation", "val")


@dataclass(frozen=True)
class QAExample:
    """One question with its gold answer aliases.

    ``gold_passage_ids``/``hop_queries`` are filled for the synthetic knowledge base (they
    name the evidence and the entity to search per hop); real datasets leave them empty.

    >>> ex = QAExample("q1", "Who founded Tarsk Mills?", ("Velm Orro",), "single_founder")
    >>> QAExample.from_record(ex.to_record()) == ex
    True
    """

    id: str
    question: str
    answers: tuple[str, ...]
    task_type: str
    data_source: str = "synthetic"
    split: str = ""
    gold_passage_ids: tuple[str, ...] = ()
    hop_queries: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_record(self) -> dict[str, Any]:
        """The FlashRAG jsonl record (our extras live under ``metadata``)."""
        return {
            "id": self.id,
            "question": self.question,
            "golden_answers": list(self.answers),
            "metadata": {
                **dict(self.metadata),
                "task_type": self.task_type,
                "data_source": self.data_source,
                "split": self.split,
                "gold_passage_ids": list(self.gold_passage_ids),
                "hop_queries": list(self.hop_queries),
            },
        }

    @classmethod
    def from_record(
        cls, row: Mapping[str, Any], *, where: str = "<record>", data_source: str | None = None
    ) -> QAExample:
        """Build from a FlashRAG or Search-R1 row; ``where`` names the file/row in errors."""
        question = row.get("question")
        if question is None:
            question = _question_from_prompt(row.get("prompt"))
        if not isinstance(question, str) or not question.strip():
            raise CorpusFormatError(f"{where}: missing or empty 'question'")
        answers = _answers_of(row, where)
        meta = row.get("metadata") if isinstance(row.get("metadata"), Mapping) else {}
        meta = dict(meta or {})
        source = str(
            meta.pop("data_source", None) or row.get("data_source") or data_source or "unknown"
        )
        source = DATASET_ALIASES.get(source.lower(), source.lower())
        rid = row.get("id", row.get("_id"))
        if rid is None and isinstance(row.get("extra_info"), Mapping):
            rid = row["extra_info"].get("index")
        if rid is None:
            raise CorpusFormatError(f"{where}: missing 'id'")
        return cls(
            id=str(rid),
            question=" ".join(question.split()),
            answers=answers,
            task_type=str(meta.pop("task_type", None) or source),
            data_source=source,
            split=str(meta.pop("split", "") or ""),
            gold_passage_ids=tuple(str(x) for x in meta.pop("gold_passage_ids", ()) or ()),
            hop_queries=tuple(str(x) for x in meta.pop("hop_queries", ()) or ()),
            metadata=meta,
        )


def _question_from_prompt(prompt: Any) -> str | None:
    """A Search-R1 row without a ``question`` column: the text after the prompt's last
    ``Question:`` (the chat prompt ends with ``Question: {question}``)."""
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    if not isinstance(prompt, list) or not prompt or not isinstance(prompt[-1], Mapping):
        return None
    content = str(prompt[-1].get("content", ""))
    if "Question:" not in content:
        return None
    return content.rsplit("Question:", 1)[1].strip() or None


def _as_str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):  # PopQA stores possible_answers as a JSON string
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return [value]
            return _as_str_list(parsed)
        return [value]
    if hasattr(value, "tolist"):  # numpy arrays from parquet readers
        value = value.tolist()
    if isinstance(value, Iterable):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _answers_of(row: Mapping[str, Any], where: str) -> tuple[str, ...]:
    for key in ("golden_answers", "answers", "answer", "possible_answers"):
        if key in row and row[key] is not None:
            found = _as_str_list(row[key])
            if found:
                return tuple(found)
    reward = row.get("reward_model")
    if isinstance(reward, Mapping):
        truth = reward.get("ground_truth")
        if isinstance(truth, Mapping):
            found = _as_str_list(truth.get("target"))
            if found:
                return tuple(found)
    raise CorpusFormatError(
        f"{where}: no gold answers (looked for 'golden_answers', 'answers', 'answer', "
        "'possible_answers', 'reward_model.ground_truth.target')"
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - pyarrow ships with the search extra
            raise ImportError(
                f"reading {path} needs pyarrow: pip install 'reskill-gym[search]'"
            ) from exc
        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        try:
            data = json.loads(safe_files.read_text(path, follow_links=True))
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise CorpusFormatError(f"{path}: expected a JSON list of question objects")
        return data
    rows = []
    with safe_files.open_text(path, follow_links=True) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CorpusFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def load_qa_file(
    path: str | os.PathLike[str],
    *,
    data_source: str | None = None,
    split: str = "",
    limit: int | None = None,
) -> list[QAExample]:
    """Load questions from a FlashRAG ``.jsonl``/``.json`` or Search-R1 ``.parquet`` file.

    ``data_source`` defaults to the row's own ``data_source`` column, then the folder name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    if path.suffix not in _SUFFIXES:
        raise CorpusFormatError(f"{path}: unsupported suffix (expected one of {_SUFFIXES})")
    default_source = data_source or path.parent.name
    out: list[QAExample] = []
    for i, row in enumerate(_read_rows(path)):
        if not isinstance(row, Mapping):
            raise CorpusFormatError(f"{path}: row {i} is not an object")
        if "id" not in row and "_id" not in row:
            row = {**row, "id": f"{path.stem}_{i}"}
        ex = QAExample.from_record(row, where=f"{path} row {i}", data_source=default_source)
        if split and not ex.split:
            ex = dataclasses.replace(ex, split=split)
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    return out


def write_qa_jsonl(path: str | os.PathLike[str], examples: Iterable[QAExample]) -> None:
    """Write examples in the FlashRAG jsonl layout, atomically."""
    lines = [json.dumps(ex.to_record(), ensure_ascii=False) for ex in examples]
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))


def find_dataset_file(
    data_dir: str | os.PathLike[str], name: str, splits: Sequence[str]
) -> Path | None:
    """First existing ``<dir>/<name>/<split>.<ext>`` or ``<dir>/<name>_<split>.<ext>``."""
    root = Path(data_dir)
    for split in splits:
        for suffix in _SUFFIXES:
            for candidate in (root / name / f"{split}{suffix}", root / f"{name}_{split}{suffix}"):
                if candidate.is_file():
                    return candidate
    return None


def load_benchmark(
    data_dir: str | os.PathLike[str],
    split: str,
    *,
    datasets: Sequence[str] | None = None,
    limit_per_dataset: int | None = None,
) -> list[QAExample]:
    """Questions of one ReSkill split from a folder of downloaded benchmark files.

    ``train``: the ``train`` files of NQ and HotpotQA. ``seen``: their ``test``/``dev`` files.
    ``unseen``: the ``test``/``dev`` files of PopQA, TriviaQA, 2Wiki, MuSiQue and Bamboogle.
    A merged Search-R1 ``train.parquet``/``test.parquet`` (with a ``data_source`` column) is
    used when no per-dataset file exists. ``datasets`` narrows the list.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir is not a folder: {root}")
    if split not in ("train", "seen", "unseen"):
        raise ValueError(f"split must be train/seen/unseen, got {split!r}")
    names = SEEN_DATASETS if split in ("train", "seen") else UNSEEN_DATASETS
    if datasets is not None:
        wanted = {DATASET_ALIASES.get(d.lower(), d.lower()) for d in datasets}
        names = tuple(n for n in names if n in wanted)
    file_splits: tuple[str, ...] = ("train",) if split == "train" else _EVAL_SPLITS
    examples: list[QAExample] = []
    from_merged: list[str] = []
    for name in names:
        path = find_dataset_file(root, name, file_splits)
        if path is None:
            from_merged.append(name)
            continue
        examples.extend(load_qa_file(path, data_source=name, split=split, limit=limit_per_dataset))
    missing = [n for n in names if n not in from_merged and not _has(examples, n)]
    if from_merged:
        found, absent = _from_merged_files(root, file_splits, split, from_merged, limit_per_dataset)
        examples.extend(found)
        missing += absent
    if not examples:
        raise FileNotFoundError(
            f"no {split!r} questions under {root}: expected e.g. {root}/{names[0]}/"
            f"{file_splits[0]}.jsonl (FlashRAG) or {root}/{file_splits[0]}.parquet (Search-R1) "
            f"for datasets {list(names)}"
        )
    if missing:
        logger.info("split %s: no files for %s under %s", split, missing, root)
    return examples


def _has(examples: Sequence[QAExample], source: str) -> bool:
    return any(e.data_source == source for e in examples)


def _from_merged_files(
    root: Path, file_splits: Sequence[str], split: str, names: Sequence[str], limit: int | None
) -> tuple[list[QAExample], list[str]]:
    """Questions of ``names`` from merged Search-R1 files (``<split>.parquet`` with a
    ``data_source`` column), in the file's own row order: a seeded shuffle of them (``reskill
    verl prepare --shuffle-seed``) then picks the same questions as the published data script,
    which shuffles the merged file. Each name comes from the first such file (``file_splits``
    order) that has it. Returns the questions and the names no file had."""
    wanted = list(names)
    out: list[QAExample] = []
    for merged_split in file_splits:
        files = [root / f"{merged_split}{sfx}" for sfx in _SUFFIXES]
        cand = next((f for f in files if f.is_file()), None)
        if cand is None or not wanted:
            continue
        rows = load_qa_file(cand, data_source="unknown", split=split)
        present = {e.data_source for e in rows} & set(wanted)
        taken: dict[str, int] = {}
        for e in rows:
            if e.data_source in present and (limit is None or taken.get(e.data_source, 0) < limit):
                out.append(e)
                taken[e.data_source] = taken.get(e.data_source, 0) + 1
        wanted = [n for n in wanted if n not in present]
    return out, wanted
