"""The trained policy as a Hugging Face-format folder (``reskill train`` on real ALFWorld).

A tiny one-layer model the test writes (no hub access) is trained for a few real steps; the
run's ``policy/`` and every kept checkpoint's ``policy/`` load with
``AutoModelForCausalLM.from_pretrained`` / ``PeftModel.from_pretrained`` and give the
trainer's in-memory log-probs on a fixed prompt (max abs diff <= 1e-4); the optimizer state
is in the newest checkpoint only; a resume restores the weights and the optimizer exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("alfworld")
torch = pytest.importorskip("torch")

from reskill_local.policy import Policy  # noqa: E402
from reskill_local.train import TrainingRun, latest_checkpoint, load_config  # noqa: E402

from reskill_gym.policy_folder import MANIFEST, read_manifest  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "look inventory help"},
    {"role": "user", "content": "task go to 1 take 2 from 3"},
]
ACTIONS = ["go to 1", "take 2 from 3", "examine 2", "look"]


def _overrides(out: Path, name: str, model: Path, *extra: str) -> list[str]:
    return [
        f"run.out_dir={out}",
        f"run.name={name}",
        "run.steps=3",
        "run.keep_checkpoints=2",
        "run.progress=false",
        "run.report=false",
        "run.record_episodes=false",
        "env.tasks=[tiny/train/0000,tiny/train/0006]",
        "env.kwargs.difficulty=tiny",
        "env.kwargs.max_turns=2",
        "env.max_active_skills=2",
        "rollout.history_turns=0",
        f"trainer.model={model}",
        "trainer.device=cpu",
        "trainer.dtype=float32",
        "trainer.group_size=2",
        "trainer.groups_per_step=2",
        "trainer.kl_coef=0",
        "trainer.learning_rate=0.05",
        # the untrained tiny model never replies a valid action: the penalty on invalid turns
        # is the signal that moves its weights (score mode on ALFWorld would rarely win)
        "rollout.action_mode=generate",
        "rollout.invalid_action_penalty=1.0",
        "trainer.max_new_tokens=3",
        "run.skills_mode=frozen",
        *extra,
    ]


def _logprobs(policy: Policy) -> torch.Tensor:
    prompt = policy.encode_prompt(MESSAGES)
    with torch.no_grad():
        out = policy.logprobs([prompt] * len(ACTIONS), [policy.encode_action(a) for a in ACTIONS])
    return torch.cat(out)


def _as_policy(model, tok, like: Policy) -> Policy:
    model.eval()
    return Policy(model=model, tokenizer=tok, device=like.device, stop_id=like.stop_id)


def _train(tmp_path: Path, name: str, model: Path, *extra: str) -> TrainingRun:
    run = TrainingRun.create(load_config(None, _overrides(tmp_path, name, model, *extra)))
    summary = run.train(progress=False)
    assert summary.steps_done == 3
    return run


def test_full_policy_folder_loads_with_transformers_and_resumes_exactly(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = _train(tmp_path, "full", tiny_model_dir)
    trained = run.trainer.policy
    before = _logprobs(
        _as_policy(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trained.tokenizer, trained)
    )
    now = _logprobs(trained)
    assert (now - before).abs().max() > 1e-3, "training changed nothing; the test cannot tell"

    policy = run.run_dir / "policy"
    names = {p.name for p in policy.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST} <= names
    assert "adapter_config.json" not in names
    manifest = read_manifest(policy)
    assert manifest.kind == "full" and manifest.steps_done == 3
    assert manifest.base == str(tiny_model_dir) and manifest.stop_token == "<|im_end|>"
    tok = AutoTokenizer.from_pretrained(policy)
    assert tok.chat_template == trained.tokenizer.chat_template  # the trained template travels
    loaded = _as_policy(AutoModelForCausalLM.from_pretrained(policy), tok, trained)
    assert loaded.encode_prompt(MESSAGES) == trained.encode_prompt(MESSAGES)
    assert (_logprobs(loaded) - now).abs().max() <= 1e-4

    # kept checkpoints: each a loadable policy; the optimizer state only in the newest
    ckpts = sorted((run.run_dir / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_000002", "step_000003"]
    assert latest_checkpoint(run.run_dir) == ckpts[-1]
    assert (ckpts[-1] / "optimizer.pt").is_file() and not (ckpts[0] / "optimizer.pt").exists()
    for ckpt in ckpts:
        assert read_manifest(ckpt / "policy").steps_done == int(ckpt.name[5:])
        assert (ckpt / "trainer.pt").stat().st_size < 100_000  # no weights in it
    older = _as_policy(AutoModelForCausalLM.from_pretrained(ckpts[0] / "policy"), tok, trained)
    assert (_logprobs(older) - now).abs().max() > 1e-4  # one step fewer
    # the final policy is the newest checkpoint's, hard-linked (no second copy on disk)
    assert (policy / "model.safetensors").stat().st_ino == (
        ckpts[-1] / "policy" / "model.safetensors"
    ).stat().st_ino

    # resume: the weights come back from policy/, the optimizer from optimizer.pt
    opt_state = run.trainer.optimizer.state_dict()
    again = TrainingRun.resume(run.run_dir, ["run.steps=4"])
    assert again.restore() == 3
    assert (_logprobs(again.trainer.policy) - now).abs().max() == 0.0
    restored = again.trainer.optimizer.state_dict()
    for key, st in opt_state["state"].items():
        assert torch.equal(restored["state"][key]["exp_avg"], st["exp_avg"])
    again.train(progress=False)
    assert read_manifest(run.run_dir / "policy").steps_done == 4
    ckpts = sorted((run.run_dir / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_000003", "step_000004"]
    assert [c.name for c in ckpts if (c / "optimizer.pt").exists()] == ["step_000004"]


def test_lora_policy_folder_is_an_adapter_over_its_base(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend

    run = _train(tmp_path, "lora", tiny_model_dir, "trainer.lora_r=4", "trainer.lora_alpha=8")
    trained = run.trainer.policy
    now = _logprobs(trained)
    policy = run.run_dir / "policy"
    names = {p.name for p in policy.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert not {"model.safetensors", "config.json"} & names, "a LoRA run saves the adapter only"
    adapter_cfg = json.loads((policy / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(tiny_model_dir) and adapter_cfg["r"] == 4
    assert read_manifest(policy).kind == "lora"
    size = sum(p.stat().st_size for p in policy.iterdir())
    assert size < (tiny_model_dir / "model.safetensors").stat().st_size

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    loaded = PeftModel.from_pretrained(base, policy)
    tok = AutoTokenizer.from_pretrained(policy)
    assert (_logprobs(_as_policy(loaded, tok, trained)) - now).abs().max() <= 1e-4

    # local:<run folder> evaluates it: the base with the adapter merged
    backend = LocalBackend(LLMConfig(backend="local", model=str(run.run_dir)))
    merged = _as_policy(backend.lm, backend.tokenizer, trained)
    assert (_logprobs(merged) - now).abs().max() <= 1e-4

    # resume restores the adapter exactly
    again = TrainingRun.resume(run.run_dir)
    assert again.restore() == 3
    assert (_logprobs(again.trainer.policy) - now).abs().max() == 0.0
