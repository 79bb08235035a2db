"""An unmodified Gymnasium text env, adapted by the ``env: {gym_id: ...}`` short form, through
``reskill train``: the local GRPO trainer with a tiny real model (#20 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from reskill_gym.cli import app

GYM_ID = "TestKeypad-v0"  # registered by the keypad fixture (tests/adapters/conftest.py)


SHORT_FORM = {
    "gym_id": GYM_ID,
    "kwargs": {"code_len": 2},
    "task_key": "goal",
    "actions_key": "moves",
    "obs_key": "text",
    "max_turns": 3,
}


def test_reskill_train_on_an_unmodified_gym_env(
    tmp_path: Path, tiny_model_dir: Path, keypad: str
) -> None:
    """Two GRPO steps (score mode over the env's own valid moves), a resumable run folder."""
    config = {
        "run": {"steps": 2, "out_dir": str(tmp_path), "name": "keypad", "report": False},
        "env": {**SHORT_FORM, "skills": "none", "max_tasks": 4},
        "trainer": {
            "model": str(tiny_model_dir),
            "device": "cpu",
            "group_size": 2,
            "groups_per_step": 2,
            "kl_coef": 0.0,
            "max_samples_per_step": 4,
        },
        "rollout": {"action_mode": "score", "history_turns": 0},  # gym: generate by default
        "coevolution": {"async_creator": False, "creator": {"backend": "rules"}},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(
        app, ["train", "--config", str(tmp_path / "train.yaml"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "keypad"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["env"]["name"] == "gym" and saved["env"]["kwargs"]["gym_id"] == GYM_ID
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert all(r["episode/dropped"] == 0.0 for r in rows)
    assert all(r["rollouts/samples"] == 8.0 for r in rows)  # 4 episodes x 2 turns
    assert rows[0]["update/samples"] > 0  # the seeded step 0 has a group with signal
    assert (run / "checkpoints" / "step_000002" / "policy").is_dir()
    # the episodes are the env's: its goal, its moves, its seed-<n> task ids
    from reskill_gym.step_episodes import StepEpisodes

    store = StepEpisodes(run)
    store.refresh()
    episodes = [store.read(e) for e in store.entries()]
    assert len(episodes) == 8 and all(e.task_id.startswith("seed-") for e in episodes)
    assert all(t.action in ("press 0", "press 1") for e in episodes for t in e.turns)
    # resume with more steps goes on from the checkpoint
    again = CliRunner().invoke(app, ["train", "--resume", str(run), "run.steps=3", "--no-progress"])
    assert again.exit_code == 0, again.output
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]
