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


@pytest.mark.parametrize("name", (*CONFIGS, "textworld"))
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
    else:  # the published per_turn layout: history 50 (ALFWorld, TextWorld) / 30 (ScienceWorld)
        turns = 30 if name == "scienceworld" else 50
        assert turn.layout == "per_turn" and turn.action_format == "tagged"
        assert turn.history_turns == turns == settings.max_turns
        assert settings.env_kwargs["max_turns"] == turns
        assert r.rollout.multi_turn.max_assistant_turns == turns
        # one turn per sample: a prompt and one reply; 8 x n = 64 turn rows per update
        assert (r.rollout.prompt_length, r.rollout.response_length) == (
            (6000, 1024) if name == "scienceworld" else (4096, 512)
        )
        assert r.actor.ppo_mini_batch_size * r.rollout.n == 64
        assert settings.max_tokens_per_turn == r.rollout.response_length
    core = settings.coevolution.coevolution_config("ckpt")  # the core config validates too
    assert core.tester.min_steps == 5 and core.tester.min_episodes == 50
    assert core.creator.max_skill_content_chars == 500 and core.creator.n_groups == 30
    assert settings.max_active_skills == 8
    from reskill_gym.skills.bundle import PUBLISHED_TEMPLATE

    assert settings.template == "published" and settings.bundle_template is PUBLISHED_TEMPLATE


@pytest.mark.parametrize("name", CONFIGS)
def test_verl_lora_preset_composes_on_every_config_and_validates(name, smollm_dir):
    """``+lora=on`` on each project config: veRL's LoRA keys set, veRL's own validation
    passes, and veRL would compute the reference with the adapter disabled (no ref model)."""
    pytest.importorskip("verl")
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        plain = compose(config_name=name, overrides=[f"actor_rollout_ref.model.path={smollm_dir}"])
        cfg = compose(
            config_name=name, overrides=[f"actor_rollout_ref.model.path={smollm_dir}", "+lora=on"]
        )
    # veRL's last check, vLLM's allowed LoRA ranks, imports vLLM (not installed without a
    # GPU): validate a copy with lora.merge=true (which skips only that check) and check the
    # rank against vLLM's MaxLoRARanks as veRL's fallback lists them
    checked = cfg.copy()
    checked.actor_rollout_ref.model.lora.merge = True
    validate_config(
        checked, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )
    assert cfg.actor_rollout_ref.model.lora_rank in (1, 8, 16, 32, 64, 128, 256, 320, 512)
    model, rollout = cfg.actor_rollout_ref.model, cfg.actor_rollout_ref.rollout
    assert (model.lora_rank, model.lora_alpha, model.target_modules) == (32, 32, "all-linear")
    assert rollout.load_format == "safetensors" and rollout.layered_summon
    assert cfg.actor_rollout_ref.actor.optim.lr == 1e-5
    # nothing else moves: the preset is LoRA only
    plain.actor_rollout_ref.model.merge_with(
        {"lora_rank": 32, "lora_alpha": 32, "target_modules": "all-linear"}
    )
    plain.actor_rollout_ref.rollout.merge_with(
        {"load_format": "safetensors", "layered_summon": True}
    )
    plain.actor_rollout_ref.actor.optim.lr = 1e-5
    assert plain == cfg


def test_verl_config_template_by_name():
    from pydantic import ValidationError
    from reskill_verl.config import ReskillVerlConfig

    from reskill_gym.skills.bundle import COMPACT_TEMPLATE

    assert ReskillVerlConfig().bundle_template is COMPACT_TEMPLATE
    cfg = ReskillVerlConfig.from_trainer_config(
        {"reskill": {"template": {"base": "published", "show_examples": False}}}
    )
    assert cfg.bundle_template.placeholder and not cfg.bundle_template.show_examples
    with pytest.raises(ValidationError, match=r"reskill\.template.*did you mean 'published'"):
        ReskillVerlConfig.from_trainer_config({"reskill": {"template": "pubished"}})


