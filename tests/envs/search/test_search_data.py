"""Synthetic knowledge base generation/caching and loaders for real benchmark files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reskill_gym.envs.search import SearchEnv
from reskill_gym.envs.search.corpus import (
    Corpus,
    CorpusFormatError,
    Passage,
    load_corpus_jsonl,
    write_corpus_jsonl,
)
from reskill_gym.envs.search.qa_data import QAExample, load_benchmark, load_qa_file
from reskill_gym.envs.search.synthetic import (
    SEEN_TEMPLATES,
    UNSEEN_TEMPLATES,
    SyntheticConfig,
    generate_knowledge_base,
    load_or_generate,
)

SMALL = SyntheticConfig(seed=2, n_countries=3, n_cities=12, n_rivers=6, n_mountains=6,
                        n_universities=5, n_companies=12, n_people=24, n_books=10)  # fmt: skip


# ----- synthetic ------------------------------------------------------------------------------
def test_generation_is_deterministic_and_seed_dependent() -> None:
    a, b = generate_knowledge_base(SMALL), generate_knowledge_base(SMALL)
    assert a.corpus.fingerprint == b.corpus.fingerprint and a.examples == b.examples
    c = generate_knowledge_base(SyntheticConfig(**{**SMALL.__dict__, "seed": 3}))
    assert c.corpus.fingerprint != a.corpus.fingerprint


def test_default_kb_size_and_speed(search_kb) -> None:
    start = time.perf_counter()
    kb = generate_knowledge_base()
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0  # ~0.3-0.8 s measured; generous for loaded CI machines
    assert len(kb.corpus) > 3000
    assert {len(kb.examples[s]) > 300 for s in ("train", "seen", "unseen")} == {True}
    assert {e.task_type for e in kb.examples["train"]} == set(SEEN_TEMPLATES)
    assert {e.task_type for e in kb.examples["unseen"]} == set(UNSEEN_TEMPLATES)
    assert kb.corpus.fingerprint == search_kb.corpus.fingerprint  # cache round trip is exact


def test_kb_consistency(search_kb) -> None:
    ids = set()
    for split, items in search_kb.examples.items():
        for ex in items:
            assert (
                ex.id not in ids and ex.split == split and ex.answers and ex.question.endswith("?")
            )
            ids.add(ex.id)
            assert len(ex.gold_passage_ids) == len(ex.hop_queries) >= 1
            for pid in ex.gold_passage_ids:
                search_kb.corpus.by_id(pid)
    titles = [p.title for p in search_kb.corpus]
    assert len(set(titles)) > 0.6 * len(titles)  # people have two passages each
    yes = sum(ex.answers == ("yes",) for ex in search_kb.examples["unseen"])
    no = sum(ex.answers == ("no",) for ex in search_kb.examples["unseen"])
    assert yes and no and abs(yes - no) <= 0.3 * (yes + no)


def test_cache_files_and_reuse(tmp_path: Path) -> None:
    kb = load_or_generate(SMALL, tmp_path)
    folder = next((tmp_path / "search").glob("synthetic-v1-seed2-*"))
    assert {p.name for p in folder.iterdir()} >= {
        "corpus.jsonl",
        "train.jsonl",
        "seen.jsonl",
        "unseen.jsonl",
        "meta.json",
    }
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["fingerprint"] == kb.corpus.fingerprint and meta["passages"] == len(kb.corpus)
    again = load_or_generate(SMALL, tmp_path)
    assert again.examples == kb.examples and again.corpus.fingerprint == kb.corpus.fingerprint
    # A damaged cache is regenerated, not trusted.
    (folder / "corpus.jsonl").write_text('{"id": "0", "contents": "tampered"}\n')
    fixed = load_or_generate(SMALL, tmp_path)
    assert fixed.corpus.fingerprint == kb.corpus.fingerprint


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path / "c"))
    load_or_generate(SMALL)
    assert list((tmp_path / "c" / "search").glob("synthetic-v1-seed2-*/corpus.jsonl"))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="cities"):
        SyntheticConfig(n_countries=10, n_cities=5)
    with pytest.raises(ValueError, match="n_books"):
        SyntheticConfig(n_books=1)


# ----- corpus ---------------------------------------------------------------------------------
def test_wiki18_corpus_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "wiki-18.jsonl"
    path.write_text(
        json.dumps({"id": "1", "contents": '"Orvan"\nOrvan is a city.'}) + "\n\n"
        + json.dumps({"id": "2", "title": "Velm", "text": "A river."}) + "\n"
    )  # fmt: skip
    corpus = load_corpus_jsonl(path)
    assert [(p.id, p.title, p.text) for p in corpus] == [
        ("1", "Orvan", "Orvan is a city."),
        ("2", "Velm", "A river."),
    ]
    out = tmp_path / "out.jsonl"
    write_corpus_jsonl(out, corpus)
    assert load_corpus_jsonl(out).fingerprint == corpus.fingerprint
    assert len(load_corpus_jsonl(path, limit=1)) == 1


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{bad json", r"wiki\.jsonl:1: not valid JSON"),
        ('{"contents": "x"}', "'id'"),
        ('{"id": 1}', "neither"),
    ],
)
def test_corpus_errors_name_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "wiki.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CorpusFormatError, match=match):
        load_corpus_jsonl(path)


def test_corpus_duplicate_ids() -> None:
    with pytest.raises(CorpusFormatError, match="duplicate"):
        Corpus([Passage("1", "a", "b"), Passage("1", "c", "d")])


# ----- benchmark loaders ------------------------------------------------------------------------
def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def _parquet(path: Path, rows: list[dict]) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    # FlashRAG jsonl layout.
    _jsonl(root / "nq" / "train.jsonl", [
        {"id": "train_0", "question": "who founded orvan mills?", "golden_answers": ["Velm Tarsk"], "metadata": {}},
        {"id": "train_1", "question": "where is mount kel?", "golden_answers": ["Tarsia", "Republic of Tarsia"]},
    ])  # fmt: skip
    _jsonl(
        root / "nq" / "test.jsonl",
        [
            {
                "id": "test_0",
                "question": "who wrote the salt harbor?",
                "golden_answers": ["Ira Quell"],
            }
        ],
    )
    _jsonl(
        root / "nq" / "dev.jsonl",
        [{"id": "dev_0", "question": "not preferred", "golden_answers": ["x"]}],
    )
    # PopQA raw style: possible_answers is a JSON string.
    _jsonl(
        root / "popqa" / "test.jsonl",
        [
            {
                "id": 7,
                "question": "What is Orvan's occupation?",
                "possible_answers": '["poet", "writer"]',
            }
        ],
    )
    # Search-R1 parquet, stripped to its verl columns: the question only inside the prompt,
    # the answers only under reward_model.ground_truth.target.
    _parquet(root / "hotpotqa" / "train.parquet", [{
        "id": "h0", "data_source": "hotpotqa", "ability": "fact-reasoning",
        "prompt": [{"role": "user", "content": "Answer... Question: Which river flows through Orvan?\n"}],
        "reward_model": {"style": "rule", "ground_truth": {"target": ["Velm River"]}},
        "extra_info": {"split": "train", "index": 0},
    }])  # fmt: skip
    # Merged Search-R1 test.parquet holding several unseen benchmarks.
    _parquet(root / "test.parquet", [
        {"id": "b1", "question": "Who was born first, Ada or Bo?", "golden_answers": ["Ada"], "data_source": "bamboogle"},
        {"id": "m1", "question": "What is the capital of the country of X?", "golden_answers": ["Y"], "data_source": "musique"},
        {"id": "n1", "question": "ignored here", "golden_answers": ["Z"], "data_source": "nq"},
    ])  # fmt: skip
    return root


def test_load_qa_file_layouts(bench_dir: Path) -> None:
    nq = load_qa_file(bench_dir / "nq" / "train.jsonl")
    assert nq[1].answers == ("Tarsia", "Republic of Tarsia") and nq[1].data_source == "nq"
    pop = load_qa_file(bench_dir / "popqa" / "test.jsonl")
    assert pop[0].answers == ("poet", "writer") and pop[0].id == "7"
    hot = load_qa_file(bench_dir / "hotpotqa" / "train.parquet")
    assert hot[0].answers == ("Velm River",) and hot[0].task_type == "hotpotqa"
    assert hot[0].question == "Which river flows through Orvan?"
    roundtrip = QAExample.from_record(nq[0].to_record())
    assert roundtrip == nq[0]


def test_load_benchmark_splits(bench_dir: Path) -> None:
    train = load_benchmark(bench_dir, "train")
    assert sorted(e.data_source for e in train) == ["hotpotqa", "nq", "nq"]
    seen = load_benchmark(bench_dir, "seen")
    assert [e.id for e in seen] == ["test_0"]  # test preferred over dev; hotpotqa has none
    unseen = load_benchmark(bench_dir, "unseen")
    assert sorted(e.data_source for e in unseen) == ["bamboogle", "musique", "popqa"]
    only = load_benchmark(bench_dir, "unseen", datasets=["Bamboogle"])
    assert [e.id for e in only] == ["b1"]
    with pytest.raises(FileNotFoundError, match="triviaqa"):
        load_benchmark(bench_dir, "unseen", datasets=["triviaqa"])


def test_loader_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "nq" / "test.jsonl"
    _jsonl(bad, [{"id": "1", "question": "q?"}])
    with pytest.raises(CorpusFormatError, match=r"test\.jsonl row 0: no gold answers"):
        load_qa_file(bad)
    _jsonl(bad, [{"id": "1", "golden_answers": ["a"]}])
    with pytest.raises(CorpusFormatError, match="question"):
        load_qa_file(bad)
    bad.write_text("{oops\n")
    with pytest.raises(CorpusFormatError, match=r"test\.jsonl:1"):
        load_qa_file(bad)
    with pytest.raises(FileNotFoundError):
        load_qa_file(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusFormatError, match="suffix"):
        (tmp_path / "x.csv").write_text("a")
        load_qa_file(tmp_path / "x.csv")


def test_env_on_real_layout_with_wiki18_corpus(bench_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "wiki-18.jsonl"
    _jsonl(corpus, [
        {"id": "0", "contents": '"Ada"\nAda was born in 1901 in Orvan.'},
        {"id": "1", "contents": '"Bo"\nBo was born in 1950 in Tarsk.'},
        {"id": "2", "contents": '"X (country)"\nThe capital of X is Y.'},
        {"id": "3", "contents": '"Orvan"\nOrvan has an occupation museum for poets.'},
    ])  # fmt: skip
    env = SearchEnv(
        split="unseen",
        dataset="benchmark",
        data_dir=bench_dir,
        corpus_path=corpus,
        cache_dir=tmp_path,
    )
    ids = env.task_ids()
    assert sorted(ids) == ["bamboogle/b1", "musique/m1", "popqa/7"]
    obs, info = env.reset(options={"task_id": "bamboogle/b1"})
    assert info["task_type"] == "bamboogle" and info["data_source"] == "bamboogle"
    obs, *_, info = env.step("<search>Ada born</search>")
    assert info["retrieved_ids"][0] == "0" and 'Doc 1(Title: "Ada") Ada was born' in obs
    _, reward, terminated, _, info = env.step("<answer>ada</answer>")
    assert reward == 1.0 and terminated
    env.reset(options={"task_id": "bamboogle/b1"})
    assert env.step("<answer>Bo</answer>")[1] == 0.0
    only_nq = SearchEnv(
        split="unseen", dataset="nq", data_dir=bench_dir, corpus_path=corpus, cache_dir=tmp_path
    )
    assert only_nq.task_ids() == [] and only_nq.task_ids("seen") == ["nq/test_0"]
