"""The README's "Your own environment" section runs as printed.

The section's three files (``lock_env.py``, ``pyproject.toml``, ``evolve.yaml``) are taken
from the README's code blocks, not copied here, so an edit that breaks them fails this test:
the env passes ``reskill env check``'s contract, the entry point names the spec, and
``reskill evolve`` runs on the README's config (with a scripted agent in place of SmolLM2 to
keep it fast; the slow plugin test installs a real package into a fresh venv).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib
import yaml

from reskill_gym.envs.contract import check_env_contract
from reskill_gym.envs.registration import register, unregister

README = Path(__file__).resolve().parents[2] / "README.md"


def _section_files() -> dict[str, str]:
    """The code blocks of the section, keyed by the file name on their first line."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Your own environment", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```\w+\n(.*?)```", section, flags=re.S):
        first = block.splitlines()[0]
        match = re.match(r"# (\S+\.(?:py|toml|yaml))", first)
        if match:
            files[match.group(1)] = block
    return files


@pytest.fixture
def lock_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    files = _section_files()
    assert set(files) == {"lock_env.py", "pyproject.toml", "evolve.yaml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "lock_agent.py").write_text(
        "def act(messages, info):\n"
        "    last = messages[-1]['content']\n"
        "    if 'Warm near' in last:\n"
        "        code = last.split('Warm near ')[1][0]\n"
        "        return f'<action>turn dial to {code}</action>'\n"
        "    return '<action>listen</action>'\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("lock_env")
    register(module.SPEC, replace=True)
    yield module
    unregister("lock")
    sys.modules.pop("lock_env", None)
    sys.modules.pop("lock_agent", None)


def test_the_entry_point_names_the_spec(lock_module: object, tmp_path: Path) -> None:
    project = tomllib.loads((tmp_path / "pyproject.toml").read_text(encoding="utf-8"))
    target = project["project"]["entry-points"]["reskill_gym.envs"]["lock"]
    module, attr = target.split(":")
    assert getattr(importlib.import_module(module), attr) is lock_module.SPEC  # type: ignore[attr-defined]


def test_the_env_passes_the_contract(lock_module: object) -> None:
    lines = check_env_contract("lock")
    failed = [line.render() for line in lines if line.required and not line.ok]
    assert not failed, failed
    assert any(line.piece == "check_skill_env" and line.ok for line in lines)


def test_evolve_runs_on_the_readme_config(lock_module: object, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    config = yaml.safe_load((tmp_path / "evolve.yaml").read_text(encoding="utf-8"))
    assert config["agent"]["spec"] == "local:default"  # the README's agent; swapped for speed
    result = CliRunner().invoke(
        app,
        [
            "evolve",
            "--config",
            str(tmp_path / "evolve.yaml"),
            "--no-progress",
            "agent.spec=python:lock_agent:act",
            "run.steps=2",
            f"run.out_dir={tmp_path}",
            "run.name=lock",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(r) for r in (tmp_path / "lock" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert all(r["episode/success_rate"] == 1.0 for r in rows)  # listen, then the warm digit
