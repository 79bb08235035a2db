"""Fixtures for the hardening tests: tiny real libraries, the CLI, "one-line error" checks.

Test modules cannot import a conftest under ``--import-mode=importlib``, so the helpers
travel as the ``kit`` fixture (``kit.cli(...)``, ``kit.user_error(...)``, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reskill_gym.skills import Skill, SkillLibrary, Trigger

_runner = CliRunner()


def cli(*args: str):
    """Run ``reskill ARGS`` in-process (Typer's runner: stdout and stderr kept apart)."""
    from reskill_gym.cli import app

    return _runner.invoke(app, [str(a) for a in args])


def assert_user_error(res, *needles: str, code: int = 2) -> str:
    """The command failed cleanly: exit ``code``, no Python traceback, one ``error:`` line
    that names every needle. Returns the error line."""
    out = res.output  # stdout and stderr as the user saw them
    assert res.exit_code == code, (res.exit_code, out)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in out and 'File "' not in out, out
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def skill(name: str, content: str | None = None, **kw) -> Skill:
    kw.setdefault("description", f"Skill {name}.")
    kw.setdefault("trigger", Trigger(type="general"))
    return Skill(name=name, content=content or f"Do what {name} says.", **kw)


def write_raw_skill(parent: Path, name: str, front: str, body: str = "## Action\nDo it.\n") -> Path:
    """A SKILL.md written byte for byte (no validation): for bad inputs."""
    folder = parent / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return folder


@pytest.fixture
def library(tmp_path: Path) -> SkillLibrary:
    """A library (``tmp_path/lib``) with two versions: v1 = {a, b}, v2 = {a} (b deleted)."""
    from reskill_gym.skills import Operation

    root = tmp_path / "lib"
    lib = SkillLibrary.open(root, create=True)
    lib.commit([skill("a"), skill("b")], reason="v1")
    lib.commit([Operation.delete("b")], reason="v2")
    return lib


def snapshot_tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` (links not followed) with its bytes or link target."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "->" + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
    return out


def forge_version(lib: SkillLibrary, tree: dict[str, dict[str, str]], *, move_head: bool) -> str:
    """Write a version file the way an attacker who knows the format would (a valid id)."""
    from reskill_gym.skills.store import content_version

    vid = content_version(tree)
    body = json.dumps({"version": vid, "skills": tree}, sort_keys=True)
    (lib.store / "versions" / f"{vid}.json").write_text(body)
    if move_head:
        (lib.store / "HEAD").write_text(vid + "\n")
    return vid


class Kit:
    """The helpers above, as one fixture value."""

    cli = staticmethod(cli)
    user_error = staticmethod(assert_user_error)
    skill = staticmethod(skill)
    write_raw_skill = staticmethod(write_raw_skill)
    snapshot_tree = staticmethod(snapshot_tree)
    forge_version = staticmethod(forge_version)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
