"""``reskill verl policy``: a veRL FSDP actor checkpoint becomes the policy folder that
``reskill train`` writes, through veRL's own model merger on CPU.

The checkpoint is one the test writes in veRL's layout (``model_world_size_1_rank_0.pt`` of
the actor's state dict, ``fsdp_config.json``, ``huggingface/``, ``lora_train_meta.json``):
a tiny model, full and LoRA. veRL's merger saves bf16, so the folder's log-probs are those of
the checkpoint's weights rounded to bf16 (max abs difference <= 1e-4 on a fixed prompt).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.verl

pytest.importorskip("verl")
torch = pytest.importorskip("torch")

from reskill_gym.cli import app  # noqa: E402
from reskill_gym.policy_folder import read_manifest  # noqa: E402

PROMPT = "<|im_start|> user task go to 1 take 2 <|im_end|> <|im_start|> assistant look"


def _write_checkpoint(root: Path, model, tok, lora_meta: dict | None = None) -> Path:
    actor = root / "global_step_3" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    torch.save(dict(model.state_dict()), actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = copy.deepcopy(base.config)
    config.architectures = [type(base).__name__]  # as a loaded model's config says
    config.save_pretrained(actor / "huggingface")
    tok.save_pretrained(actor / "huggingface")
    if lora_meta is not None:
        (actor / "lora_train_meta.json").write_text(json.dumps(lora_meta))
    return actor


def _bf16(model, only: str = ""):
    """``model`` with its weights (those whose name holds ``only``) rounded to bf16."""
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in rounded.named_parameters():
            if only in name:
                p.copy_(p.to(torch.bfloat16).float())
    return rounded.eval()


def _logprobs(model, tok) -> torch.Tensor:
    ids = torch.tensor([tok(PROMPT)["input_ids"]])
    with torch.no_grad():
        return torch.log_softmax(model(ids).logits.float(), -1)[0]


def test_full_checkpoint_becomes_a_policy_folder(tiny_chat_model, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny_chat_model()
    actor = _write_checkpoint(tmp_path / "ckpt", model, tok)
    out = tmp_path / "policy"
    result = CliRunner().invoke(app, ["verl", "policy", str(actor), str(out)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.kind == "full" and manifest.steps_done == 3
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tok2 = AutoTokenizer.from_pretrained(out)
    assert tok2.chat_template == tok.chat_template
    diff = (_logprobs(loaded, tok2) - _logprobs(_bf16(model), tok)).abs().max()
    assert diff <= 1e-4

    # the local: agent loads it like a local run's policy
    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend

    backend = LocalBackend(LLMConfig(backend="local", model=str(out)))
    assert backend.stop_token_id == tok.convert_tokens_to_ids("<|im_end|>")


def test_lora_checkpoint_becomes_an_adapter_over_its_base(tiny_chat_model, tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base, tok = tiny_chat_model()
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    lora = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    with torch.no_grad():  # a trained adapter: B is no longer zero
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    actor = _write_checkpoint(
        tmp_path / "ckpt", lora, tok, {"r": 4, "lora_alpha": 8, "task_type": "CAUSAL_LM"}
    )
    out = tmp_path / "policy"
    result = CliRunner().invoke(
        app, ["verl", "policy", str(actor), str(out), "--base", str(base_dir)]
    )
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "model.safetensors" not in names
    assert read_manifest(out).kind == "lora" and read_manifest(out).base == str(base_dir)
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(base_dir) and cfg["r"] == 4
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out)
    # the base is the user's own (fp32 here); the adapter went through the merger's bf16
    diff = (_logprobs(loaded.eval(), tok) - _logprobs(_bf16(lora, "lora_"), tok)).abs().max()
    assert diff <= 1e-4


def test_not_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["verl", "policy", str(tmp_path), str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "not a veRL FSDP actor checkpoint" in result.output
