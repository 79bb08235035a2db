"""``reskill verl preflight``: the memory plan per GPU and the checks on a node."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.verl

pytest.importorskip("verl")

from reskill_gym.cli import app  # noqa: E402

QWEN3_4B = Path(__file__).parent / "models" / "qwen3-4b-instruct-2507"
"""Qwen/Qwen3-4B-Instruct-2507's config.json (no weights): the model every config names."""

HARDWARE = {  # the hardware each config documents: (config, nodes x GPUs)
    "alfworld": 8,
    "scienceworld": 8,
    "search": 8,
    "published/alfworld": 16,
    "published/scienceworld": 16,
    "published/search": 8,
}


def preflight(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verl", "preflight", *args])
    return result.exit_code, result.output


def suggested(output: str) -> list[str]:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("overrides that would fit"):
            return lines[i + 1].split()
    return []


@pytest.mark.parametrize("name", sorted(HARDWARE))
def test_verl_preflight_every_config_fits_its_documented_hardware(name):
    """Published presets on 2x8 (search 1x8) and the project configs on 1x8 80 GB GPUs."""
    code, out = preflight(
        "--config-name", name, "--memory-only", "--gpu-gib", "79.6", "--model-config", str(QWEN3_4B)
    )
    assert code == 0, out
    assert f"({HARDWARE[name]} GPUs, 79.6 GiB each)" in out
    assert re.search(r"^verdict: fits \(peak [\d.]+ of 79.6 GiB\)$", out, re.M), out
    assert "overrides that would fit" not in out, "nothing to change"
    assert "4.02 B parameters, vocab 151,936, 36 layers, 8 KV heads x 128" in out


def test_verl_preflight_finds_the_traps_and_its_overrides_fit():
    """The published ALFWorld preset as first written (vLLM kept during the update, no
    max_model_len), on one node with TP 1: the plan names each problem, and the overrides it
    proposes make the same run fit."""
    trap = [
        "actor_rollout_ref.rollout.free_cache_engine=false",
        "actor_rollout_ref.rollout.max_model_len=null",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.6",
        "trainer.nnodes=1",
    ]
    base = ["--config-name", "published/alfworld", "--memory-only", "--model-config", str(QWEN3_4B)]
    code, out = preflight(*base, *trap)
    assert code == 1, out
    assert "verdict: does not fit" in out
    # the numbers of the review: 32k-token micro-batch logits, a 262,144-token KV sequence
    assert re.search(r"^\s+27\.8  logits of 32,768 tokens", out, re.M), out
    assert "one sequence of 262,144 tokens needing 36.0 GiB" in out
    assert "vLLM kept during the update (free_cache_engine: false)" in out
    fixes = suggested(out)
    assert "actor_rollout_ref.rollout.free_cache_engine=true" in fixes
    assert "actor_rollout_ref.rollout.max_model_len=4608" in fixes
    code, out = preflight(*base, *trap, *fixes)
    assert code == 0 and "verdict: fits" in out, out
    assert "one sequence of 4,608 tokens" in out

    # a budget too big for any GPU is cut to one that fits, never below one sample
    code, out = preflight(
        "--config-name", "alfworld", "--memory-only", "--model-config", str(QWEN3_4B),
        "--gpu-gib", "40", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=65536",
    )  # fmt: skip
    fixes = suggested(out)
    budget = [
        f for f in fixes if f.startswith("actor_rollout_ref.actor.ppo_max_token_len_per_gpu=")
    ]
    assert budget and 4608 <= int(budget[0].split("=")[1]) < 65536, out
    assert "(then: fits" in out


def test_verl_preflight_lora_fits_qwen3_4b_on_one_80gb_gpu_where_full_tuning_does_not():
    """The arithmetic of docs/verl.md: Qwen3-4B, the project ALFWorld config, one GPU."""
    from reskill_verl.preflight import ModelShape

    one = ["--config-name", "alfworld", "--memory-only", "--gpu-gib", "79.6"]
    one += ["--model-config", str(QWEN3_4B), "trainer.n_gpus_per_node=1"]
    code, full = preflight(*one)
    assert code == 1 and "verdict: does not fit (peak 99.6 of 79.6 GiB)" in full, full
    assert re.search(r"^\s+30\.0  Adam moments fp32 \(FSDP shard\)", full, re.M), full
    code, lora = preflight(*one, "+lora=on")
    assert code == 0 and "verdict: fits (peak 65.2 of 79.6 GiB)" in lora, lora
    assert re.search(r"^\s+0\.5  Adam moments fp32 \(LoRA rank 32\)", lora, re.M), lora
    assert "reference weights" not in lora  # the reference is the actor, adapter disabled
    shape = ModelShape.from_config(json.loads((QWEN3_4B / "config.json").read_text()))
    assert shape.lora_params(32) == 32 * 36 * (7 * 2560 + 2 * 4096 + 2 * 1024 + 3 * 9728)


def test_verl_preflight_model_config_lookup(tmp_path, monkeypatch):
    """A local folder, the Hugging Face cache (no download), else one clear error line."""
    from reskill_verl.preflight import find_model_config

    assert find_model_config(str(QWEN3_4B)) == QWEN3_4B / "config.json"
    hub = tmp_path / "hub"
    snap = hub / "models--Qwen--Qwen3-4B-Instruct-2507" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text((QWEN3_4B / "config.json").read_text())
    (hub / "models--Qwen--Qwen3-4B-Instruct-2507" / "refs").mkdir()
    (hub / "models--Qwen--Qwen3-4B-Instruct-2507" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert find_model_config("Qwen/Qwen3-4B-Instruct-2507") == snap / "config.json"
    code, out = preflight(
        "--config-name", "search", "--memory-only",
        "actor_rollout_ref.model.path=nobody/no-such-model",
    )  # fmt: skip
    assert code == 2, out
    assert (
        out.startswith("error: no config.json for actor_rollout_ref.model.path=")
        and out.count("\n") == 1
    ), out
    code, out = preflight("--config-name", "no-such-config", "--memory-only")
    assert code == 2 and out.startswith("error: "), out


def test_verl_preflight_checks_data_env_retriever_and_credentials(tmp_path, monkeypatch):
    """The node checks, here without a Ray cluster: data files, the env reset on the first
    train and val task, a retrieval server that does not answer, the creator's key."""
    from verl_harness import prepare_search

    cache = tmp_path / "cache"
    prepare_search(tmp_path / "data", cache, train=1, val=1)
    common = [
        "--config-name", "search", "--local", "--model-config", str(QWEN3_4B),
        f"data.train_files={tmp_path / 'data' / 'train.parquet'}",
        f"data.val_files={tmp_path / 'data' / 'val.parquet'}",
        f"+reskill.env_kwargs.cache_dir={cache}",
        "trainer.logger=[console]",
    ]  # fmt: skip
    code, out = preflight(*common)
    assert code == 0, out
    checks = [line for line in out.splitlines() if line.startswith("  ok") or "FAIL" in line]
    assert len(checks) == 4 and all(c.startswith("  ok") for c in checks), out
    assert re.search(r"ok    \[.+\] env \(val task\): search task \S+ \(seen\) resets", out), out

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, out = preflight(
        *common,
        f"data.val_files={tmp_path / 'missing.parquet'}",
        "+reskill.env_kwargs.retriever=http://127.0.0.1:9/retrieve",
        "+reskill.env_kwargs.retriever_kwargs={retries: 0, timeout: 2}",
        "reskill.coevolution.config.creator.backend=anthropic:claude-sonnet-4-5",
        "trainer.logger=[console,wandb]",
    )
    assert code == 1, out
    failed = {line.split("] ", 1)[1].split(":")[0] for line in out.splitlines() if "FAIL" in line}
    assert {"val data", "retriever", "creator anthropic"} <= failed, out
    assert "missing.parquet: no such file (run `reskill verl prepare`)" in out
    assert "$ANTHROPIC_API_KEY unset" in out
    assert out.rstrip().endswith("checks failed") or "preflight failed" in out


def test_verl_preflight_runs_the_checks_with_the_jobs_environment(monkeypatch):
    """The credentials `train` would hand the job (Ray's job-level runtime_env) are what the
    checks see; nothing of them enters the Hydra config."""
    from reskill_verl.cli import RAY_JOB_CONFIG_ENV, train_command

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-123")
    monkeypatch.setenv("MY_KEY", "v")
    monkeypatch.delenv(RAY_JOB_CONFIG_ENV, raising=False)
    cmd, env = train_command("alfworld", ["trainer.nnodes=2"], forward=["MY_KEY"])
    job = json.loads(env[RAY_JOB_CONFIG_ENV])
    assert job["runtime_env"]["env_vars"]["ANTHROPIC_API_KEY"] == "sk-test-123"
    assert job["runtime_env"]["env_vars"]["MY_KEY"] == "v"
    assert not any("sk-test-123" in part for part in cmd), "never on the command line"
    assert env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] == "1"
    # a job config already there (ray job submit) keeps its own values
    monkeypatch.setenv(
        RAY_JOB_CONFIG_ENV, json.dumps({"runtime_env": {"env_vars": {"ANTHROPIC_API_KEY": "x"}}})
    )
    _, env = train_command("alfworld")
    assert json.loads(env[RAY_JOB_CONFIG_ENV])["runtime_env"]["env_vars"] == {
        "ANTHROPIC_API_KEY": "x"
    }
