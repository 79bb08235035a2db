"""`reskill creator run` commits a verified proposal that `reskill skills log/diff` show."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from reskill_gym.cli import app
from reskill_gym.creator import Reservoir
from reskill_gym.testing.loopback import LoopbackLLMServer

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_creator_run_rules_then_log_and_diff(tmp_path, search_episodes) -> None:
    lib = tmp_path / "search"
    shutil.copytree(REPO / "skills" / "search", lib)
    res = Reservoir(200)
    res.add(search_episodes)
    res.save(tmp_path / "res.jsonl")
    out = runner.invoke(
        app,
        [
            "creator",
            "run",
            "--reservoir",
            str(tmp_path / "res.jsonl"),
            "--library",
            str(lib),
            "--backend",
            "rules",
            "--step",
            "12",
            "--min-reservoir-size",
            "20",
            "--state",
            str(tmp_path / "state.json"),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout[out.stdout.index("{") :])
    version = data["version"]
    added = [op["name"] for op in data["proposal"]["operations"]]
    assert version and "wrap-actions-in-tags" in added
    assert json.loads((tmp_path / "state.json").read_text())["assertions"]["assertions"]
    log = runner.invoke(app, ["skills", "log", "-L", str(lib), "--json"])
    entry = json.loads(log.stdout[log.stdout.index("{") :])["history"][-1]
    assert entry["version"] == version and entry["step"] == 12
    assert entry["proposed_by"] == "creator:rules" and "wrap-actions-in-tags" in entry["reason"]
    assert entry["extra"]["creator"]["assertions"] and entry["extra"]["creator"]["verification"]
    diff = runner.invoke(app, ["skills", "diff", "HEAD~1", "HEAD", "-L", str(lib)])
    assert diff.exit_code == 0 and "+name: wrap-actions-in-tags" in diff.output
    assert (lib / "wrap-actions-in-tags" / "SKILL.md").is_file()


def test_creator_run_openai_loopback_and_no_proposal(
    tmp_path, search_episodes, creator_llm
) -> None:
    lib = tmp_path / "search"
    shutil.copytree(REPO / "skills" / "search", lib)
    res = Reservoir(200)
    res.add(search_episodes)
    res.save(tmp_path / "res.jsonl")
    (tmp_path / "cfg.json").write_text(
        json.dumps(
            {
                "pipeline": "project",
                "max_analyzed_episodes": 16,
                "failing_assertion_min_rate": 0.1,
                "min_reservoir_size": 20,
                "llm_options": {
                    "timeout_s": 5,
                    "max_retries": 1,
                    "backoff_base_s": 0.01,
                    "backoff_max_s": 0.02,
                },
            }
        )
    )
    with LoopbackLLMServer(creator_llm()) as srv:
        out = runner.invoke(
            app,
            [
                "creator",
                "run",
                "-r",
                str(tmp_path / "res.jsonl"),
                "-L",
                str(lib),
                "-b",
                srv.spec(),
                "--config",
                str(tmp_path / "cfg.json"),
                "--step",
                "7",  # the batch sampled at step 7 holds untagged replies
            ],
        )
    assert out.exit_code == 0, out.output
    assert "add use-action-tags" in out.output and "committed" in out.output
    wins = Reservoir(200)
    wins.add([e for e in search_episodes if e.success])
    wins.save(tmp_path / "wins.jsonl")
    out = runner.invoke(
        app,
        [
            "creator",
            "run",
            "-r",
            str(tmp_path / "wins.jsonl"),
            "-L",
            str(lib),
            "--min-reservoir-size",
            "5",
        ],
    )
    assert out.exit_code == 3 and "no proposal: no failed episodes" in out.output
    bad = runner.invoke(
        app, ["creator", "run", "-r", str(tmp_path / "missing.jsonl"), "-L", str(lib)]
    )
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_creator_record_search(tmp_path) -> None:
    out = runner.invoke(
        app,
        [
            "creator",
            "record",
            "--env",
            "search",
            "--tasks",
            "5",
            "--group-size",
            "2",
            "-o",
            str(tmp_path / "r.jsonl"),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    r = Reservoir.load(tmp_path / "r.jsonl")
    assert len(r) == 10 and r.counts()["tasks"] == 5


def test_creator_run_published_pipeline_writes_artifacts(
    tmp_path, search_episodes, published_llm
) -> None:
    lib = tmp_path / "search"
    shutil.copytree(REPO / "skills" / "search", lib)
    res = Reservoir(200, dedup_by="task_arm_outcome")
    res.add(search_episodes)
    res.save(tmp_path / "res.jsonl")
    (tmp_path / "cfg.json").write_text(
        json.dumps({"min_reservoir_size": 20, "n_groups": 8, "llm_options": {"timeout_s": 5}})
    )
    with LoopbackLLMServer(published_llm()) as srv:
        out = runner.invoke(
            app,
            [
                "creator",
                "run",
                "-r",
                str(tmp_path / "res.jsonl"),
                "-L",
                str(lib),
                "-b",
                srv.spec(),
                "--config",
                str(tmp_path / "cfg.json"),
                "--pipeline",
                "published",
                "--artifacts",
                str(tmp_path / "art"),
                "--step",
                "3",
            ],
        )
    assert out.exit_code == 0, out.output
    assert "add read-before-answering" in out.output and "committed" in out.output
    step = tmp_path / "art" / "step_000003"
    assert (step / "05_assertions_graded.json").is_file()
    assert json.loads((step / "09_result.json").read_text())["pipeline"] == "published"
    text = (lib / "read-before-answering" / "SKILL.md").read_text()
    assert "## When to use\nApply right after a search" in text and "## Examples\nDO:" in text
