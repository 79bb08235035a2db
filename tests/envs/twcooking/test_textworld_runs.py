"""TextWorld Cooking through the runners: reskill evolve (scripted agent, rules creator) and
reskill verl prepare, on real generated games."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("textworld")

from typer.testing import CliRunner  # noqa: E402

from reskill_gym.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_evolve_two_steps_on_generated_games(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(REPO / "configs" / "evolve"))
    sys.modules.pop("scripted_textworld_agent", None)
    config = REPO / "configs" / "evolve" / "textworld_python.yaml"
    args = ["evolve", "--config", str(config), f"run.out_dir={tmp_path}", "run.name=tw"]
    result = CliRunner().invoke(app, [*args, "run.steps=2", "--no-progress"])
    sys.modules.pop("scripted_textworld_agent", None)
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(line) for line in (tmp_path / "tw" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [0, 1]
    assert sum(r["episode/success_rate"] for r in rows) > 0  # the scripted agent wins some
    assert (tmp_path / "cache" / "textworld").is_dir()


def test_verl_prepare_lists_textworld_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESKILL_CACHE", str(tmp_path / "cache"))
    pytest.importorskip("pyarrow")
    pytest.importorskip("reskill_verl")
    import pyarrow.parquet as pq

    out = tmp_path / "data"
    result = CliRunner().invoke(
        app,
        [
            "verl",
            "prepare",
            "--env",
            "textworld",
            "--out",
            str(out),
            "--env-arg",
            "difficulty=small",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert len(rows) == 100 and rows[0]["extra_info"]["env_id"] == "ReSkill-TextWorld-v0"
    assert rows[0]["extra_info"]["task_id"] == "small/train/0000"
    assert "TextWorld Cooking" in rows[0]["prompt"][0]["content"]
    assert not (tmp_path / "cache").exists()  # listing tasks generates no game
