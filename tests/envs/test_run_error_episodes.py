"""An env whose step raises (or hangs) on some tasks, registered through the public API and
played by ``reskill evolve`` and ``reskill train``: each failed rollout is an error episode
(an ``episode_dropped`` event, the record on disk), the run goes on and its folder resumes;
a run whose every rollout fails says so in one line and stays resumable (#20 item 5)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from reskill_gym.cli import app
from reskill_gym.envs import EnvSpec, register
from reskill_gym.envs.base import EngineStep, TextEnv
from reskill_gym.envs.registration import unregister

NAME = "flaky-test"


class FlakyEnv(TextEnv):
    """Two moves, ``left`` wins. A task ``bad-*`` raises on its first step; a task ``hang-*``
    sleeps ``hang_s`` seconds in it (a stuck engine)."""

    env_name = NAME

    def __init__(self, *, tasks: str = "ok-0,ok-1,bad-0", hang_s: float = 30.0, **kw: Any):
        super().__init__(**kw)
        self.tasks, self.hang_s = tasks.split(","), hang_s

    def task_ids(self, split: str | None = None) -> list[str]:
        return list(self.tasks)

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        self.task = task_id
        moves = {"admissible_actions": ["go left", "go right"]}
        return "A fork in the road.", {"task": "take the left road", "task_type": "fork", **moves}

    def _engine_step(self, action: str) -> EngineStep:
        if self.task.startswith("bad-"):
            raise RuntimeError("engine segfault (test)")
        if self.task.startswith("hang-"):
            time.sleep(self.hang_s)
        won = action == "go left"
        return EngineStep("You arrive.", float(won), True, won, admissible_actions=[])


@pytest.fixture(autouse=True)
def flaky() -> Iterator[str]:
    register(EnvSpec(name=NAME, factory=FlakyEnv, system_prompt="You are a traveller."))
    yield NAME
    unregister(NAME)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _dropped(run: Path) -> list[dict[str, Any]]:
    return [e for e in _rows(run / "events.jsonl") if e["kind"] == "episode_dropped"]


# ----- reskill evolve --------------------------------------------------------------------
def _evolve(tmp_path: Path, name: str, tasks: str, steps: int = 2, **kwargs: Any) -> Any:
    (tmp_path / "fork_agent.py").write_text(
        "def act(messages, info):\n    return '<action>go left</action>'\n"
    )
    config = {
        "run": {"steps": steps, "out_dir": str(tmp_path), "name": name, "report": False},
        "env": {"name": NAME, "skills": "none", "kwargs": {"tasks": tasks, **kwargs}},
        "agent": {"spec": "python:fork_agent:act", "group_size": 2, "groups_per_step": 3},
        "coevolution": {"async_creator": False, "creator": {"backend": "rules"}},
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    args = ["evolve", "--config", str(tmp_path / f"{name}.yaml"), "--no-progress"]
    return CliRunner().invoke(app, args)


def test_evolve_records_error_episodes_and_goes_on(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    result = _evolve(tmp_path, "mixed", "ok-0,ok-1,bad-0")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    run = tmp_path / "mixed"
    rows = _rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    # each step plays every task once (3 groups of 2): the bad task's group is dropped
    assert all(r["episode/dropped"] == 2.0 for r in rows), rows
    # the kept episodes are won; a dropped one counts as a failure in the success rate only
    assert all(r["episode/reward_mean"] == 1.0 for r in rows)
    assert all(r["episode/success_rate"] == pytest.approx(4 / 6) for r in rows)
    dropped = _dropped(run)
    assert len(dropped) == 4 and all(e["data"]["task_id"] == "bad-0" for e in dropped)
    assert "RuntimeError: engine segfault (test)" in dropped[0]["message"]
    # the resumed run goes on from its checkpoint
    again = CliRunner().invoke(
        app, ["evolve", "--resume", str(run), "run.steps=3", "--no-progress"]
    )
    assert again.exit_code == 0, again.output
    assert [r["step"] for r in _rows(run / "metrics.jsonl")] == [0, 1, 2]


def test_evolve_whose_every_rollout_fails_says_so_and_resumes(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    result = _evolve(tmp_path, "allbad", "bad-0,bad-1")
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "step 0: all 6 rollouts failed" in errors[0]
    assert "engine segfault (test)" in errors[0] and "--resume" in errors[0]
    run = tmp_path / "allbad"
    assert len(_dropped(run)) == 6  # what failed is on record, but no checkpoint
    assert not (run / "checkpoints" / "LATEST").exists()
    # the env fixed (here: tasks that work), the same folder resumes and runs its steps
    fixed = "env.kwargs.tasks=ok-0,ok-1"
    again = CliRunner().invoke(app, ["evolve", "--resume", str(run), fixed, "--no-progress"])
    assert again.exit_code == 0, again.output
    assert [r["step"] for r in _rows(run / "metrics.jsonl")] == [0, 1]


# ----- reskill train ----------------------------------------------------------------------
def _train(tmp_path: Path, model: Path, name: str, tasks: str, **kwargs: Any) -> Any:
    config = {
        "run": {"steps": 2, "out_dir": str(tmp_path), "name": name, "report": False},
        "env": {"name": NAME, "skills": "none", "kwargs": {"tasks": tasks, **kwargs}},
        "trainer": {
            "model": str(model),
            "device": "cpu",
            "group_size": 2,
            "groups_per_step": 3,
            "kl_coef": 0.0,
        },
        "rollout": {"history_turns": 0},
        "coevolution": {"async_creator": False, "creator": {"backend": "rules"}},
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    args = ["train", "--config", str(tmp_path / f"{name}.yaml"), "--no-progress"]
    return CliRunner().invoke(app, args)


def test_train_records_error_episodes_and_goes_on(tmp_path, tiny_model_dir) -> None:
    pytest.importorskip("reskill_local")
    result = _train(tmp_path, tiny_model_dir, "mixed", "ok-0,ok-1,bad-0")
    assert result.exit_code == 0, result.output
    run = tmp_path / "mixed"
    rows = _rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    assert all(r["episode/dropped"] == 2.0 and r["episode/count"] == 4.0 for r in rows)
    dropped = _dropped(run)
    assert len(dropped) == 4 and all(e["data"]["task_id"] == "bad-0" for e in dropped)
    assert "RuntimeError: engine segfault (test)" in dropped[0]["message"]
    assert (run / "checkpoints" / "step_000002" / "policy").is_dir()


def test_train_whose_every_rollout_fails_says_so_and_resumes(tmp_path, tiny_model_dir) -> None:
    pytest.importorskip("reskill_local")
    result = _train(tmp_path, tiny_model_dir, "allbad", "bad-0,bad-1")
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "step 0: all 6 rollouts failed" in errors[0]
    run = tmp_path / "allbad"
    assert len(_dropped(run)) == 6  # what failed is on record, but no checkpoint
    assert not (run / "checkpoints" / "LATEST").exists()
    fixed = "env.kwargs.tasks=ok-0,ok-1"
    again = CliRunner().invoke(app, ["train", "--resume", str(run), fixed, "--no-progress"])
    assert again.exit_code == 0, again.output
    assert [r["step"] for r in _rows(run / "metrics.jsonl")] == [0, 1]


# ----- a step that hangs: env.kwargs.step_timeout_s ---------------------------------------
def test_evolve_and_train_time_out_a_hanging_step_and_go_on(
    tmp_path, monkeypatch, tiny_model_dir
) -> None:
    pytest.importorskip("reskill_local")
    monkeypatch.syspath_prepend(str(tmp_path))
    hang = {"tasks": "ok-0,ok-1,hang-0", "hang_s": 3.0, "step_timeout_s": 0.3}
    t0 = time.monotonic()
    for name, result in (
        ("evolve", _evolve(tmp_path, "evolve", **hang)),
        ("train", _train(tmp_path, tiny_model_dir, "train", **hang)),
    ):
        assert result.exit_code == 0, result.output
        run = tmp_path / name
        rows = _rows(run / "metrics.jsonl")
        assert [r["step"] for r in rows] == [0, 1]
        assert all(r["episode/dropped"] == 2.0 for r in rows), name
        dropped = _dropped(run)
        assert len(dropped) == 4 and all(e["data"]["task_id"] == "hang-0" for e in dropped)
        assert (
            "EnvStepTimeout: env flaky-test: step took longer than step_timeout_s=0.3"
            in (dropped[0]["message"])
        )
    # 8 stuck steps of 3 s each would take 24 s; each waited 0.3 s
    assert time.monotonic() - t0 < 20
