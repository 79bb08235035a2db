"""The core stays light: importing reskill_gym pulls in no heavy framework."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym

HEAVY = ("torch", "verl", "ray", "vllm", "transformers", "textworld", "scienceworld")


def test_import_is_light() -> None:
    code = f"import sys, reskill_gym; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"


def test_cli_is_light() -> None:
    """``reskill --help`` loads every command (adapters included, by entry point), no framework."""
    code = f"import sys, reskill_gym.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by the CLI: {out.stdout}"


def test_ids_registered() -> None:
    import reskill_gym  # noqa: F401

    for env_id in ("ReSkill-ALFWorld-v0", "ReSkill-ScienceWorld-v0", "ReSkill-Search-v0"):
        assert env_id in gym.registry


def test_core_imports_no_adapter() -> None:
    """Adapters depend on the core, never the reverse: commands attach by entry point."""
    import re
    from pathlib import Path

    core = Path(__file__).resolve().parents[1] / "reskill_gym"
    pattern = re.compile(r"^\s*(from|import)\s+reskill_(local|verl)\b", re.M)
    offenders = [
        p.relative_to(core.parent).as_posix()
        for p in core.rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_train_and_verl_commands_arrive_by_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="reskill_gym.cli")}
    assert names.get("train") == "reskill_local.cli:train_command"
    assert names.get("verl") == "reskill_verl.cli:verl_app"