def test_verl_agent_loop_builds_envs_with_the_template(tmp_path):
    import json

    from reskill_verl.agent_loop import _build_env
    from reskill_verl.config import ReskillVerlConfig

    from reskill_gym.skills import LibraryView

    settings = ReskillVerlConfig.from_trainer_config({"reskill": {"template": "published"}})
    kwargs = json.dumps({"cache_dir": str(tmp_path)})
    env = _build_env(("search", kwargs, 8, 2000, settings.bundle_template))
    try:
        env.set_skills(LibraryView("v0", []))
        _obs, info = env.reset(seed=0)
        assert info["bundle_text"].startswith("## Available Skills\n\n(no skills available)")
    finally:
        env.close()


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
    """The route every Ray worker takes: ``import verl`` imports our plugin (env var). It
    imports nothing of ours there (vLLM's engine workers import veRL too); the agent loop's
    registry entry appears with veRL's agent-loop module, the trainer with veRL's trainer
    package, in either import order."""
    code = (
        "import sys, verl\n"
        "ours = ('reskill_verl.agent_loop', 'reskill_verl.trainer', 'reskill_gym.rollout')\n"
        "assert not [m for m in ours if m in sys.modules], sys.modules.keys()\n"
        "from verl.experimental.agent_loop.agent_loop import _agent_loop_registry\n"
        "assert _agent_loop_registry['reskill_env']['_target_'] == "
        "'reskill_verl.agent_loop.ReskillEnvAgentLoop'\n"
        "assert 'reskill_verl.agent_loop' not in sys.modules, 'Hydra imports it when needed'\n"
        "from reskill_verl.trainer import ReskillTrainer  # before veRL's trainer package\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "assert get_trainer_cls('reskill_sync') is ReskillTrainer\n"
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


def test_verl_frozen_policy_config_skips_update_and_reference(smollm_dir):
    """reskill.update_policy=false (published skip_policy_update): no actor update, no
    reference model, no actor forward for old log-probs; the config still validates. (With
    rollout log-probs the trainer hands them to veRL as old log-probs: test_verl_fit.py.)"""
    pytest.importorskip("verl")
    from hydra import compose, initialize_config_dir
    from reskill_verl.config import ReskillVerlConfig
    from reskill_verl.trainer import FROZEN_WARMUP, ReskillTrainer, freeze_policy_config
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        cfg = compose(
            config_name="alfworld",
            overrides=[f"actor_rollout_ref.model.path={smollm_dir}", "reskill.update_policy=false"],
        )
    assert need_reference_policy(cfg)  # the published KL loss asks for one
    freeze_policy_config(cfg)
    assert not need_reference_policy(cfg) and cfg.trainer.critic_warmup == FROZEN_WARMUP
    validate_config(cfg, use_reference_policy=False, use_critic=need_critic(cfg))
    trainer = object.__new__(ReskillTrainer)  # the method only reads the settings
    trainer.reskill = ReskillVerlConfig.from_trainer_config(cfg)
    trainer.config = cfg
    cfg.actor_rollout_ref.rollout.calculate_log_probs = False
    batch = object()
    assert trainer._compute_old_log_prob(batch, {}) is batch, "nothing to hand over"


# --------------------------------------------------------------------------------------------
# The published runs' presets (configs/verl/published/): composition + validate_config only;
# nothing here runs them (2 x 8 GPUs). Expected values: amazon-science/reskill configs/*.yaml
# and scripts/launch/train_*.sh, as cited in the presets.

BEDROCK_SONNET_4_5 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PUBLISHED = {
    # env: (nnodes, TP, gpu_mem, train/val batch, prompt/response len, n, KL, turns, mini samples)
    "alfworld": (2, 4, 0.35, (16, 64), (4096, 512), 8, 0.01, 50, 64),
    "scienceworld": (2, 4, 0.4, (16, 32), (6000, 1024), 8, 0.01, 30, 64),
    "search": (1, 2, 0.4, (256, 512), (4096, 512), 5, 0.001, 30, 240),
}


def _compose_published(name, smollm_dir, *extra):
    from hydra import compose, initialize_config_dir

    overrides = [f"actor_rollout_ref.model.path={smollm_dir}"]
    if name == "search":  # the preset leaves the benchmark folder to the user
        overrides.append("reskill.env_kwargs.data_dir=/data/search-r1")
    overrides += extra
    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        return compose(config_name=f"published/{name}", overrides=overrides)


@pytest.mark.parametrize("name", CONFIGS)
def test_verl_published_presets_compose_validate_and_match_the_published_runs(
    name, smollm_dir, tmp_path
):
    pytest.importorskip("verl")
    from reskill_verl.coevolution_actor import build_coevolution
    from reskill_verl.config import ReskillVerlConfig, check_trainer_config
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from reskill_gym.creator import CreatorSampling
    from reskill_gym.llm import parse_spec
    from reskill_gym.versioning.config import TesterConfig

    cfg = _compose_published(name, smollm_dir)
    validate_config(
        cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )
    nnodes, tp, mem, batches, lengths, n, kl, turns, mini = PUBLISHED[name]
    r, t = cfg.actor_rollout_ref, cfg.trainer
    assert (t.nnodes, t.n_gpus_per_node) == (nnodes, 8)
    assert (r.rollout.tensor_model_parallel_size, r.rollout.gpu_memory_utilization) == (tp, mem)
    assert (cfg.data.train_batch_size, cfg.data.val_batch_size) == batches
    assert (r.rollout.prompt_length, r.rollout.response_length) == lengths
    assert r.rollout.n == n and r.actor.kl_loss_coef == kl and r.actor.kl_loss_type == "low_var_kl"
    assert r.actor.optim.lr == 1e-6 and r.actor.ppo_epochs == 1
    # mini-batches of turn samples, split evenly over every GPU of the job
    assert r.actor.ppo_mini_batch_size * n == mini and mini % (nnodes * 8) == 0
    assert r.rollout.val_kwargs.temperature == 0 and not r.rollout.val_kwargs.do_sample
    assert r.rollout.multi_turn.max_assistant_turns == turns
    assert t.total_epochs == 300 and t.total_training_steps is None
    settings = ReskillVerlConfig.from_trainer_config(cfg)
    check_trainer_config(cfg, settings)
    turn = settings.rollout.resolve(name)
    assert settings.env == name and settings.max_turns == turns == turn.history_turns
    assert settings.env_kwargs["max_turns"] == turns and turn.layout == "per_turn"
    # the published turn: its prompts (no system message), trimming budget and projections
    from reskill_gym.rollout.published import PUBLISHED_PROMPT_CHAR_RATIO

    assert turn.format == "published" and turn.action_format == "published"
    assert turn.system_prompt == "" and turn.include_skills
    ratio = PUBLISHED_PROMPT_CHAR_RATIO[name]
    assert turn.prompt_chars == int(cfg.data.max_prompt_length * ratio) == int(lengths[0] * ratio)
    assert turn.invalid_action_penalty == 0.1 and settings.grpo_double_normalize
    assert settings.update_policy and settings.skills is None  # an empty starting library
    assert settings.validation == "published"  # a live test's arms split validation too
    assert settings.max_active_skills == 8 and settings.skill_budget_chars is None

    core = settings.coevolution.coevolution_config(str(tmp_path / "ckpt"))
    assert core.async_creator is False  # published: the pass runs inside the step
    assert core.creator.sampling == CreatorSampling.published()
    assert core.creator.assertion_text == "published" and turn.record_prompts
    assert core.reservoir_dedup_by == "task_arm_outcome"
    assert (core.reservoir_size, core.min_reservoir_size) == (200, 100)
    assert core.tester == TesterConfig.published()  # the YAML spells out published()
    creator = core.creator
    assert creator.pipeline == "published" and creator.n_version_history == 5
    assert (creator.n_groups, creator.min_success_ratio, creator.min_trigger_rate) == (30, 0.3, 0.5)
    assert (creator.max_skill_content_chars, creator.max_proposal_retries) == (500, 3)
    assert (creator.analysis_workers, creator.max_library_skills) == (16, 8)
    llm = parse_spec(creator.backend, **creator.llm_options)
    assert (llm.backend, llm.model, llm.aws_region) == ("bedrock", BEDROCK_SONNET_4_5, "us-west-2")
    text = (ROOT / "configs" / "verl" / "published" / f"{name}.yaml").read_text()
    assert "# backend: anthropic:claude-sonnet-4-5" in text
    assert parse_spec("anthropic:claude-sonnet-4-5").model == "claude-sonnet-4-5"

    # the actor's co-evolution starts from an empty library with the published creator
    co = build_coevolution(settings, default_root=tmp_path / "run")
    try:
        assert co.view().names == ()
        assert co.creator is not None and co.creator.backend_name.startswith("bedrock:")
    finally:
        co.close()


def test_verl_published_presets_need_their_data(smollm_dir, monkeypatch):
    """ALFWorld's official games and the search benchmark are asked for, never replaced."""
    pytest.importorskip("verl")
    from reskill_verl.config import ReskillVerlConfig

    from reskill_gym.envs.registration import make_env

    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    alf = ReskillVerlConfig.from_trainer_config(_compose_published("alfworld", smollm_dir))
    assert alf.env_kwargs["source"] == "official"
    with pytest.raises(FileNotFoundError, match="ALFWORLD_DATA"):
        make_env("alfworld", **alf.env_kwargs)

    search = _compose_published("search", smollm_dir, "reskill.env_kwargs.data_dir=null")
    kwargs = ReskillVerlConfig.from_trainer_config(search).env_kwargs
    assert kwargs["retriever"] == "http://localhost:8000/retrieve" and kwargs["top_k"] == 3
    with pytest.raises(ValueError, match="data_dir"):
        make_env("search", **kwargs)


def test_verl_env_var_overrides_reach_the_runtime_env_literally(monkeypatch):
    """Set variables become literal runtime_env entries (veRL does not resolve that block);
    empty ones are left out; quotes, spaces and backslashes survive Hydra's parser."""
    from hydra import compose, initialize_config_dir
    from reskill_verl.cli import FORWARDED_ENV_VARS, env_var_overrides, train_command

    values = {
        "ALFWORLD_DATA": "/data/alf world/it's",
        "RESKILL_CACHE": "C:\\cache\\",
        "RESKILL_SKILLS_DIR": "",
    }
    overrides = env_var_overrides(values)
    assert len(overrides) == 2 and set(FORWARDED_ENV_VARS) == set(values)
    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        cfg = compose(config_name="published/alfworld", overrides=overrides)
    env_vars = cfg.ray_kwargs.ray_init.runtime_env.env_vars
    assert env_vars.ALFWORLD_DATA == values["ALFWORLD_DATA"]
    assert env_vars.RESKILL_CACHE == values["RESKILL_CACHE"]
    assert "RESKILL_SKILLS_DIR" not in env_vars
    assert env_vars.VERL_USE_EXTERNAL_MODULES == "reskill_verl.plugin"
    assert env_var_overrides({"ALFWORLD_DATA": " "}) == []
    with pytest.raises(ValueError, match="interpolation"):
        env_var_overrides({"RESKILL_CACHE": "${HOME}/x"})

    # train_command: forwarded variables first, the user's overrides after them (they win)
    monkeypatch.setenv("ALFWORLD_DATA", "/data/alfworld")
    monkeypatch.delenv("RESKILL_CACHE", raising=False)
    monkeypatch.delenv("RESKILL_SKILLS_DIR", raising=False)
    cmd, _ = train_command("published/alfworld", ["trainer.nnodes=1"], config_path="/cfg")
    assert cmd[cmd.index("--config-name") + 1] == "published/alfworld"
    assert cmd[-2:] == [
        "++ray_kwargs.ray_init.runtime_env.env_vars.ALFWORLD_DATA='/data/alfworld'",
        "trainer.nnodes=1",
    ]


@pytest.mark.slow
def test_verl_train_runs_main_ppo_with_a_published_preset(tmp_path, monkeypatch):
    """``reskill verl train --config-name published/alfworld`` through veRL's real entry point
    (Hydra ``--cfg job`` prints the composed config and stops): the subfolder name resolves,
    and $ALFWORLD_DATA lands in the Ray runtime_env."""
    pytest.importorskip("verl")
    import yaml
    from reskill_verl.cli import train_command

    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "alf data"))
    cmd, run_env = train_command("published/alfworld", ["--cfg", "job"])
    done = subprocess.run(cmd, env=run_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = yaml.safe_load(done.stdout)
    assert cfg["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]["ALFWORLD_DATA"] == str(
        tmp_path / "alf data"
    )
    assert cfg["trainer"]["nnodes"] == 2 and cfg["reskill"]["skills"] is None
    assert cfg["reskill"]["env_kwargs"]["source"] == "official"


# ----- Search: the published data split ---------------------------------------------------
#: The seven Search-R1 test sets with more questions than the published 300 except Bamboogle
#: (125 in the real file): the published validation keeps min(300, n) per set.
_TEST_SIZES = {"nq": 340, "hotpotqa": 310, "triviaqa": 305, "popqa": 302, "2wikimultihopqa": 301,
               "musique": 320, "bamboogle": 125}  # fmt: skip


def _search_r1_files(root: Path) -> Path:
    """A small folder in the Search-R1 merged layout (``train.parquet`` = NQ + HotpotQA train,
    ``test.parquet`` = the seven test sets), rows interleaved as in a merged file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True)
    train = [
        {"id": f"train_{i}", "question": f"Train question {i}?", "golden_answers": [f"a{i}"],
         "data_source": "nq" if i % 3 else "hotpotqa"}
        for i in range(3600)
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(train), root / "train.parquet")
    test = []
    sources = [s for s, n in _TEST_SIZES.items() for _ in range(n)]
    for i, src in enumerate(sorted(sources, key=lambda s: hash((s, sources.index(s))) % 7)):
        test.append({"id": f"test_{i}", "question": f"Test question {i} ({src})?",
                     "golden_answers": [f"t{i}"], "data_source": src})  # fmt: skip
    pq.write_table(pa.Table.from_pylist(test), root / "test.parquet")
    return root


def _preset_prepare_command(name: str) -> list[str]:
    """The ``reskill verl prepare`` command written in a published preset's header."""
    import shlex

    lines = (ROOT / "configs" / "verl" / "published" / f"{name}.yaml").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("#   reskill verl prepare"))
    text = ""
    for ln in lines[start:]:
        part = ln.lstrip("#").strip()
        text += " " + part.rstrip("\\").strip()
        if not part.endswith("\\"):
            break
    return shlex.split(text)


