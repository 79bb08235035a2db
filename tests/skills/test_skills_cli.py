"""`reskill skills ...` through Typer's CliRunner, on real folders."""

from __future__ import annotations

import json
from pathlib import Path

import skills_ref
from typer.testing import CliRunner

from reskill_gym.cli import app
from reskill_gym.skills import Skill, Trigger, write_skill

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str, ok: bool = True) -> str:
    res = runner.invoke(app, ["skills", *args])
    assert (res.exit_code == 0) == ok, (res.exit_code, res.output)
    return res.output


def test_validate_seed_libraries() -> None:
    out = run("validate", *(str(p) for p in sorted((REPO / "skills").iterdir())), "--json")
    data = json.loads(out)
    assert data["ok"] and data["checked"] >= 15
    table = run("validate", str(REPO / "skills" / "alfworld"))
    assert "0 with errors" in table


def test_validate_reports_bad_skill(tmp_path: Path) -> None:
    bad = tmp_path / "Bad"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: Bad\ndescription: d\n---\nx\n")
    data = json.loads(run("validate", str(bad), "--json", ok=False))
    assert not data["ok"] and any("lowercase" in e for e in data["results"][0]["errors"])


def test_edit_cycle_and_log(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    src = tmp_path / "src"
    write_skill(
        Skill(
            name="open-first",
            description="Open receptacles.",
            content="Open it first.",
            trigger=Trigger(type="observation_pattern", pattern=r"is closed"),
        ),
        src,
    )
    run("init", "-L", str(lib))
    v1 = json.loads(run("import", str(src), "-L", str(lib), "-m", "seed", "--json"))["version"]
    write_skill(
        Skill(
            name="open-first",
            description="Open receptacles.",
            content="Open it, then look inside.",
            trigger=Trigger(type="observation_pattern", pattern=r"is closed"),
        ),
        src,
    )
    write_skill(
        Skill(name="plan", description="Plan.", content="Plan.", trigger=Trigger(type="beginning")),
        src,
    )
    v2 = json.loads(run("import", str(src), "-L", str(lib), "--json"))["version"]
    ls = json.loads(run("ls", "-L", str(lib), "--json"))
    assert ls["library_version"] == v2
    assert [s["name"] for s in ls["skills"]] == ["open-first", "plan"]
    assert ls["skills"][0]["version"] == 2
    assert "plan" in run("ls", "-L", str(lib))
    assert "Open it, then look inside." in run("show", "open-first", "-L", str(lib))
    assert (
        json.loads(run("show", "plan", "-L", str(lib), "--json"))["trigger"]["type"] == "beginning"
    )
    run("show", "nope", "-L", str(lib), ok=False)
    d = json.loads(run("diff", v1, v2, "-L", str(lib), "--json"))
    assert d["added"] == ["plan"] and d["modified"] == ["open-first"]
    assert "+Open it, then look inside." in run("diff", v1, v2, "-L", str(lib))
    assert json.loads(run("checkout", v1[:6], "-L", str(lib), "--json"))["head"] == v1
    log = json.loads(run("log", "-L", str(lib), "--json"))
    kinds = [e["kind"] for e in log["history"]]
    assert kinds == ["init", "commit", "commit", "checkout"] and log["head"] == v1
    table = run("log", "-L", str(lib))
    assert "checkout" in table and "seed" in table
    run("checkout", "deadbeef", "-L", str(lib), ok=False)
    out = tmp_path / "export"
    run("export", str(out), "--format", "anthropic", "-L", str(lib), "--version", v2)
    assert sorted(p.name for p in out.iterdir()) == ["open-first", "plan"]
    for p in out.iterdir():
        assert skills_ref.validate(p) == []
    run("export", str(out), "--format", "openai", "-L", str(lib), ok=False)


def test_plain_folder_is_read_only(tmp_path: Path) -> None:
    data = json.loads(run("ls", "-L", str(REPO / "skills" / "search"), "--json"))
    assert len(data["skills"]) >= 5
    assert not (REPO / "skills" / "search" / ".reskill").exists()
    run("log", "-L", str(tmp_path), ok=False)  # not a library: clear error, exit 1
