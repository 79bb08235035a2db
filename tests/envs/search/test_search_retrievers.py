"""Retrievers: BM25 caching, the Search-R1 HTTP wire protocol on loopback, dense, pyserini."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from reskill_gym.envs.base import EngineCrashedError
from reskill_gym.envs.search import (
    BM25Retriever,
    DenseRetriever,
    HttpRetriever,
    Passage,
    PyseriniRetriever,
    RetrieverError,
    SearchEnv,
    make_retriever,
)
from reskill_gym.envs.search.synthetic import (
    KnowledgeBase,
    SyntheticConfig,
    generate_knowledge_base,
)

SMALL = SyntheticConfig(seed=5, n_countries=4, n_cities=16, n_rivers=8, n_mountains=8,
                        n_universities=6, n_companies=12, n_people=30, n_books=12)  # fmt: skip


# ----- BM25 ---------------------------------------------------------------------------------
def test_bm25_index_cached_on_disk(tmp_path: Path) -> None:
    kb = generate_knowledge_base(SMALL)
    first = BM25Retriever(kb.corpus, cache_dir=tmp_path)
    second = BM25Retriever(kb.corpus, cache_dir=tmp_path)
    assert not first.loaded_from_cache and second.loaded_from_cache
    assert first.index_dir == second.index_dir and first.index_dir.is_dir()
    q = kb.examples["train"][0].hop_queries[0]
    assert [p.id for p in first.search(q, 3)] == [p.id for p in second.search(q, 3)]
    # A different corpus gets a different index.
    other = BM25Retriever(list(kb.corpus)[:-1], cache_dir=tmp_path)
    assert other.index_dir != first.index_dir and not other.loaded_from_cache


def test_bm25_rebuilds_a_corrupt_cache(tmp_path: Path) -> None:
    kb = generate_knowledge_base(SMALL)
    first = BM25Retriever(kb.corpus, cache_dir=tmp_path)
    (first.index_dir / "params.index.json").write_text("{not json")
    again = BM25Retriever(kb.corpus, cache_dir=tmp_path)
    assert not again.loaded_from_cache and again.search("river", 2)


def test_bm25_ranking_scores_and_k() -> None:
    docs = [
        Passage("a", "Orvan", "Orvan is a city on the Velm River."),
        Passage("b", "Velm River", "The Velm River is long. The Velm River floods."),
        Passage("c", "Tarsk", "Tarsk is a mountain."),
    ]
    r = BM25Retriever(docs, use_cache=False)
    hits = r.search("Velm River", 10)
    assert [p.id for p in hits] == ["b", "a"]  # "c" shares no term: dropped, k clamped
    assert hits[0].score > hits[1].score > 0
    assert r.batch_search(["Tarsk", "Orvan"], 1) == [
        [r.search("Tarsk", 1)[0]],
        [r.search("Orvan", 1)[0]],
    ]
    with pytest.raises(ValueError):
        r.search("x", 0)
    with pytest.raises(ValueError, match="non-empty"):
        BM25Retriever([], use_cache=False)


def test_make_retriever_dispatch(tmp_path: Path) -> None:
    kb = generate_knowledge_base(SMALL)
    assert isinstance(make_retriever("bm25", kb.corpus, cache_dir=tmp_path), BM25Retriever)
    assert isinstance(make_retriever("https://x.example/retrieve"), HttpRetriever)
    with pytest.raises(ValueError, match="needs a corpus"):
        make_retriever("bm25")
    with pytest.raises(ValueError, match="index_dir"):
        make_retriever("pyserini")
    with pytest.raises(TypeError, match="search"):
        make_retriever(object())  # type: ignore[arg-type]


# ----- HTTP (Search-R1 retrieval_server wire format) ------------------------------------------
class _Server:
    """A stdlib server speaking Search-R1's /retrieve protocol, backed by real BM25."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.retriever = BM25Retriever(kb.corpus, use_cache=False)
        self.requests: list[dict] = []
        self.fail_next = 0  # answer HTTP 500 this many times first
        self.malformed = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if self.path != "/retrieve":
                    return self._send(404, {"detail": "Not Found"})
                if outer.fail_next:
                    outer.fail_next -= 1
                    return self._send(500, {"detail": "boom"})
                if outer.malformed:
                    return self._send(200, {"results": []})
                results = outer.retriever.batch_search(body["queries"], body.get("topk") or 3)
                if body.get("return_scores"):
                    resp = [
                        [
                            {"document": {"id": p.id, "contents": p.contents}, "score": p.score}
                            for p in row
                        ]
                        for row in results
                    ]
                else:
                    resp = [[{"id": p.id, "contents": p.contents} for p in row] for row in results]
                self._send(200, {"result": resp})

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/retrieve"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(search_kb: KnowledgeBase) -> Iterator[_Server]:
    s = _Server(search_kb)
    yield s
    s.close()


