"""``reskill verl prepare|train``, the dataset rows veRL reads, our Hydra configs, the plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.verl

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ("alfworld", "scienceworld", "search")


def test_verl_cli_import_stays_light():
    code = (
        "import sys, reskill_gym.cli\n"
        "heavy = [m for m in ('verl', 'ray', 'torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_verl_cli_train_dry_run_passes_hydra_overrides():
    from reskill_gym.cli import app

    result = CliRunner().invoke(
        app,
        [
            "verl",
            "train",
            "--config-name",
            "search",
            "--dry-run",
            "--cfg",
            "job",
            "data.train_batch_size=4",
        ],
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1].split()
    assert line[1:3] == ["-m", "verl.trainer.main_ppo"]
    assert line[line.index("--config-path") + 1] == str(ROOT / "configs" / "verl")
    assert line[-3:] == ["--cfg", "job", "data.train_batch_size=4"]


def test_verl_prepare_rows_load_in_rlhf_dataset(tmp_path, smollm_dir):
    pytest.importorskip("verl")
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from reskill_gym.cli import app

    out = tmp_path / "alfworld"
    result = CliRunner().invoke(
        app,
        [
            "verl", "prepare", "--env", "alfworld", "--out", str(out),
            "--env-arg", "difficulty=tiny", "--env-arg", "source=generated",
            "--limit-val", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["env_kwargs"] == {"difficulty": "tiny", "source": "generated"}
    assert manifest["counts"]["val"] == 4  # 2 seen + 2 unseen
    train = pq.read_table(out / "train.parquet").to_pylist()
    assert len(train) == manifest["counts"]["train"] > 0
    assert [r["extra_info"]["index"] for r in train] == list(range(len(train)))
    assert all(
        r["extra_info"]["split"] == "train" and r["agent_name"] == "reskill_env" for r in train
    )
    val = pq.read_table(out / "val.parquet").to_pylist()
    assert [r["extra_info"]["split"] for r in val] == ["seen", "seen", "unseen", "unseen"]
    assert len({r["extra_info"]["index"] for r in val}) == 4

    # veRL's own dataset class reads the files and hands the agent loop what it needs
    tok = AutoTokenizer.from_pretrained(smollm_dir)
    data_cfg = OmegaConf.create(
        {"prompt_key": "prompt", "max_prompt_length": 512, "filter_overlong_prompts": True,
         "truncation": "error", "return_raw_chat": True}
    )  # fmt: skip
    ds = RLHFDataset(str(out / "train.parquet"), tok, data_cfg)
    item = ds[1]
    assert item["raw_prompt"][0]["role"] == "system"
    from reskill_gym.rollout import default_system_prompt

    assert item["raw_prompt"][0]["content"] == default_system_prompt("alfworld", "tagged")
    assert item["index"] == 1 and item["agent_name"] == "reskill_env"
    assert item["extra_info"]["task_id"] == train[1]["extra_info"]["task_id"]


def test_verl_prepare_search_and_scienceworld(tmp_path):
    from reskill_verl.prepare import prepare_dataset

    s = prepare_dataset(
        "search",
        tmp_path / "s",
        env_kwargs={"cache_dir": str(tmp_path / "c")},
        limit_train=5,
        limit_val=3,
    )
    assert s.counts == {"train": 5, "val": 6}
    w = prepare_dataset(
        "scienceworld", tmp_path / "w", val_splits=["seen"], limit_train=3, limit_val=2
    )
    assert w.counts == {"train": 3, "val": 2}
    with pytest.raises(ValueError, match="unknown env"):
        prepare_dataset("minigrid", tmp_path / "x")


@pytest.mark.parametrize("name", CONFIGS)
def test_verl_configs_compose_on_verl_and_validate(name, smollm_dir):
    pytest.importorskip("verl")
    from hydra import compose, initialize_config_dir
    from reskill_verl.config import ReskillVerlConfig
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        cfg = compose(config_name=name, overrides=[f"actor_rollout_ref.model.path={smollm_dir}"])
    validate_config(
        cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )
    r = cfg.actor_rollout_ref
    search = name == "search"
    # the published defaults
    assert cfg.algorithm.adv_estimator == "grpo"
    assert r.rollout.n == (5 if search else 8)
    assert r.actor.optim.lr == 1e-6
    assert r.actor.use_kl_loss and r.actor.kl_loss_type == "low_var_kl"
    assert r.actor.kl_loss_coef == (0.001 if search else 0.01)
    assert r.rollout.agent.default_agent_loop == "reskill_env" and r.rollout.name == "vllm"
    assert cfg.trainer.use_v1 and cfg.trainer.v1.trainer_mode == "reskill_sync"
    env_vars = cfg.ray_kwargs.ray_init.runtime_env.env_vars
    assert env_vars.VERL_USE_EXTERNAL_MODULES == "reskill_verl.plugin"
    settings = ReskillVerlConfig.from_trainer_config(cfg)
    assert settings.env == name
    turn = settings.rollout.resolve(name)
    assert turn.invalid_action_penalty == 0.1 and settings.grpo_double_normalize
    if search:  # concat (see the comment in search.yaml), the env parses its own tags
        assert turn.layout == "concat" and turn.action_format == "passthrough"
    else:  # the published per_turn layout: history 50 (ALFWorld) / 30 (ScienceWorld)
        turns = 50 if name == "alfworld" else 30
        assert turn.layout == "per_turn" and turn.action_format == "tagged"
        assert turn.history_turns == turns == settings.max_turns
        assert settings.env_kwargs["max_turns"] == turns
        assert r.rollout.multi_turn.max_assistant_turns == turns
        # one turn per sample: a prompt and one reply; 8 x n = 64 turn rows per update
        assert (r.rollout.prompt_length, r.rollout.response_length) == (
            (4096, 512) if name == "alfworld" else (6000, 1024)
        )
        assert r.actor.ppo_mini_batch_size * r.rollout.n == 64
        assert settings.max_tokens_per_turn == r.rollout.response_length
    core = settings.coevolution.coevolution_config("ckpt")  # the core config validates too
    assert core.tester.min_steps == 5 and core.tester.min_episodes == 50
    assert core.creator.max_skill_content_chars == 500 and core.creator.n_groups == 30
    assert settings.max_active_skills == 8


def test_verl_config_rejects_unknown_keys():
    from pydantic import ValidationError
    from reskill_verl.config import ReskillVerlConfig

    with pytest.raises(ValidationError, match="max_turn"):
        ReskillVerlConfig.from_trainer_config({"reskill": {"max_turn": 3}})
    with pytest.raises(ValidationError, match="min_step"):
        ReskillVerlConfig.model_validate(
            {"coevolution": {"config": {"tester": {"min_step": 1}}}}
        ).coevolution.coevolution_config(None)


def test_verl_plugin_registers_on_import_verl():
    """The route every Ray worker takes: ``import verl`` imports our plugin (env var)."""
    code = (
        "import verl\n"
        "from verl.experimental.agent_loop.agent_loop import _agent_loop_registry\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "assert _agent_loop_registry['reskill_env']['_target_'] == "
        "'reskill_verl.agent_loop.ReskillEnvAgentLoop'\n"
        "assert get_trainer_cls('reskill_sync').__name__ == 'ReskillTrainer'\n"
    )
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "reskill_verl.plugin"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=300)


RUNTIME_ENV_CHECK = """
import os
os.environ["RAY_AUTH_MODE"] = "disabled"
import ray
ray.init(num_cpus=1, include_dashboard=False,
         runtime_env={"env_vars": {"VERL_USE_EXTERNAL_MODULES": "reskill_verl.plugin"}})

@ray.remote
def check():
    import verl  # what every veRL worker does when it unpickles its class
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    from verl.trainer.ppo.v1 import get_trainer_cls
    return "reskill_env" in _agent_loop_registry, get_trainer_cls("reskill_sync").__name__

assert ray.get(check.remote()) == (True, "ReskillTrainer")
ray.shutdown()
"""


@pytest.mark.slow
def test_verl_plugin_reaches_ray_workers_through_runtime_env():
    """Our configs put the plugin in the job's runtime_env: a fresh Ray worker registers us."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "VERL_USE_EXTERNAL_MODULES")
    }
    subprocess.run(
        [sys.executable, "-c", RUNTIME_ENV_CHECK], check=True, cwd=ROOT, env=env, timeout=300
    )
