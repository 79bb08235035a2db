"""Retrievers behind one small protocol: ``search(query, k) -> list[Passage]``.

Exports ``Retriever``, ``RetrieverError``, ``BM25Retriever``, ``DenseRetriever``,
``PyseriniRetriever``, ``HttpRetriever``, ``RETRIEVER_NAMES`` and ``make_retriever``.

* ``BM25Retriever`` (default): ``bm25s`` + PyStemmer, in process. The index is built once per
  corpus (keyed by the corpus fingerprint and BM25 parameters) and cached on disk, so vector
  env workers and later runs load it instead of rebuilding.
* ``DenseRetriever``: sentence-transformers embeddings (default ``intfloat/e5-base-v2``, the
  Search-R1 retriever) with a faiss inner-product index, or exact numpy search when faiss is
  absent. Optional extra ``search-dense``; imported lazily.
* ``PyseriniRetriever``: a user's prebuilt Lucene index (the published system's BM25 stack).
  Optional extra ``search-lucene``; needs Java 21.
* ``HttpRetriever``: a client for a Search-R1 ``retrieval_server.py`` (``POST /retrieve`` with
  ``{"queries", "topk", "return_scores"}``), so the full Wikipedia index can live on another
  machine. Standard library only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from filelock import FileLock

from reskill_gym.atomic import atomic_path
from reskill_gym.envs.search.corpus import Corpus, Passage, default_cache_dir

__all__ = [
    "Retriever",
    "RetrieverError",
    "BM25Retriever",
    "DenseRetriever",
    "PyseriniRetriever",
    "HttpRetriever",
    "RETRIEVER_NAMES",
    "make_retriever",
]

logger = logging.getLogger(__name__)

RETRIEVER_NAMES: tuple[str, ...] = ("bm25", "dense", "pyserini", "http")


@runtime_checkable
class Retriever(Protocol):
    """Anything with ``search(query, k)`` returning passages best first."""

    def search(self, query: str, k: int) -> list[Passage]: ...


class RetrieverError(RuntimeError):
    """The retriever could not answer (server down, malformed response, missing index)."""


def _as_corpus(passages: Corpus | Sequence[Passage]) -> Corpus:
    return passages if isinstance(passages, Corpus) else Corpus(passages)


def _index_dir(cache_dir: str | os.PathLike[str] | None, kind: str, key: str) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "search" / kind / key


class BM25Retriever:
    """Okapi BM25 over a corpus with English stemming and stopwords, cached on disk.

    >>> from reskill_gym.envs.search.corpus import Passage
    >>> docs = [Passage("0", "Velm River", "The Velm River flows through Orvan."),
    ...         Passage("1", "Orvan", "Orvan is a city founded in 1204.")]
    >>> r = BM25Retriever(docs, cache_dir=None, use_cache=False)
    >>> [p.id for p in r.search("When was Orvan founded?", k=1)]
    ['1']
    """

    name = "bm25"

    def __init__(
        self,
        corpus: Corpus | Sequence[Passage],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        k1: float = 1.5,
        b: float = 0.75,
        language: str = "english",
    ) -> None:
        import bm25s
        import Stemmer

        self.corpus = _as_corpus(corpus)
        if len(self.corpus) == 0:
            raise ValueError("BM25Retriever needs a non-empty corpus")
        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer(language)
        self._stopwords = "en" if language == "english" else None
        self.k1, self.b = k1, b
        self.loaded_from_cache = False
        start = time.perf_counter()
        if use_cache:
            key = f"{self.corpus.fingerprint}-k1_{k1}-b_{b}-{language}-bm25s{bm25s.__version__}"
            self.index_dir: Path | None = _index_dir(cache_dir, "bm25", key)
            self._model = self._load_or_build(self.index_dir)
        else:
            self.index_dir = None
            self._model = self._build()
        self.build_seconds = time.perf_counter() - start

    def _tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(
            texts, stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False
        )

    def _build(self) -> Any:
        model = self._bm25s.BM25(k1=self.k1, b=self.b)
        model.index(self._tokenize([p.contents for p in self.corpus]), show_progress=False)
        return model

    def _load_or_build(self, folder: Path) -> Any:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if (folder / "params.index.json").is_file():
                try:
                    model = self._bm25s.BM25.load(str(folder), show_progress=False)
                    self.loaded_from_cache = True
                    return model
                except (OSError, ValueError, KeyError) as exc:
                    logger.warning("BM25 index %s unreadable (%s); rebuilding", folder, exc)
                    shutil.rmtree(folder, ignore_errors=True)
            model = self._build()
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
            try:
                model.save(str(tmp), show_progress=False)
                if folder.exists():
                    shutil.rmtree(folder)
                os.rename(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            logger.info("built BM25 index over %d passages at %s", len(self.corpus), folder)
            return model

    def search(self, query: str, k: int) -> list[Passage]:
        return self.batch_search([query], k)[0]

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Top-``k`` per query; passages with zero score (no shared term) are dropped."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, len(self.corpus))
        docs, scores = self._model.retrieve(
            self._tokenize(list(queries)), k=k, show_progress=False, n_threads=1
        )
        out: list[list[Passage]] = []
        for row_docs, row_scores in zip(docs, scores):
            out.append(
                [
                    self.corpus[int(d)].with_score(float(s))
                    for d, s in zip(row_docs, row_scores)
                    if float(s) > 0.0
                ]
            )
        return out


class DenseRetriever:
    """Embedding retrieval: inner product over normalised vectors (faiss when installed).

    ``encoder`` maps a list of texts to a 2-D float array; by default a sentence-transformers
    model (``pip install 'reskill-gym[search-dense]'``), loaded lazily, with the E5 prefixes.
    Passage embeddings are cached on disk per corpus and ``encoder_name``.
    """

    name = "dense"

    def __init__(
        self,
        corpus: Corpus | Sequence[Passage],
        *,
        model: str = "intfloat/e5-base-v2",
        encoder: Callable[[list[str]], np.ndarray] | None = None,
        encoder_name: str | None = None,
        query_prefix: str = "query: ",
        passage_prefix: str = "passage: ",
        batch_size: int = 64,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        use_faiss: bool | None = None,
    ) -> None:
        self.corpus = _as_corpus(corpus)
        if len(self.corpus) == 0:
            raise ValueError("DenseRetriever needs a non-empty corpus")
        if encoder is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError(
                    "the dense retriever needs sentence-transformers (and optionally faiss): "
                    "pip install 'reskill-gym[search-dense]', or pass encoder=..."
                ) from exc
            st_model = SentenceTransformer(model, device=device)

            def encoder(texts: list[str]) -> np.ndarray:
                return st_model.encode(texts, batch_size=batch_size, convert_to_numpy=True)

            encoder_name = encoder_name or model
        self._encode = encoder
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.encoder_name = encoder_name
        cache_file: Path | None = None
        if use_cache and encoder_name:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder_name)
            cache_file = _index_dir(cache_dir, "dense", f"{self.corpus.fingerprint}-{slug}.npy")
        self._matrix = self._embeddings(cache_file)
        self._faiss_index = None
        if use_faiss is not False:
            try:
                import faiss
            except ImportError:
                if use_faiss:
                    raise ImportError(
                        "use_faiss=True but faiss is not installed: pip install faiss-cpu"
                    ) from None
            else:
                self._faiss_index = faiss.IndexFlatIP(self._matrix.shape[1])
                self._faiss_index.add(self._matrix)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vecs = np.asarray(self._encode(texts), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise RetrieverError(f"encoder returned shape {vecs.shape} for {len(texts)} texts")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def _embeddings(self, cache_file: Path | None) -> np.ndarray:
        if cache_file is not None and cache_file.is_file():
            matrix = np.load(cache_file)
            if matrix.shape[0] == len(self.corpus):
                return matrix
        matrix = self._embed([self.passage_prefix + p.contents for p in self.corpus])
        if cache_file is not None:
            with atomic_path(cache_file, suffix=".npy") as tmp:
                np.save(tmp, matrix)
        return matrix

    def search(self, query: str, k: int) -> list[Passage]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, len(self.corpus))
        q = self._embed([self.query_prefix + query])
        if self._faiss_index is not None:
            scores, idx = self._faiss_index.search(q, k)
            pairs = list(zip(idx[0].tolist(), scores[0].tolist()))
        else:
            sims = self._matrix @ q[0]
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top], kind="stable")]
            pairs = [(int(i), float(sims[i])) for i in top]
        return [self.corpus[i].with_score(s) for i, s in pairs if i >= 0]


class PyseriniRetriever:
    """BM25 over a prebuilt Lucene index (Search-R1's ``wiki-18`` BM25 index, for instance).

    Stored documents are expected to hold the wiki-18 JSON (``{"id", "contents"}``) in their
    raw field, as Search-R1's indexing script writes them; plain-text raw fields also work.
    """

    name = "pyserini"

    def __init__(
        self, index_dir: str | os.PathLike[str], *, k1: float | None = None, b: float | None = None
    ) -> None:
        path = Path(index_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"Lucene index folder not found: {path}")
        try:
            from pyserini.search.lucene import LuceneSearcher
        except ImportError as exc:
            raise ImportError(
                "the pyserini retriever needs pyserini and a Java 21 runtime: "
                "pip install 'reskill-gym[search-lucene]'"
            ) from exc
        self._searcher = LuceneSearcher(str(path))
        if k1 is not None and b is not None:
            self._searcher.set_bm25(k1, b)

    def search(self, query: str, k: int) -> list[Passage]:
        out = []
        for hit in self._searcher.search(query, k=k):
            doc = self._searcher.doc(hit.docid)
            raw = doc.raw() if doc is not None else ""
            try:
                data = json.loads(raw)
                contents = (
                    data.get("contents") or f'"{data.get("title", "")}"\n{data.get("text", "")}'
                )
            except (json.JSONDecodeError, AttributeError):
                contents = raw or (doc.contents() if doc is not None else "")
            out.append(Passage.from_contents(str(hit.docid), contents, float(hit.score)))
        return out


class HttpRetriever:
    """Client for a Search-R1-style retrieval server (``POST {url}`` JSON, batch API).

    Request ``{"queries": [...], "topk": k, "return_scores": true}``; response
    ``{"result": [[{"document": {"id", "contents"}, "score": s}, ...], ...]}`` (one list per
    query; bare documents are accepted when the server ignores ``return_scores``).

    >>> HttpRetriever("http://127.0.0.1:8000/retrieve").url
    'http://127.0.0.1:8000/retrieve'
    """

    name = "http"

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000/retrieve",
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"retriever url must start with http:// or https://, got {url!r}")
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff

    def search(self, query: str, k: int) -> list[Passage]:
        return self.batch_search([query], k)[0]

    def batch_search(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        body = json.dumps(
            {"queries": list(queries), "topk": int(k), "return_scores": True}
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # a client error will not fix itself
                    raise RetrieverError(
                        f"retrieval server {self.url} answered HTTP {exc.code}"
                    ) from exc
                last = exc
            except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
                last = exc
            if attempt < self.retries:
                time.sleep(self.backoff * (2**attempt))
        else:
            raise RetrieverError(
                f"retrieval server {self.url} failed after {self.retries + 1} tries: {last}"
            ) from last
        return self._parse(payload, len(queries))

    def _parse(self, payload: Any, n: int) -> list[list[Passage]]:
        result = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(result, list) or len(result) != n:
            raise RetrieverError(
                f"retrieval server {self.url}: expected {{'result': [...]}} with {n} lists, got "
                f"{str(payload)[:200]}"
            )
        out = []
        for qi, items in enumerate(result):
            passages = []
            for di, item in enumerate(items or []):
                if not isinstance(item, dict):
                    raise RetrieverError(
                        f"retrieval server {self.url}: result[{qi}][{di}] is not an object"
                    )
                doc = item.get("document", item)
                score = item.get("score") if "document" in item else None
                if not isinstance(doc, dict):
                    raise RetrieverError(
                        f"retrieval server {self.url}: result[{qi}][{di}].document is not an object"
                    )
                pid = str(doc.get("id", f"{qi}-{di}"))
                if "contents" in doc:
                    passages.append(Passage.from_contents(pid, str(doc["contents"]), _float(score)))
                elif "text" in doc:
                    passages.append(
                        Passage(pid, str(doc.get("title", "")), str(doc["text"]), _float(score))
                    )
                else:
                    raise RetrieverError(
                        f"retrieval server {self.url}: result[{qi}][{di}] has no 'contents' or 'text'"
                    )
            out.append(passages)
        return out


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def make_retriever(
    spec: str | Retriever,
    corpus: Corpus | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Retriever:
    """Build a retriever from a name (``bm25``, ``dense``, ``pyserini``, ``http``), a URL, or
    return a ready object unchanged. ``kwargs`` go to the retriever's constructor.

    >>> make_retriever("http://localhost:8000/retrieve").name
    'http'
    """
    if not isinstance(spec, str):
        if not callable(getattr(spec, "search", None)):
            raise TypeError(
                f"retriever object must have a search(query, k) method, got {type(spec).__name__}"
            )
        return spec
    if spec.startswith(("http://", "https://")):
        return HttpRetriever(spec, **kwargs)
    if spec == "http":
        return HttpRetriever(**kwargs)
    if spec == "pyserini":
        if "index_dir" not in kwargs:
            raise ValueError(
                "retriever='pyserini' needs retriever_kwargs={'index_dir': <Lucene index folder>}"
            )
        return PyseriniRetriever(**kwargs)
    if spec in ("bm25", "dense"):
        if corpus is None:
            raise ValueError(
                f"retriever={spec!r} needs a corpus (dataset='synthetic' or corpus_path=...)"
            )
        cls = BM25Retriever if spec == "bm25" else DenseRetriever
        return cls(corpus, cache_dir=cache_dir, **kwargs)
    raise ValueError(
        f"unknown retriever {spec!r}; expected one of {RETRIEVER_NAMES}, a URL, or an object"
    )