def test_http_retriever_matches_local_bm25(server: _Server, search_kb: KnowledgeBase) -> None:
    client = HttpRetriever(server.url)
    ex = search_kb.examples["seen"][0]
    got = client.batch_search(list(ex.hop_queries), 3)
    want = [server.retriever.search(q, 3) for q in ex.hop_queries]
    assert [[p.id for p in row] for row in got] == [[p.id for p in row] for row in want]
    assert got[0][0].title == want[0][0].title and got[0][0].score == pytest.approx(
        want[0][0].score
    )
    assert server.requests[-1] == {
        "queries": list(ex.hop_queries),
        "topk": 3,
        "return_scores": True,
    }


def test_env_over_http_wins(server: _Server, search_cache: Path) -> None:
    env = SearchEnv(split="unseen", cache_dir=search_cache, retriever=server.url)
    obs, _ = env.reset(seed=4)
    ex = env.current_example
    for q, gold in zip(ex.hop_queries, ex.gold_passage_ids):
        obs, *_, info = env.step(f"<search>{q}</search>")
        assert gold in info["retrieved_ids"]
    assert env.step(f"<answer>{ex.answers[0]}</answer>")[1] == 1.0


def test_http_retries_server_errors(server: _Server) -> None:
    server.fail_next = 2
    client = HttpRetriever(server.url, retries=2, backoff=0.01)
    assert client.search("river", 2)
    assert len(server.requests) == 3
    server.fail_next = 5
    with pytest.raises(RetrieverError, match="failed after 2 tries"):
        HttpRetriever(server.url, retries=1, backoff=0.01).search("river", 2)


def test_http_client_errors_and_malformed(server: _Server) -> None:
    with pytest.raises(RetrieverError, match="HTTP 404"):
        HttpRetriever(server.url.replace("/retrieve", "/nope")).search("x", 1)
    server.malformed = True
    with pytest.raises(RetrieverError, match="expected"):
        HttpRetriever(server.url).search("x", 1)
    with pytest.raises(ValueError, match="http"):
        HttpRetriever("ftp://host/retrieve")


def test_http_parses_bare_documents_and_title_text() -> None:
    client = HttpRetriever("http://127.0.0.1:9/retrieve")
    rows = client._parse(
        {"result": [[{"id": "1", "contents": '"T"\nbody'}, {"title": "U", "text": "more"}]]}, 1
    )
    assert [(p.id, p.title, p.text, p.score) for p in rows[0]] == [
        ("1", "T", "body", None),
        ("0-1", "U", "more", None),
    ]


