"""``ReSkill-Search-v0``: search-augmented question answering with Search-R1 actions.

Exports ``SearchEnv``, ``DEFAULT_MAX_TURNS``, ``DEFAULT_TOP_K`` and ``DATASET_CHOICES``.

One episode is one question. The agent replies with text; the first ``<search>q</search>``
or ``<answer>a</answer>`` block in the reply is the action (reasoning such as
``<think>...</think>`` around it is ignored, as in Search-R1's rollout loop):

* ``<search>q</search>`` returns the top-``top_k`` passages as
  ``<information>Doc 1(Title: "...") text\\nDoc 2(...)...</information>`` (Search-R1 adds
  blank lines around the block; trainers that want that add them);
* ``<answer>a</answer>`` ends the episode with reward = normalised exact match against any
  gold alias (``info["em"]``, ``info["f1"]``);
* anything else is an invalid action: a feedback message, ``info["invalid_action"] = True``,
  and the turn counts.

``max_turns`` defaults to 5: up to four searches and the answer (the published runs allow
four retrieval rounds). Running out of turns truncates the episode with reward 0.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from pathlib import Path
from typing import Any

from reskill_gym.envs.base import SPLITS, EngineCrashedError, EngineStep, TextEnv
from reskill_gym.envs.search.corpus import Corpus, format_information, load_corpus_jsonl
from reskill_gym.envs.search.qa import best_scores, parse_search_tags
from reskill_gym.envs.search.qa_data import (
    DATASET_ALIASES,
    SEEN_DATASETS,
    UNSEEN_DATASETS,
    QAExample,
    load_benchmark,
)
from reskill_gym.envs.search.retrievers import Retriever, RetrieverError, make_retriever
from reskill_gym.envs.search.synthetic import SyntheticConfig, load_or_generate

__all__ = ["SearchEnv", "DEFAULT_MAX_TURNS", "DEFAULT_TOP_K", "DATASET_CHOICES"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TURNS = 5
DEFAULT_TOP_K = 3
DATASET_CHOICES: tuple[str, ...] = ("synthetic", "benchmark", *SEEN_DATASETS, *UNSEEN_DATASETS)

_INSTRUCTIONS = (
    "Answer the given question. You may reason before acting. If you lack knowledge, call the "
    "search engine by writing <search> query </search>; the top results come back between "
    "<information> and </information>. You can search up to {searches} times. When you know "
    "the answer, write it between <answer> and </answer> without explanation, for example "
    "<answer> Paris </answer>.\nQuestion: {question}"
)
_INVALID = (
    "Your previous action is invalid ({reason}). To search, put the query between <search> and "
    "</search>. To give the final answer, put it between <answer> and </answer>. Try again."
)
_LAST_TURN = "\nOne turn left: give your final answer between <answer> and </answer>."


class SearchEnv(TextEnv):
    """Question answering over a corpus through a retriever (Search-R1 action format).

    The default is fully offline: the synthetic knowledge base (generated on first use into
    ``$RESKILL_CACHE``) and an embedded BM25 index.

    >>> import tempfile
    >>> env = SearchEnv(split="seen", cache_dir=tempfile.mkdtemp())
    >>> obs, info = env.reset(seed=0)
    >>> info["split"], info["task"] in obs
    ('seen', True)
    >>> obs, reward, terminated, truncated, info = env.step("<answer>I do not know</answer>")
    >>> reward, terminated, info["em"]
    (0.0, True, 0.0)
    """

    env_name = "search"

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = DEFAULT_MAX_TURNS,
        top_k: int = DEFAULT_TOP_K,
        retriever: str | Retriever = "bm25",
        retriever_kwargs: dict[str, Any] | None = None,
        dataset: str = "synthetic",
        data_dir: str | os.PathLike[str] | None = None,
        corpus_path: str | os.PathLike[str] | None = None,
        kb_config: SyntheticConfig | dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        instructions: bool = True,
        max_action_chars: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            max_action_chars=max_action_chars,
            render_mode=render_mode,
        )
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        dataset = DATASET_ALIASES.get(dataset.lower(), dataset.lower())
        if dataset not in DATASET_CHOICES:
            raise ValueError(f"dataset must be one of {DATASET_CHOICES}, got {dataset!r}")
        if dataset != "synthetic" and data_dir is None:
            raise ValueError(
                f"dataset={dataset!r} needs data_dir= (a folder of FlashRAG/Search-R1 files)"
            )
        if isinstance(kb_config, dict):
            kb_config = SyntheticConfig(**kb_config)
        self.top_k = top_k
        self.dataset = dataset
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.corpus_path = Path(corpus_path) if corpus_path is not None else None
        self.kb_config = kb_config or SyntheticConfig()
        self.cache_dir = cache_dir
        self.instructions = instructions
        self._retriever_spec = retriever
        self._retriever_kwargs = dict(retriever_kwargs or {})
        # Loaded on first use, so gym.make (and AsyncVectorEnv's dummy env) stays cheap.
        self._retriever: Retriever | None = None
        self._corpus: Corpus | None = None
        self._examples: dict[str, list[QAExample]] = {}
        self._by_id: dict[str, QAExample] = {}
        self._current: QAExample | None = None
        self._searches = 0

    # ----- data --------------------------------------------------------------------------
    def _load_split(self, split: str) -> list[QAExample]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split in self._examples:
            return self._examples[split]
        if self.dataset == "synthetic":
            kb = load_or_generate(self.kb_config, self.cache_dir)
            self._corpus = kb.corpus
            self._examples.update(kb.examples)
            self._by_id.update(kb.example_index())
            return self._examples[split]
        else:
            assert self.data_dir is not None
            only = None if self.dataset == "benchmark" else [self.dataset]
            wanted = SEEN_DATASETS if split in ("train", "seen") else UNSEEN_DATASETS
            if only is not None and only[0] not in wanted:
                self._examples[split] = []
            else:
                loaded = load_benchmark(self.data_dir, split, datasets=only)
                # Dataset ids repeat across benchmarks ("test_0"): prefix the source.
                self._examples[split] = [
                    dataclasses.replace(ex, id=f"{ex.data_source}/{ex.id}", split=split)
                    for ex in loaded
                ]
        for ex in self._examples[split]:
            self._by_id[ex.id] = ex
        return self._examples[split]

    def task_ids(self, split: str | None = None) -> list[str]:
        return [ex.id for ex in self._load_split(split or self.split)]

    def example(self, task_id: str) -> QAExample:
        """The question record behind ``task_id`` (searched in this env's splits)."""
        if task_id not in self._by_id:
            for split in SPLITS:
                try:
                    self._load_split(split)
                except FileNotFoundError:
                    continue
        if task_id not in self._by_id:
            close = difflib.get_close_matches(task_id, list(self._by_id), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise KeyError(f"search: unknown task_id {task_id!r}{hint}")
        return self._by_id[task_id]

    def data_source_of(self, task_id: str) -> str:
        """The benchmark a question comes from (``nq``, ``hotpotqa``, ...; ``synthetic``)."""
        return self.example(task_id).data_source

    @property
    def current_example(self) -> QAExample | None:
        """The question of the running episode (its gold answers and hop queries included)."""
        return self._current

    @property
    def retriever(self) -> Retriever:
        """The retriever, built (or loaded from the on-disk cache) on first access."""
        if self._retriever is None:
            corpus = self._corpus
            if corpus is None and self.dataset == "synthetic":
                self._load_split(self.split)
                corpus = self._corpus
            if (
                corpus is None
                and self.corpus_path is not None
                and self._retriever_spec in ("bm25", "dense")
            ):
                corpus = self._corpus = load_corpus_jsonl(self.corpus_path)
            self._retriever = make_retriever(
                self._retriever_spec, corpus, cache_dir=self.cache_dir, **self._retriever_kwargs
            )
        return self._retriever

    # ----- engine hooks ------------------------------------------------------------------
    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if options:
            logger.warning("search: ignoring unsupported reset options %s", sorted(options))
        ex = self.example(task_id)
        _ = self.retriever  # build before the first step so step latency stays flat
        self._current = ex
        self._searches = 0
        if self.instructions:
            obs = _INSTRUCTIONS.format(searches=max(self.max_turns - 1, 0), question=ex.question)
        else:
            obs = ex.question
        return obs, {"task": ex.question, "task_type": ex.task_type, "data_source": ex.data_source}

    def _engine_step(self, action: str) -> EngineStep:
        ex = self._current
        assert ex is not None
        parsed = parse_search_tags(action)
        turns_used = self._turn + 1
        last_hint = _LAST_TURN if turns_used == self.max_turns - 1 else ""
        if parsed.kind == "search":
            try:
                passages = self.retriever.search(parsed.content, self.top_k)
            except RetrieverError as exc:
                raise EngineCrashedError(f"search: retriever failed: {exc}") from exc
            self._searches += 1
            body = format_information(passages) if passages else "No results found for this query."
            return EngineStep(
                observation=f"<information>{body}</information>{last_hint}",
                reward=0.0,
                done=False,
                won=False,
                extra={
                    "action_type": "search",
                    "query": parsed.content,
                    "retrieved_ids": [p.id for p in passages],
                    "num_searches": self._searches,
                    "em": 0.0,
                    "f1": 0.0,
                },
            )
        if parsed.kind == "answer":
            em, f1 = best_scores(parsed.content, ex.answers)
            return EngineStep(
                observation=f"Final answer submitted: {parsed.content}",
                reward=em,
                done=True,
                won=em == 1.0,
                extra={
                    "action_type": "answer",
                    "answer": parsed.content,
                    "gold_answers": list(ex.answers),
                    "num_searches": self._searches,
                    "em": em,
                    "f1": f1,
                },
            )
        return EngineStep(
            observation=_INVALID.format(reason=parsed.reason) + last_hint,
            reward=0.0,
            done=False,
            won=False,
            invalid_action=True,
            extra={"action_type": "invalid", "num_searches": self._searches, "em": 0.0, "f1": 0.0},
        )
