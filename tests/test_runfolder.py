"""``reskill_gym.runfolder``: a run that fails before its first checkpoint does not block a
new run of the same name (#26 B), and a run folder is created whole."""

from __future__ import annotations

import fcntl
import os
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
from reskill_gym.runfolder import STARTING

NAME = "fails-to-build-test"


class FailsToBuild(TextEnv):
    """One task, ``go`` wins; with ``broken=True`` the engine does not start (the env
    raises when it is built, at step 0, after the run folder exists)."""

    env_name = NAME

    def __init__(self, *, broken: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        if broken:
            raise RuntimeError("engine would not start (test)")

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["t-0"]

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        return "A door.", {
            "task": "open the door",
            "task_type": "door",
            "admissible_actions": ["go"],
        }

    def _engine_step(self, action: str) -> EngineStep:
        return EngineStep("Open.", 1.0, True, True, admissible_actions=[])


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path: Path) -> Iterator[str]:
    register(EnvSpec(name=NAME, factory=FailsToBuild, system_prompt="You open doors."))
    (tmp_path / "door_agent.py").write_text(
        "def act(messages, info):\n    return '<action>go</action>'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield NAME
    unregister(NAME)


def _evolve(tmp_path: Path, *, skills: str = "none", **kwargs: Any) -> Any:
    config = {
        "run": {"steps": 1, "out_dir": str(tmp_path / "runs"), "name": "r", "report": False},
        "env": {"name": NAME, "skills": skills, "kwargs": kwargs},
        "agent": {"spec": "python:door_agent:act", "group_size": 2, "groups_per_step": 1},
        "coevolution": {"async_creator": False, "creator": {"backend": "rules"}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    args = ["evolve", "--config", str(tmp_path / "c.yaml"), "--no-progress"]
    return CliRunner().invoke(app, args)


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_a_run_that_failed_to_build_does_not_block_its_name(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    first = _evolve(tmp_path, broken=True)
    assert first.exit_code != 0 and "engine would not start" in repr(first.exception)
    assert _names(run) == [STARTING, "config.yaml", "skills"]  # made, never started
    # the same name again, the env fixed: the leftover is replaced, the run goes through
    second = _evolve(tmp_path, broken=False)
    assert second.exit_code == 0, second.output
    assert (run / "checkpoints" / "LATEST").is_file() and (run / "metrics.jsonl").is_file()
    assert not (run / STARTING).exists()  # an ordinary run folder after its checkpoint
    # nothing left beside it: no temp or aside folders in out_dir
    assert _names(tmp_path / "runs") == ["r"]
    # and a finished run is never replaced
    third = _evolve(tmp_path, broken=False)
    assert third.exit_code == 2 and "already exists" in third.output and "--resume" in third.output


def test_a_failed_start_is_resumable(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    assert _evolve(tmp_path, broken=True).exit_code != 0
    again = CliRunner().invoke(
        app, ["evolve", "--resume", str(run), "env.kwargs.broken=false", "--no-progress"]
    )
    assert again.exit_code == 0, again.output
    assert (run / "checkpoints" / "LATEST").is_file() and not (run / STARTING).exists()


def test_a_failed_start_with_records_or_a_live_writer_is_kept(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    assert _evolve(tmp_path, broken=True).exit_code != 0
    # a live process holds .starting: never replaced under it
    with open(run / STARTING, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        busy = _evolve(tmp_path, broken=False)
    assert busy.exit_code == 2 and "being started by a live run" in busy.output
    # something beside what creation wrote (here: a note of yours): kept, and said why
    (run / "notes.txt").write_text("mine")
    kept = _evolve(tmp_path, broken=False)
    assert kept.exit_code == 2, kept.output
    assert "stopped before its first checkpoint" in kept.output and "notes.txt" in kept.output
    assert "--resume" in kept.output and (run / "notes.txt").read_text() == "mine"


def test_a_seed_library_that_cannot_be_copied_leaves_no_folder(tmp_path: Path) -> None:
    result = _evolve(tmp_path, skills=str(tmp_path / "no-such-library"))
    assert result.exit_code == 2 and "env.skills" in result.output, result.output
    assert _names(tmp_path / "runs") == []


def test_eta_text() -> None:
    from reskill_gym.runfolder import eta_text

    assert [eta_text(s) for s in (0, 40.4, 61, 3599, 3900, -5)] == [
        "ETA 0s",
        "ETA 40s",
        "ETA 1m",
        "ETA 59m",
        "ETA 1h05m",
        "ETA 0s",
    ]


def test_step_lines_without_the_bar_say_where_the_run_is_and_when_it_ends(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-progress drops the live bar, not the step lines: a background run's log shows
    each step, its events (control characters and markup shown as text) and an ETA from
    this process's pace (resumed steps do not count)."""
    import reskill_gym.runfolder as rf

    clock = iter([100.0, 100.0, 130.0, 160.0])
    monkeypatch.setattr(rf.time, "monotonic", lambda: next(clock))
    row = {"episode/count": 8, "episode/dropped": 1, "episode/reward_mean": 0.25}
    event = {"kind": "test_started", "message": "testing [bold]x\x1b[31m against y"}
    with rf.StepProgress(False, total=6, done=2) as bar:  # resumed at step 2 of 6
        bar.start_step(2, 8)
        bar.end_step(2, row | {"time/step_s": 30.0}, [event])  # 30 s a step, 3 steps left
        bar.start_step(3, 8)
        bar.end_step(3, row | {"time/step_s": 30.0}, [])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step   2/6 | rollouts 8 (1 dropped) | reward 0.25")
    assert lines[0].endswith("| 30s | ETA 1m")  # 30 s x 3 steps left
    assert lines[1] == "      test_started: testing [bold]x against y"
    assert lines[2].endswith("| ETA 1m") and lines[2].startswith("step   3/6")  # 30 s x 2