def test_verl_prepare_search_published_command_gives_the_published_split(tmp_path):
    """The published search preset's prepare command: 3,000 training questions drawn by the
    published seeded shuffle (pandas ``sample(frac=1, random_state=42)``) of the merged
    NQ + HotpotQA file, and 300 validation questions per test set (``_split_by_domain``)."""
    pd = pytest.importorskip("pandas")
    import pyarrow.parquet as pq

    from reskill_gym.cli import app
    from reskill_gym.envs.search import SearchEnv

    data = _search_r1_files(tmp_path / "search-r1")
    cmd = _preset_prepare_command("search")
    assert cmd[:3] == ["reskill", "verl", "prepare"]
    args = [a.replace("<folder>", str(data)).replace("data/search", str(tmp_path / "out"))
            for a in cmd[1:]]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shuffle_seed"] == 42 and manifest["val_per_source"] == 300
    assert manifest["counts"] == {"train": 3000, "val": 6 * 300 + 125}

    env = SearchEnv(dataset="benchmark", data_dir=data)
    question = {
        t: env.example(t).question for s in ("train", "seen", "unseen") for t in env.task_ids(s)
    }
    train = pq.read_table(out / "train.parquet").to_pylist()
    published_train = pd.read_parquet(data / "train.parquet").sample(frac=1.0, random_state=42)
    assert [question[r["extra_info"]["task_id"]] for r in train] == list(
        published_train["question"][:3000]
    )
    val = pq.read_table(out / "val.parquet").to_pylist()
    test_df = pd.read_parquet(data / "test.parquet")
    for src, n in _TEST_SIZES.items():
        ours = [question[r["extra_info"]["task_id"]] for r in val
                if r["data_source"].endswith(f"/{src}")]  # fmt: skip
        published = test_df[test_df["data_source"] == src].sample(frac=1.0, random_state=42)
        assert ours == list(published["question"][: min(n, 300)]), src
    assert {r["data_source"] for r in val} == {
        f"reskill/search/{'seen' if s in ('nq', 'hotpotqa') else 'unseen'}/{s}" for s in _TEST_SIZES
    }


