"""The core stays light: importing reskill_gym pulls in no heavy framework."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym

HEAVY = ("torch", "verl", "ray", "vllm", "transformers", "textworld", "scienceworld")


def test_import_is_light() -> None:
    code = (
        "import sys, reskill_gym; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"


def test_ids_registered() -> None:
    import reskill_gym  # noqa: F401

    for env_id in ("ReSkill-ALFWorld-v0", "ReSkill-ScienceWorld-v0", "ReSkill-Search-v0"):
        assert env_id in gym.registry
