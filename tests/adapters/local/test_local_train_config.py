"""Run configs: schema validation before anything heavy, overrides, run folders, the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reskill_gym.cli import app

pytest.importorskip("torch")

from reskill_local.train import ConfigError, TrainingRun, load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", ["demo", "alfworld", "scienceworld", "search", "textworld"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.env.name == name if name != "demo" else cfg.env.name == "alfworld"
    assert cfg.trainer.seed == cfg.run.seed == cfg.coevolution.seed == cfg.coevolution.creator.seed


def test_demo_config_is_set_up_to_decide_a_test() -> None:
    cfg = load_config(REPO / "configs" / "demo.yaml")
    co = cfg.coevolution
    per_step = cfg.trainer.rollouts_per_step
    # a pass can run after the second step, and a test started then is decidable at step 3
    assert co.min_reservoir_size <= 2 * per_step and co.creator.min_reservoir_size <= 2 * per_step
    assert co.tester.min_episodes <= co.tester.min_steps * per_step
    assert cfg.run.steps >= 2 + co.tester.min_steps
    assert co.creator.backend == "rules" and not cfg.run.wandb


def test_unknown_key_in_file_names_file_key_and_suggestion(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  steps: 2\ncoevolution:\n  tester:\n    min_stepz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    msg = str(e.value)
    assert str(bad) in msg and "'coevolution.tester.min_stepz'" in msg
    assert "did you mean 'coevolution.tester.min_steps'" in msg


def test_unknown_section_and_override_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'trainr' \(did you mean 'trainer'\?\)"):
        load_config(None, ["trainr.group_size=4"])
    with pytest.raises(ConfigError, match="known keys"):
        load_config(None, ["env.zzzzzz=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["run.steps"])


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="run.steps"):
        load_config(None, ["run.steps=0"])
    with pytest.raises(ConfigError, match="group_size must be >= 2"):
        load_config(None, ["trainer.group_size=1"])
    with pytest.raises(ConfigError, match="trainer.learning_rate: Input should be a valid number"):
        load_config(None, ["trainer.learning_rate=fast"])
    with pytest.raises(ConfigError, match="coevolution.tester.min_steps"):
        load_config(None, ["coevolution.tester.min_steps=0"])


def test_overrides_and_seed_propagation() -> None:
    cfg = load_config(None, ["run.seed=7", "trainer.temperature=2.5", "coevolution.seed=3"])
    assert cfg.trainer.seed == 7 and cfg.coevolution.creator.seed == 7
    assert cfg.coevolution.seed == 3  # an explicit value wins
    assert cfg.trainer.temperature == 2.5


def test_create_writes_resolved_config_and_copies_library(tmp_path: Path) -> None:
    cfg = load_config(None, [f"run.out_dir={tmp_path}", "run.exp_name=t", "run.seed=4"])
    run = TrainingRun.create(cfg)
    name = run.run_dir.name
    env, exp, seed, stamp = name.split("__")
    assert (env, exp, seed) == ("alfworld", "t", "4") and abs(int(stamp) - time.time()) < 120
    again = load_config(run.run_dir / "config.yaml")
    assert again.to_container() == run.config.to_container()
    from reskill_gym.skills import SkillLibrary

    lib = SkillLibrary.open(run.run_dir / "skills")
    assert len(lib.view().skills) > 0 and [h.kind for h in lib.history()] == ["init"]
    with pytest.raises(ConfigError, match="--resume"):
        TrainingRun.create(run.config)


def test_cli_unknown_key_fails_before_any_model_loads(monkeypatch, tmp_path: Path) -> None:
    import reskill_local.grpo
    import reskill_local.policy

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the config was validated")

    monkeypatch.setattr(reskill_local.policy, "load_policy", no_model)
    monkeypatch.setattr(reskill_local.grpo, "load_policy", no_model)
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            f"run.out_dir={tmp_path}",
            "trainer.tempreature=3",
        ],
    )
    assert res.exit_code == 2, res.output
    assert "unknown key 'trainer.tempreature'" in res.output
    assert "did you mean 'trainer.temperature'" in res.output
    assert not any(tmp_path.iterdir()), "no run folder for a bad config"


def test_cli_needs_exactly_one_of_config_or_resume(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train"])
    assert res.exit_code != 0 and "exactly one" in res.output
    res = CliRunner().invoke(app, ["train", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "not a run folder" in res.output
