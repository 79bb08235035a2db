"""An empty ``$ALFWORLD_DATA`` / ``data_dir`` counts as unset (launchers forward unset
variables as ``""``), and never reaches the ``alfworld`` import in the engine worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reskill_gym.envs.alfworld.env import ALFWorldEnv


def test_alfworld_empty_data_var_is_unset_for_auto(monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", "")
    env = ALFWorldEnv(difficulty="tiny", source="auto")
    try:
        assert env.source == "generated"
        # removed, so the engine worker (it inherits os.environ) can import alfworld
        assert "ALFWORLD_DATA" not in os.environ
    finally:
        env.close()
    done = subprocess.run(
        [sys.executable, "-c", "import alfworld.info"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_alfworld_empty_data_var_breaks_the_alfworld_import():
    """Why the env removes it: the wheel's import calls mkdirs($ALFWORLD_DATA)."""
    done = subprocess.run(
        [sys.executable, "-c", "import alfworld.info"],
        env={**os.environ, "ALFWORLD_DATA": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "FileNotFoundError" in done.stderr


def test_alfworld_official_with_empty_data_fails_loudly(monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", "  ")
    with pytest.raises(FileNotFoundError, match=r"ALFWORLD_DATA \(unset\)"):
        ALFWorldEnv(source="official")
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"ALFWORLD_DATA \(unset\)"):
        ALFWorldEnv(source="official", data_dir="")


def test_alfworld_empty_data_dir_is_unset_for_auto(monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    env = ALFWorldEnv(difficulty="tiny", source="auto", data_dir="")
    try:
        assert env.source == "generated"
    finally:
        env.close()
