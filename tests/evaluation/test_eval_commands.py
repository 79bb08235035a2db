"""``reskill eval`` on the command line: ``--config FILE``, ``key=value`` overrides, flags as
shorthands, and one-line errors. Real search-env episodes with a ``python:`` agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reskill_gym.cli import app

SECRET = "sk-eval-config-secret-5f1e2d3c"


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``python:`` agent that answers every question with one word (a lost episode)."""
    (tmp_path / "eval_cmd_policy.py").write_text(
        "def act(messages, info):\n    return '<answer>paris</answer>'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("eval_cmd_policy", None)
    return "python:eval_cmd_policy:act"


def _config(tmp_path: Path, agent: str, **extra: object) -> Path:
    lines = [
        "env: search",
        f"agent: {agent}",
        "splits: [unseen]",
        "tasks: 1",
        "max_turns: 3",
        "rollout:",
        "  history_turns: 4",
        f"llm: {{api_key: {SECRET}, timeout_s: 5}}",
        f"out: {tmp_path / 'from-file'}",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    path = tmp_path / "eval.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _eval(*args: object) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["eval", *map(str, args)])
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.output


def _pinned(out: Path) -> dict:
    return json.loads((out / "config.json").read_text())


def test_config_file_alone_runs_and_keeps_no_secret(tmp_path: Path, policy: str) -> None:
    code, output = _eval("--config", _config(tmp_path, policy))
    out = tmp_path / "from-file"
    assert code == 0, output
    pinned = _pinned(out)
    assert (pinned["env"], pinned["tasks"], pinned["max_turns"]) == ("search", 1, 3)
    assert pinned["rollout"]["history_turns"] == 4 and pinned["llm"]["timeout_s"] == 5
    # the key reached the agent's config but no file of the run folder
    assert pinned["llm"]["api_key"] == "[REDACTED]"
    written = [p for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert written == []


def test_overrides_replace_the_file_and_flags_replace_both(tmp_path: Path, policy: str) -> None:
    cfg = _config(tmp_path, policy)
    flag_out = tmp_path / "from-flag"
    code, output = _eval(
        "-c", cfg, "rollout.score_norm=sum", "rollout.history_turns=2", "max_turns=4",
        "--history", "5", "--out", flag_out,
    )  # fmt: skip
    assert code == 0, output
    assert not (tmp_path / "from-file").exists()
    pinned = _pinned(flag_out)
    assert pinned["rollout"]["score_norm"] == "sum"  # override over the default
    assert pinned["max_turns"] == 4  # override over the file
    assert pinned["rollout"]["history_turns"] == 5  # flag over override and file


def test_flags_alone_still_run(tmp_path: Path, policy: str) -> None:
    out = tmp_path / "o"
    code, output = _eval(
        "--env", "search", "--agent", policy, "--split", "unseen", "--tasks", "1",
        "--max-turns", "2", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    assert _pinned(out)["max_turns"] == 2 and "1 episodes run" in output


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["rollout.score_nrm=sum"],
            "unknown key 'rollout.score_nrm' (did you mean 'rollout.score_norm'?)",
        ),  # fmt: skip
        (["wokers=2"], "did you mean 'workers'"),
        (["workers=many"], "workers: Input should be a valid integer"),
        (["metric=expert", "expert.conditions=[none,librar]"], "expert.conditions.1"),
        (["expert.perturbed=2"], "expert.perturbed: only with --metric expert"),
        (["--metric", "nope"], "metric"),
        (["rollout.score_norm=sum", "score_norm=mean"], "contradicts rollout.score_norm"),
    ],
)
def test_bad_keys_and_values_are_one_line_errors(
    tmp_path: Path, policy: str, args: list[str], needle: str
) -> None:
    code, output = _eval("-c", _config(tmp_path, policy), *args)
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], output
    assert not (tmp_path / "from-file").exists()  # nothing started


def test_a_bad_file_is_one_line_error(tmp_path: Path, policy: str) -> None:
    cfg = _config(tmp_path, policy, max_turn=3)
    code, output = _eval("-c", cfg)
    assert code == 2 and "unknown key 'max_turn' (did you mean 'max_turns'?)" in output, output
    cfg.write_text("env: [search\n")
    code, output = _eval("-c", cfg, "--out", tmp_path / "o")
    assert code == 2 and "not valid YAML" in output, output
    code, output = _eval("-c", tmp_path / "missing.yaml", "--out", tmp_path / "o")
    assert code == 2 and "config file not found" in output, output


def test_required_keys_name_the_flag_and_the_file_key(tmp_path: Path, policy: str) -> None:
    code, output = _eval("--env", "search", "--agent", policy)
    assert code == 2 and "--out is required (or out: in the --config file)" in output
    code, output = _eval("--env", "search", "--out", tmp_path / "o")
    assert code == 2 and "--agent is required" in output


def test_a_run_where_every_episode_errored_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#26: a policy that raises on every turn used to end with exit 0 and a report of nothing."""
    (tmp_path / "eval_cmd_raising.py").write_text(
        "CALLS = []\n\n"
        "def act(messages, info):\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) > 1:\n"
        "        return '<answer>paris</answer>'\n"
        "    raise RuntimeError('policy bug')\n\n"
        "def always(messages, info):\n"
        "    raise RuntimeError('policy bug')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("eval_cmd_raising", None)
    base = ("--env", "search", "--split", "unseen", "--tasks", "2", "--max-turns", "2")
    out = tmp_path / "all"
    code, output = _eval(*base, "--agent", "python:eval_cmd_raising:always", "--out", out)
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("policy bug" in r["error"] for r in rows)
    assert code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "all 2 episodes errored" in errors[0], output
    assert str(out / "episodes.jsonl") in errors[0] and (out / "report.md").is_file()
    # a resume that runs nothing still says so: the run is still all errors
    code, output = _eval(*base, "--agent", "python:eval_cmd_raising:always", "--out", out)
    assert code == 1 and "0 episodes run, 2 resumed" in output, output
    # partial errors: exit 0, the count reported
    out = tmp_path / "some"
    code, output = _eval(*base, "--agent", "python:eval_cmd_raising:act", "--out", out)
    assert code == 0 and "2 episodes run, 0 resumed, 1 errors" in output, output
    assert "error:" not in output
