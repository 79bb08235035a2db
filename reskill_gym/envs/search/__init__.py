"""Search-augmented QA environment (``ReSkill-Search-v0``) with its data and retrievers.

Exports ``SearchEnv``, ``Passage``, ``Corpus``, ``QAExample``, ``Retriever``,
``BM25Retriever``, ``DenseRetriever``, ``PyseriniRetriever``, ``HttpRetriever``,
``RetrieverError``, ``make_retriever``, ``SyntheticConfig``, ``KnowledgeBase``,
``generate_knowledge_base``, ``load_or_generate``, ``load_qa_file``, ``load_benchmark``,
``load_corpus_jsonl``, ``normalize_answer``, ``exact_match``, ``f1_score`` and
``parse_search_tags``.

Nothing heavy is imported here: ``bm25s``/PyStemmer load when a BM25 index is built,
sentence-transformers/faiss and pyserini only when those retrievers are asked for.
"""

from __future__ import annotations

from reskill_gym.envs.search.corpus import Corpus, Passage, load_corpus_jsonl
from reskill_gym.envs.search.env import SearchEnv
from reskill_gym.envs.search.qa import exact_match, f1_score, normalize_answer, parse_search_tags
from reskill_gym.envs.search.qa_data import QAExample, load_benchmark, load_qa_file
from reskill_gym.envs.search.retrievers import (
    BM25Retriever,
    DenseRetriever,
    HttpRetriever,
    PyseriniRetriever,
    Retriever,
    RetrieverError,
    make_retriever,
)
from reskill_gym.envs.search.synthetic import (
    KnowledgeBase,
    SyntheticConfig,
    generate_knowledge_base,
    load_or_generate,
)

__all__ = [
    "SearchEnv",
    "Passage",
    "Corpus",
    "QAExample",
    "Retriever",
    "BM25Retriever",
    "DenseRetriever",
    "PyseriniRetriever",
    "HttpRetriever",
    "RetrieverError",
    "make_retriever",
    "SyntheticConfig",
    "KnowledgeBase",
    "generate_knowledge_base",
    "load_or_generate",
    "load_qa_file",
    "load_benchmark",
    "load_corpus_jsonl",
    "normalize_answer",
    "exact_match",
    "f1_score",
    "parse_search_tags",
]
