"""Run-folder files: links and FIFOs refused, hostile lines skipped, huge values clipped."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from reskill_gym.evaluation.episode_log import EpisodeLog
from reskill_gym.safe_files import UnsafeFileError


def _run(tmp_path: Path, *rows: dict | bytes) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    (run / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return run


def test_report_skips_huge_and_overflowing_numbers(kit, tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        {"step": 0, "episode/reward_mean": 0.5},
        b'{"step": 1, "episode/reward_mean": 1' + b"0" * 5000 + b"}",  # over the digit limit
        {"step": 10**400, "episode/reward_mean": 0.5},
        {"step": 2, "episode/reward_mean": 10**400, "episode/success_rate": 1e308 * 10},
        b'{"step": 3, "time/step_s": ' + b"[" * 50_000 + b"]}",
    )
    res = kit.cli("report", run)
    assert res.exit_code == 0, res.output
    report = (run / "report.md").read_text()
    assert "| 0 | 0.50 |" in report and "| 2 | - |" in report


def test_report_clips_a_megabyte_candidate_id(kit, tmp_path: Path) -> None:
    run = _run(tmp_path, {"step": 0, "episode/reward_mean": 0.5})
    cand = "c" * 1_000_000
    events = [
        {"kind": "candidate_committed", "step": 0, "data": {"candidate": cand, "base": cand}},
        {"kind": "test_decided", "step": 0, "data": {"candidates": [cand], "reason": "r" * 10**6}},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    t0 = time.perf_counter()
    res = kit.cli("report", run)
    assert res.exit_code == 0, res.output
    assert time.perf_counter() - t0 < 60
    assert (run / "report.md").stat().st_size < 20_000


@pytest.mark.parametrize("where", ["plots", "plots/reward_per_arm.png"])
def test_report_never_writes_through_a_link(kit, tmp_path: Path, where: str) -> None:
    run = _run(tmp_path, {"step": 0, "episode/reward_mean": 0.5})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "reward_per_arm.png").write_bytes(b"victim")
    if where == "plots":
        (run / "plots").symlink_to(outside, target_is_directory=True)
    else:
        (run / "plots").mkdir()
        (run / where).symlink_to(outside / "reward_per_arm.png")
    res = kit.cli("report", run)
    assert (outside / "reward_per_arm.png").read_bytes() == b"victim"
    if where == "plots":
        kit.user_error(res, "plots", "link")
    else:  # the link is replaced by the plot, the file it pointed at is untouched
        assert res.exit_code == 0 and not (run / where).is_symlink()


@pytest.mark.parametrize("name", ["metrics.jsonl", "events.jsonl"])
def test_report_refuses_fifo_and_linked_run_files(kit, tmp_path: Path, name: str) -> None:
    run = _run(tmp_path, {"step": 0, "episode/reward_mean": 0.5})
    (run / name).unlink(missing_ok=True)
    os.mkfifo(run / name)
    t0 = time.perf_counter()
    kit.user_error(kit.cli("report", run), name, "FIFO")
    assert time.perf_counter() - t0 < 30
    (run / name).unlink()
    (tmp_path / "secret.jsonl").write_text('{"step": 0}\n')
    (run / name).symlink_to(tmp_path / "secret.jsonl")
    kit.user_error(kit.cli("report", run), name, "link")


@pytest.mark.parametrize("special", ["link", "fifo"])
def test_eval_log_refuses_a_linked_or_fifo_episodes_file(tmp_path: Path, special: str) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b'{"key": "a"}\n{"key": "b", "torn')
    log = tmp_path / "out" / "episodes.jsonl"
    log.parent.mkdir()
    if special == "link":
        log.symlink_to(target)
    else:
        os.mkfifo(log)
    t0 = time.perf_counter()
    with pytest.raises(UnsafeFileError):
        EpisodeLog(log)
    assert time.perf_counter() - t0 < 5
    assert target.read_bytes().endswith(b"torn")  # neither truncated nor appended to


def test_eval_log_skips_deeply_nested_and_huge_lines(tmp_path: Path) -> None:
    log = tmp_path / "episodes.jsonl"
    log.write_bytes(
        b'{"key": "a"}\n' + b'{"k": ' * 100_000 + b"1" + b"}" * 100_000 + b'\n{"key": "b"}\n'
    )
    assert [r["key"] for r in EpisodeLog(log).raw_records()] == ["a", "b"]


def test_run_folder_listings_skip_links_and_fifos(tmp_path: Path) -> None:
    """Checkpoints and ``episodes/`` are listed through ``safe_files.list_folder``: a
    linked ``step_*`` folder is never taken as a checkpoint (its ``run.json`` lies outside),
    a FIFO among step files is left out without blocking, and checkpoint clean-up never
    deletes through a link."""
    from reskill_gym.runfolder import latest_checkpoint, write_checkpoint
    from reskill_gym.step_episodes import StepEpisodes, truncate_step_episodes

    run, outside = tmp_path / "run", tmp_path / "outside"
    (outside / "step_000009").mkdir(parents=True)
    (outside / "step_000009" / "run.json").write_text('{"steps_done": 9}')
    first = write_checkpoint(run, 1, lambda folder: None, {}, keep=1)
    (run / "checkpoints" / "LATEST").unlink()  # fall back to listing the folders
    (run / "checkpoints" / "step_000009").symlink_to(outside / "step_000009")
    os.mkfifo(run / "checkpoints" / "step_000010")
    assert latest_checkpoint(run) == first
    write_checkpoint(run, 2, lambda folder: None, {}, keep=1)  # prunes step_000001 only
    assert not first.exists() and (outside / "step_000009" / "run.json").is_file()
    episodes = run / "episodes"
    episodes.mkdir()
    os.mkfifo(episodes / "step_000000.jsonl.gz")
    (episodes / "step_000001.jsonl.gz").symlink_to(outside / "step_000009" / "run.json")
    t0 = time.perf_counter()
    assert StepEpisodes(run).refresh() is False
    assert truncate_step_episodes(run, 0) == 0
    assert time.perf_counter() - t0 < 5
    assert (outside / "step_000009" / "run.json").is_file()