def test_verl_prepare_alfworld_published_command_gives_the_published_validation(
    tmp_path, smollm_dir
):
    """The published ALFWorld preset's prepare command: 32 seeded-random games of each
    validation split (seen, unseen), 64 = the preset's val_batch_size, played greedily."""
    import pyarrow.parquet as pq
    from reskill_verl.prepare import shuffled

    from reskill_gym.cli import app
    from reskill_gym.envs.registration import make_env

    cmd = _preset_prepare_command("alfworld")
    assert cmd[:3] == ["reskill", "verl", "prepare"]
    per_split = int(cmd[cmd.index("--val-per-split") + 1])
    assert per_split == 32 and cmd[cmd.index("--shuffle-seed") + 1] == "42"
    assert "--val-splits" not in cmd, "the default splits: seen and unseen"
    cfg = _compose_published("alfworld", smollm_dir)
    assert cfg.data.val_batch_size == 2 * per_split
    # ScienceWorld: 32 episodes from the flat (task, dev variation) pool, one val split
    sw = _preset_prepare_command("scienceworld")
    assert (
        sw[sw.index("--val-splits") + 1] == "unseen" and sw[sw.index("--shuffle-seed") + 1] == "42"
    )
    sw_per_split = int(sw[sw.index("--val-per-split") + 1])
    assert sw_per_split == _compose_published("scienceworld", smollm_dir).data.val_batch_size == 32
    # the same command on the generated tiny games (the official ones need $ALFWORLD_DATA)
    args = [a.replace("source=official", "source=generated").replace("data/alfworld", str(tmp_path / "out"))
            for a in cmd[1:]]  # fmt: skip
    args += ["--env-arg", "difficulty=tiny", "--val-per-split", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    raw = make_env("alfworld", source="generated", difficulty="tiny")
    expected = {s: shuffled(list(raw.task_ids(s)), 42)[:2] for s in ("seen", "unseen")}
    raw.close()
    val = pq.read_table(tmp_path / "out" / "val.parquet").to_pylist()
    for split in ("seen", "unseen"):
        got = [r["extra_info"]["task_id"] for r in val if r["extra_info"]["split"] == split]
        assert got == expected[split] and len(got) == 2, split
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["val_per_split"] == 2 and manifest["shuffle_seed"] == 42


def test_verl_prepare_without_the_published_flags_keeps_the_file_order(tmp_path):
    from reskill_verl.prepare import prepare_dataset

    data = _search_r1_files(tmp_path / "search-r1")
    p = prepare_dataset("search", tmp_path / "o", env_kwargs={"dataset": "benchmark", "data_dir": str(data)},
                        limit_train=4, limit_val=2)  # fmt: skip
    import pyarrow.parquet as pq

    train = pq.read_table(p.files["train"]).to_pylist()
    assert [r["extra_info"]["task_id"] for r in train] == [
        "hotpotqa/train_0", "nq/train_1", "nq/train_2", "hotpotqa/train_3"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="data source"):
        prepare_dataset("alfworld", tmp_path / "a", val_per_source=3,
                        env_kwargs={"difficulty": "tiny", "source": "generated"})  # fmt: skip
