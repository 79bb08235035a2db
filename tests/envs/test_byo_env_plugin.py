"""examples/byo_env, a third-party env package, installed into a fresh venv: its entry point
alone makes reskill env check, eval, evolve and verl prepare work on it (reskill_gym untouched).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "byo_env"
RESKILL = "import sys; from reskill_gym.cli import main; sys.argv[0] = 'reskill'; main()"


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, ok: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if ok and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def test_plugin_package_in_a_fresh_venv(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    # 1. the example's wheel, built from a copy (nothing written into the checkout)
    src, dist = tmp_path / "byo_env", tmp_path / "dist"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist),
          str(src)], cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("byo_env-*.whl")

    # 2. a fresh venv with the plugin alone installed; reskill-gym and its deps are visible
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    vpy = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps", "--no-index"]
    _run([*pip, "-q", str(wheel)], cwd=tmp_path)
    site = Path(
        _run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
             cwd=tmp_path).strip()
    )  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths = [str(REPO), str(REPO / "adapters" / "local"), str(REPO / "adapters" / "verl")]
    (site / "_project_deps.pth").write_text("\n".join([*paths, *sorted(ours)]) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESKILL_SKILLS_DIR")}
    env |= {"RESKILL_CACHE": str(tmp_path / "cache"), "PYTHONNOUSERSITE": "1"}

    def reskill(*args: str, ok: bool = True) -> str:
        return _run([str(vpy), "-c", RESKILL, *args], cwd=work, env=env, ok=ok)

    # 3. the registry finds it; the contract holds
    assert "safe" in reskill("env", "list")
    check = reskill("env", "check", "safe")
    assert "FAIL" not in check and "seed skills" in check, check
    assert "did you mean 'safe'" in reskill("env", "check", "saf", ok=False)

    # 4. eval with a python: agent and the plugin's seed library
    out = reskill(
        "eval", "--env", "safe", "--agent", "python:byo_env:act",
        "--skills", "seed", "--tasks", "3", "--split", "unseen", "--out", str(tmp_path / "eval"),
    )  # fmt: skip
    assert (tmp_path / "eval" / "report.md").is_file(), out
    episodes = (tmp_path / "eval" / "episodes.jsonl").read_text().splitlines()
    assert episodes and all(json.loads(e)["task_id"].startswith("safe-2") for e in episodes)

    # 5. evolve, two steps
    reskill(
        "evolve", "--config", str(EXAMPLE / "evolve.yaml"), f"run.out_dir={tmp_path}",
        "run.name=evo", "--no-progress",
    )  # fmt: skip
    rows = (tmp_path / "evo" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [0, 1]
    assert (tmp_path / "evo" / "skills" / "read-the-dial" / "SKILL.md").is_file()

    # 6. veRL dataset rows
    if _run([str(vpy), "-c", "import pyarrow"], cwd=work, env=env, ok=False).strip():
        pytest.skip("pyarrow not installed")
    reskill("verl", "prepare", "--env", "safe", "--out", str(tmp_path / "data"))
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["env"] == "safe" and manifest["env_id"] == "ReSkill-safe-v0"
