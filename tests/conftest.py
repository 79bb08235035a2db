"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest

WORDS = ["<unk>", "<|im_end|>", "<|im_start|>", "system", "user", "assistant"]
WORDS += "look inventory help go to take from examine put in on 1 2 3 task".split()


def build_tiny_chat_model(arch: str = "llama", **config: object) -> tuple[object, object]:
    """``(lm, tokenizer)``: an untrained one-layer model of ``arch`` (``llama``, or
    ``mistral`` for sliding-window attention) over a word-level ChatML tokenizer."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        PreTrainedTokenizerFast,
    )

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<|im_end|>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
        "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    torch.manual_seed(0)
    cfg_cls, lm_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "mistral": (MistralConfig, MistralForCausalLM),
    }[arch]
    cfg = cfg_cls(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        **config,
    )
    return lm_cls(cfg).eval(), tok


@pytest.fixture(scope="session")
def tiny_chat_model():
    """:func:`build_tiny_chat_model`, for tests that need their own tiny model."""
    return build_tiny_chat_model


@pytest.fixture(scope="session")
def tiny_backend():
    """A real (untrained, tiny) transformers LM with a word-level tokenizer: LocalBackend's
    own log-prob code runs, in a fraction of a second per turn."""
    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend

    lm, tok = build_tiny_chat_model()
    return LocalBackend(LLMConfig(backend="local"), lm=lm, tokenizer=tok)
