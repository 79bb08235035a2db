"""The run report (``reskill report``): markdown and plots from a run folder's files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _write_run(run: Path) -> None:
    rows = []
    for step in range(5):
        row: dict[str, Any] = {"step": step, "episode/reward_mean": 0.25 * (step % 3)}
        row["episode/success_rate"] = row["episode/reward_mean"]
        arms = ("head",) if step in (0, 1, 4) else ("incumbent", "candidate")
        for arm in arms:
            row[f"arms/{arm}/reward_mean"] = 0.5 if arm == "candidate" else 0.25
            row[f"arms/{arm}/success_rate"] = row[f"arms/{arm}/reward_mean"]
        row["versions/p_candidate"] = 0.5 if len(arms) == 2 else None
        row["run/wall_s"], row["run/cpu_s"] = 10.0 * (step + 1), 15.0 * (step + 1)
        rows.append(row)
    events = [
        {"kind": "creator_submitted", "step": 0, "message": "pass", "data": {}},
        {
            "kind": "candidate_committed",
            "step": 1,
            "message": "c1",
            "data": {"candidate": "c1", "base": "h0", "operations": "add x"},
        },
        {"kind": "test_started", "step": 1, "message": "t", "data": {"candidate": "c1"}},
        {
            "kind": "test_decided",
            "step": 3,
            "message": "accept",
            "data": {
                "candidates": ["c1"],
                "accepted": "c1",
                "started_step": 1,
                "reason": "posterior mean",
                "counts": {
                    "h0": {"successes": 2, "episodes": 8},
                    "c1": {"successes": 4, "episodes": 8},
                },
            },
        },
        {"kind": "episode_dropped", "step": 4, "message": "r3 dropped: EngineCrashedError"},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_report_writes_markdown_and_plots(tmp_path: Path) -> None:
    from reskill_gym.report import load_run, write_run_report

    _write_run(tmp_path)
    rec = load_run(tmp_path)
    assert [(v.version, v.created, v.test_started, v.decided, v.outcome) for v in rec.lives] == [
        ("c1", 1, 1, 3, "accepted")
    ]
    path = write_run_report(tmp_path)
    text = path.read_text()
    assert "1 started, 1 decided (1 accepted, 0 rejected)" in text
    assert "**accepted** at step 3" in text and "c1: 4/8" in text
    assert "episode_dropped" in text
    for png in ("reward_per_arm.png", "skill_lifecycle.png"):
        data = (tmp_path / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_report_cli_and_empty_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no metrics.jsonl rows" in res.output
    _write_run(tmp_path)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0 and "report.md" in res.output
