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
def tiny_model_dir(tmp_path_factory, tiny_chat_model):
    """:func:`build_tiny_chat_model` saved as a model folder (``trainer.model=<folder>``)."""
    lm, tok = tiny_chat_model()
    out = tmp_path_factory.mktemp("tiny-model")
    lm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_backend():
    """A real (untrained, tiny) transformers LM with a word-level tokenizer: LocalBackend's
    own log-prob code runs, in a fraction of a second per turn."""
    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend

    lm, tok = build_tiny_chat_model()
    return LocalBackend(LLMConfig(backend="local"), lm=lm, tokenizer=tok)


@pytest.fixture(scope="session")
def demo_trained_run(tmp_path_factory, tiny_chat_model):
    """A run folder of ``reskill train --config configs/demo.yaml`` (LoRA), one real ALFWorld
    step with the tiny model in place of SmolLM2: a policy, a library, metrics, checkpoints."""
    pytest.importorskip("alfworld")
    from pathlib import Path

    from typer.testing import CliRunner

    from reskill_gym.cli import app

    repo = Path(__file__).resolve().parents[1]
    lm, tok = tiny_chat_model()
    root = tmp_path_factory.mktemp("train-eval")
    model = root / "tiny-model"
    lm.save_pretrained(model)
    tok.save_pretrained(model)
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(repo / "configs" / "demo.yaml"),
            f"run.out_dir={root}",
            "run.name=demo",
            "run.steps=1",
            "run.report=false",
            f"trainer.model={model}",
            "trainer.device=cpu",
            "trainer.group_size=2",
            "trainer.groups_per_step=1",
            "env.kwargs.max_turns=2",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    run = root / "demo"
    assert (run / "policy" / "adapter_config.json").is_file()  # the demo trains LoRA
    return run
