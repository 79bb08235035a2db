"""``benchmarks/creator_replay.py``: one creator pass replayed on a run's recorded episodes.

A one-step ``reskill evolve`` dry run (scripted agent, rules creator, real ALFWorld engine)
records its episodes and commits a candidate; replaying step 0 with the run's own config
proposes the same skills, and a stricter config proposes none, saying why.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reskill_gym.cli import app

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "evolve"


@pytest.fixture(scope="module")
def replay_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_creator_replay", REPO / "benchmarks" / "creator_replay.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replay_reproduces_the_runs_proposal(tmp_path: Path, monkeypatch, replay_module) -> None:
    pytest.importorskip("alfworld")
    monkeypatch.syspath_prepend(str(CONFIGS))
    sys.modules.pop("scripted_alfworld_agent", None)
    args = [
        "evolve",
        "--config",
        str(CONFIGS / "alfworld_python.yaml"),
        f"run.out_dir={tmp_path}",
        "run.name=evo",
        "run.steps=1",
        "run.report=false",
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "evo"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    committed = next(e for e in events if e["kind"] == "candidate_committed")

    same = replay_module.replay(run, 0, None, [])
    assert same["episodes"] == 8 and same["proposal"], same
    names = [op["name"] for op in same["proposal"]]
    assert all(name in committed["message"] for name in names), (names, committed)
    assert all(op["verified"] for op in same["proposal"])
    assert same["cost"]["calls"] == 0 and same["cost"]["wall_s"] > 0  # rules: time only
    assert any(e["kind"] == "skill_verified" for e in same["events"]), same["events"]

    strict = replay_module.replay(run, 0, None, ["rules_min_support=50"])
    assert strict["proposal"] is None and strict["reason"]
