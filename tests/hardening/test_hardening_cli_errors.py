"""Bad input gives one ``error:`` line and exit code 2 (never a traceback, never silence)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import reskill_gym  # noqa: F401 - registers the ReSkill gym ids
from reskill_gym.skills import LibraryError, SkillError, SkillLibrary
from reskill_gym.skills.bundle import BundleTemplate

BAD_BYTES = "---\nname: bin\ndescription: caf\xe9\n---\n## Action\nx\n".encode("latin-1")


@pytest.mark.parametrize(
    "args, needle",
    [
        (("ls", "-V", "HEAD~abc"), "HEAD~abc"),
        (("diff", "HEAD~x"), "HEAD~x"),
        (("checkout", "HEAD~q"), "HEAD~q"),
        (("ls", "-V", "HEAD~-1"), "HEAD~-1"),
        (("ls", "-V", ""), "empty version"),
        (("show", "a", "-V", "   "), "empty version"),
        (("checkout", "../../etc"), "unknown version"),
        (("diff", "HEAD~9"), "history is shorter"),
        (("show", "nope"), "no skill 'nope'"),
    ],
)
def test_bad_version_expressions(kit, library: SkillLibrary, args: tuple, needle: str) -> None:
    kit.user_error(kit.cli("skills", *args, "-L", library.root), needle)


@pytest.mark.parametrize("args", [("log", "-n", "-1"), ("prune", "--keep", "-1")])
def test_negative_counts_are_usage_errors(kit, library: SkillLibrary, args: tuple) -> None:
    res = kit.cli("skills", *args, "-L", library.root)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert args[-2] in res.output  # click names the option
    assert len(SkillLibrary(library.root).versions()) == 3  # prune did not run


def test_library_api_rejects_negative_counts(library: SkillLibrary) -> None:
    with pytest.raises(LibraryError, match="non-negative"):
        library.history(last=-1)
    with pytest.raises(LibraryError, match="non-negative"):
        library.prune(keep=-1)
    assert library.history(last=0) == []
    assert library.resolve("HEAD~") == library.resolve("HEAD~1")  # as in git


def test_paths_that_are_files(kit, tmp_path: Path, library: SkillLibrary) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    src = tmp_path / "src"
    kit.write_raw_skill(src, "plan", "name: plan\ndescription: d\n")
    kit.user_error(kit.cli("skills", "import", src, "-L", afile), "afile", "is a file")
    kit.user_error(kit.cli("skills", "init", "-L", afile), "afile", "is a file")
    kit.user_error(kit.cli("skills", "export", afile, "-L", library.root), "afile", "is a file")
    kit.user_error(kit.cli("skills", "export", afile / "sub", "-L", library.root), "afile")
    kit.user_error(kit.cli("skills", "import", tmp_path / "missing", "-L", library.root), "missing")
    assert afile.read_text() == "x"


def test_non_utf8_skill_md(kit, tmp_path: Path) -> None:
    root = tmp_path / "seed"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "SKILL.md").write_bytes(BAD_BYTES)
    res = kit.cli("skills", "validate", root)
    assert res.exit_code == 1 and "not UTF-8" in res.output and "Traceback" not in res.output
    for args in (("ls",), ("show", "bin"), ("init",)):
        kit.user_error(kit.cli("skills", *args, "-L", root), "bin/SKILL.md", "not UTF-8")
    assert not (root / ".reskill").exists()  # a failed init leaves no half-made store
    kit.user_error(kit.cli("skills", "import", root, "-L", tmp_path / "lib"), "not UTF-8")


def test_one_megabyte_body_names_the_file(kit, tmp_path: Path) -> None:
    src = tmp_path / "src"
    kit.write_raw_skill(src, "huge", "name: huge\ndescription: d\n", body="x" * 1_000_000)
    line = kit.user_error(kit.cli("skills", "import", src, "-L", tmp_path / "lib"), "huge/SKILL.md")
    assert "limit is 500" in line
    kit.write_raw_skill(src, "huge", "name: huge\ndescription: d\n", body="x" * 1_100_000)
    kit.user_error(kit.cli("skills", "import", src, "-L", tmp_path / "lib"), "huge/SKILL.md")


def test_creator_argument_validation(kit, tmp_path: Path) -> None:
    res = kit.cli("creator", "record", "--env", "search", "-o", tmp_path)
    assert res.exit_code == 2 and "'--out'" in res.output and "Traceback" not in res.output
    for flag, value in (("--tasks", "0"), ("--group-size", "-1")):
        res = kit.cli("creator", "record", "--env", "search", flag, value, "-o", tmp_path / "r")
        assert res.exit_code == 2 and flag in res.output and "Traceback" not in res.output
    kit.user_error(
        kit.cli("creator", "record", "--env", "alfworld", "--difficulty", "huge", "-o", "r.jsonl"),
        "--difficulty",
    )
    nowhere = tmp_path / "nonexistent"
    res = kit.cli("creator", "run", "-r", tmp_path / "r.jsonl", "-L", nowhere)
    assert res.exit_code == 2 and "does not exist" in res.output and not nowhere.exists()
    assert not (tmp_path / "r").exists()


def test_eval_argument_validation(kit, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ("eval", "--env", "alfworld", "--agent", "python:os:getcwd")
    kit.user_error(kit.cli(*base, "--difficulty", "huge", "--out", tmp_path / "o"), "huge", "tiny")
    kit.user_error(kit.cli(*base, "--out", afile), "--out", "is a file")
    # a negative seed used to reach numpy's seeding and print a traceback
    kit.user_error(kit.cli(*base, "--seeds", "-5", "--out", tmp_path / "o"), "seeds", "[-5]")
    kit.user_error(kit.cli(*base, "--seeds", str(2**40), "--out", tmp_path / "o"), "seeds")
    assert not (tmp_path / "o").exists() and afile.read_text() == "x"


def test_gym_make_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SkillError, match=r"template.*unknown field \{nope\}"):
        gym.make("ReSkill-Search-v0", template="{nope}")
    with pytest.raises(SkillError, match="template.item"):
        BundleTemplate(item="{name.__class__.__init__.__globals__}")
    with pytest.raises(SkillError, match="template.item"):
        BundleTemplate(item="{content")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "SKILL.md").write_bytes(BAD_BYTES)
    with pytest.raises(SkillError, match="bin/SKILL.md.*not UTF-8"):
        gym.make("ReSkill-Search-v0", skills=str(tmp_path))


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    """The installed entry point, in a real process: stderr is one line, exit code 2."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "SKILL.md").write_bytes(BAD_BYTES)
    env = {**os.environ, "COLUMNS": "200"}
    code = "from reskill_gym.cli import main; main()"
    for args in (["skills", "ls", "-L", str(tmp_path)], ["skills", "log", "-L", str(tmp_path)]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, proc.stderr


def test_a_lone_surrogate_in_a_reply_or_an_action_is_replaced_not_a_crash(
    kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy's ``"\\ud800"`` used to crash the episode log's JSON encoding and engines."""
    import json

    from reskill_gym.envs.search import SearchEnv

    env = SearchEnv(cache_dir=str(tmp_path / "cache"))
    env.reset(options={"task_id": env.task_ids("train")[0]})
    obs, *_ = env.step("search[\ud800 capital]")
    assert isinstance(obs, str)
    obs.encode("utf-8")
    env.close()
    (tmp_path / "surrogate_policy.py").write_text(
        "def act(messages, info):\n    return '<answer> \\ud800 </answer>'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("surrogate_policy", None)
    out = tmp_path / "o"
    res = kit.cli(
        "eval", "--env", "search", "--agent", "python:surrogate_policy:act", "--tasks", "1",
        "--no-skills-baseline", "--skills", str(Path(__file__).resolve().parents[2] / "skills" / "search"),
        "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0 and res.exception is None, res.output
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert rows and not any(r.get("error") for r in rows), rows
