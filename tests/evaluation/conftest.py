"""Shared fixtures of the evaluation tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_backend():
    """A real (untrained, tiny) transformers LM with a word-level tokenizer: LocalBackend's
    own log-prob code runs, in a fraction of a second per turn."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend

    words = ["<unk>", "<|im_end|>", "<|im_start|>", "system", "user", "assistant"]
    words += "look inventory help go to take from examine put in on 1 2 3 task".split()
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<|im_end|>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
        "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    torch.manual_seed(0)
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(words),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=8192,
        )
    ).eval()
    return LocalBackend(LLMConfig(backend="local"), lm=lm, tokenizer=tok)
