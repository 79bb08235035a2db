"""The built wheel works outside the checkout, as a new user would install it.

Builds an sdist from a copy of the tree and the wheel from that sdist (so both are checked),
installs the wheel with ``--no-deps`` into a fresh venv in ``tmp_path``, and runs it from a
folder outside the repository with ``RESKILL_SKILLS_DIR`` / ``RESKILL_VERL_CONFIG_DIR``
unset: ``gym.make`` + ``reset`` for the three env ids with their seed libraries, and
``reskill verl train --dry-run`` for a plain and a published config. The fresh venv sees the
project's dependencies through a ``.pth`` line naming this interpreter's site-packages; that
line does not run the dev install's editable finder (only ``.pth`` files in a site folder
run), and the test asserts the packages it imports come from the new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from reskill_gym.envs.registration import gym_ids
from reskill_gym.skills import LibraryView

pytestmark = pytest.mark.slow

# every built-in env that ships a seed library (``gym`` adapts an env named at run time)
_SEEDED = {name: gym_id for name, gym_id in gym_ids().items() if name != "gym"}

REPO = Path(__file__).resolve().parent.parent
# What a fresh clone would not have (the .gitignore list, VCS and tool caches).
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "*.egg-info",
    "build",
    "dist",
    "runs",
    "data",
    "wandb",
    ".cache",
    ".*_cache",
    ".hypothesis",
    "__pycache__",
    "*.pyc",
)
_SCRUBBED_ENV = ("RESKILL_SKILLS_DIR", "RESKILL_VERL_CONFIG_DIR", "ALFWORLD_DATA", "PYTHONPATH")

PROBE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import gymnasium as gym
    import reskill_gym, reskill_verl
    from reskill_gym.envs.registration import seed_library_path

    KWARGS = {
        "alfworld": {"difficulty": "tiny", "source": "generated"},
        "scienceworld": {"max_turns": 5},
        "search": {},
        "textworld": {"difficulty": "tiny", "games": {"train": 1}},
    }
    out = {"reskill_gym": reskill_gym.__file__, "reskill_verl": reskill_verl.__file__, "envs": {}}
    for name, env_id in json.loads(sys.argv[1]).items():
        t0 = time.perf_counter()
        env = gym.make(env_id, **KWARGS[name])
        try:
            obs, info = env.reset(seed=0)
            view = env.get_wrapper_attr("view")
            out["envs"][name] = {
                "seed_path": str(seed_library_path(name)),
                "names": list(view.names),
                "version": view.version,
                "info_version": info["library_version"],
                "skill_ids": list(info["skill_ids"]),
                "obs_chars": len(obs),
                "seconds": round(time.perf_counter() - t0, 2),
            }
        finally:
            env.close()
    print(json.dumps(out))
    """
)


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` and return its stdout; on failure, fail the test with its whole output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _files_under(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_wheel_from_sdist_works_outside_the_checkout(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the CLI prints resolved paths
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # 1. sdist from a clean copy of the tree, then the wheel from that sdist.
    src, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(REPO, src, ignore=_NOT_IN_A_CLONE)
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)]
    proc = subprocess.run(build, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the build failed:\n{log}"
    assert "deprecat" not in log.lower(), f"the build warns about a deprecation:\n{log}"
    (wheel,) = dist.glob("reskill_gym-*.whl")
    timings["build"] = time.perf_counter() - t0

    # 2. The wheel carries the seed libraries and the veRL configs, file for file.
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for src_dir, pkg_dir in (
        ("skills", "reskill_gym/seed_skills"),
        ("configs/verl", "reskill_verl/configs"),
    ):
        expected = {f"{pkg_dir}/{rel}" for rel in _files_under(REPO / src_dir)}
        assert expected and expected <= names, sorted(expected - names)
    assert "reskill_verl/agent_loops.yaml" in names
    assert "reskill_gym/py.typed" in names
    metadata = (
        zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    )
    assert "License-Expression: Apache-2.0" in metadata

    # 3. A fresh venv outside the repository; the wheel without deps.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    vpy = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps"]
    _run([*pip, "--no-index", "-q", str(wheel)], cwd=tmp_path)
    # Only now (pip must not see, and uninstall, the dev install) the deps become visible.
    site = Path(
        _run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
        ).strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_project_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    timings["install"] = time.perf_counter() - t0 - timings["build"]

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env |= {"RESKILL_CACHE": str(tmp_path / "cache"), "PYTHONNOUSERSITE": "1"}

    # 4. gym.make + reset for all three ids with their seed libraries.
    t1 = time.perf_counter()
    probe = json.loads(
        _run([str(vpy), "-c", PROBE, json.dumps(_SEEDED)], cwd=work, env=env)
        .strip()
        .splitlines()[-1]
    )
    timings["envs"] = time.perf_counter() - t1
    package = Path(probe["reskill_gym"]).parent
    assert package.is_relative_to(venv), f"reskill_gym imported from {package}, not the venv"
    assert Path(probe["reskill_verl"]).is_relative_to(venv)
    assert set(probe["envs"]) == set(_SEEDED)
    for name, got in probe["envs"].items():
        assert Path(got["seed_path"]) == package / "seed_skills" / name
        shipped = LibraryView.from_folder(REPO / "skills" / name)
        assert got["names"] == list(shipped.names) and got["names"]
        assert got["version"] == got["info_version"] == shipped.version
        assert got["skill_ids"], f"{name}: no seed skill fired on the first turn"

    # 5. The veRL launcher finds its configs inside the installed package.
    configs = venv.glob("lib/python*/site-packages/reskill_verl/configs")
    (config_dir,) = list(configs)
    for extra in ([], ["--config-name", "published/alfworld"]):
        out = _run(
            [str(venv / "bin" / "reskill"), "verl", "train", *extra, "--dry-run"], cwd=work, env=env
        )
        assert f"--config-path {config_dir} " in out, out
        name = extra[-1] if extra else "alfworld"
        assert f"--config-name {name}" in out and (config_dir / f"{name}.yaml").is_file()

    timings["total"] = time.perf_counter() - t0
    print(
        "wheel test seconds:",
        {k: round(v, 1) for k, v in timings.items()},
        {n: e["seconds"] for n, e in probe["envs"].items()},
    )
