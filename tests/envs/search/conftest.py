"""Shared fixtures for the search env tests: one synthetic KB + BM25 index per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reskill_gym.envs.search.synthetic import KnowledgeBase, load_or_generate


@pytest.fixture(scope="session")
def search_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the default synthetic KB and its BM25 index (built once)."""
    from reskill_gym.envs.search.retrievers import BM25Retriever

    root = tmp_path_factory.mktemp("reskill-cache")
    kb = load_or_generate(cache_dir=root)
    BM25Retriever(kb.corpus, cache_dir=root)
    return root


@pytest.fixture(scope="session")
def search_kb(search_cache: Path) -> KnowledgeBase:
    return load_or_generate(cache_dir=search_cache)
