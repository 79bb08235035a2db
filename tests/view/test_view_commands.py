"""`reskill view` on bad input: one `error:` line and exit code 2, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reskill_gym.cli import app

pytest.importorskip("starlette")


def _view(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["view", *args])
    return result.exit_code, result.output


def test_not_a_run_folder(tmp_path: Path) -> None:
    code, out = _view(str(tmp_path / "missing"))
    assert code == 2 and "error:" in out and "no such folder" in out
    (tmp_path / "empty").mkdir()
    code, out = _view(str(tmp_path / "empty"))
    assert code == 2 and "not a run folder" in out and "Traceback" not in out
    (tmp_path / "file.txt").write_text("x")
    code, out = _view(str(tmp_path / "file.txt"))
    assert code == 2 and "not a folder" in out
    # a veRL checkpoint root is pointed to its reskill/ folder
    (tmp_path / "ckpt" / "reskill").mkdir(parents=True)
    code, out = _view(str(tmp_path / "ckpt"))
    assert code == 2 and "<default_local_dir>/reskill" in out


def test_non_loopback_bind_needs_the_flag(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    code, out = _view(str(run), "--host", "0.0.0.0")
    assert code == 2 and "--allow-remote" in out


def test_busy_port(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, out = _view(str(run), "--port", str(busy.getsockname()[1]))
    assert code == 2 and "cannot listen on 127.0.0.1" in out and "--port 0" in out


def test_export_writes_one_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0, "episode/success_rate": 0.5}\n')
    code, out = _view(str(run), "--export", str(tmp_path / "out.html"))
    assert code == 0 and "opens offline" in out
    html = (tmp_path / "out.html").read_text()
    assert "<script src=" not in html and 'id="export-data"' in html and "uPlot" in html