def test_dead_server_raises_engine_crash_and_env_recovers(
    search_cache: Path, search_kb: KnowledgeBase
) -> None:
    probe = _Server(search_kb)
    url = probe.url
    probe.close()  # nothing listens on this port any more
    env = SearchEnv(
        cache_dir=search_cache,
        retriever="http",
        retriever_kwargs={"url": url, "retries": 0, "timeout": 2},
    )
    env.reset(seed=0)
    with pytest.raises(EngineCrashedError, match="retriever failed"):
        env.step("<search>Velm</search>")
    obs, info = env.reset(seed=0)  # a fresh episode works; answering needs no retrieval
    assert env.step(f"<answer>{env.current_example.answers[0]}</answer>")[1] == 1.0


# ----- dense ----------------------------------------------------------------------------------
def _hashing_encoder(texts: list[str]) -> np.ndarray:
    """Bag of hashed word features: a genuine (if weak) sparse-to-dense text embedding."""
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace('"', " ").split():
            if w in {"query:", "passage:", "the", "a", "is", "in", "of"}:
                continue
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 512] += 1.0
    return out


def test_dense_retriever_numpy_backend(tmp_path: Path) -> None:
    kb = generate_knowledge_base(SMALL)
    r = DenseRetriever(
        kb.corpus,
        encoder=_hashing_encoder,
        encoder_name="hash512",
        cache_dir=tmp_path,
        use_faiss=False,
    )
    ex = next(e for e in kb.examples["train"] if e.task_type == "single_author")
    hits = r.search(ex.hop_queries[0], 3)
    assert ex.gold_passage_ids[0] in [p.id for p in hits]
    assert hits[0].score >= hits[-1].score
    assert list(tmp_path.rglob("*.npy"))  # embeddings cached per corpus + encoder


def test_dense_retriever_faiss_matches_numpy() -> None:
    pytest.importorskip("faiss", reason="faiss not installed (extra: search-dense)")
    kb = generate_knowledge_base(SMALL)
    a = DenseRetriever(kb.corpus, encoder=_hashing_encoder, use_cache=False, use_faiss=True)
    b = DenseRetriever(kb.corpus, encoder=_hashing_encoder, use_cache=False, use_faiss=False)
    q = kb.examples["train"][3].hop_queries[0]
    assert [p.score for p in a.search(q, 3)] == pytest.approx(
        [p.score for p in b.search(q, 3)], abs=1e-5
    )


@pytest.mark.network
def test_dense_retriever_sentence_transformers() -> None:
    pytest.importorskip(
        "sentence_transformers", reason="sentence-transformers not installed (extra: search-dense)"
    )
    kb = generate_knowledge_base(SMALL)
    r = DenseRetriever(kb.corpus, model="intfloat/e5-small-v2", use_cache=False)
    ex = next(e for e in kb.examples["train"] if e.task_type == "single_author")
    assert ex.gold_passage_ids[0] in [p.id for p in r.search(ex.question, 5)]


def test_dense_retriever_without_extra_says_how_to_install() -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="search-dense"):
            DenseRetriever([Passage("0", "t", "x")])
    else:
        pytest.skip("sentence-transformers is installed")


# ----- pyserini -------------------------------------------------------------------------------
def test_pyserini_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Lucene index"):
        PyseriniRetriever(tmp_path / "nope")


def test_pyserini_retriever_on_a_built_index(tmp_path: Path) -> None:
    pytest.importorskip(
        "pyserini.search.lucene",
        reason="pyserini not installed (extra: search-lucene; pyserini 1.x needs Java 21, 2.x Python >= 3.12)",
    )
    import subprocess
    import sys

    kb = generate_knowledge_base(SMALL)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"id": p.id, "contents": p.contents}) for p in kb.corpus)
    )
    index = tmp_path / "index"
    subprocess.run(
        [sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection", "--input", str(docs),
         "--index", str(index), "--generator", "DefaultLuceneDocumentGenerator", "--threads", "1", "--storeRaw"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    r = PyseriniRetriever(index)
    ex = next(e for e in kb.examples["train"] if e.task_type == "single_author")
    hits = r.search(ex.hop_queries[0], 3)
    assert ex.gold_passage_ids[0] in [p.id for p in hits] and hits[0].title
