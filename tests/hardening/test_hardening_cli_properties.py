"""Property-based: the ``reskill`` command line over random commands, flags, values, files and
link/FIFO placements.

Each example builds a small world in a fresh folder (a library with history, a plain skill
folder, a run folder, an eval output folder), puts links (to a victim folder outside the
world) and FIFOs where the project reads or writes, then runs one command with random
arguments in-process. Whatever it does, the command must:

- end with an exit code and no Python traceback (one ``error:`` line or a usage message);
- end in bounded time: an interval timer interrupts a command that blocks (a FIFO opened
  for reading waits forever), and that counts as a failure;
- write nothing outside the world (the victim folder and the world's parent are unchanged)
  and read nothing through a link (the victim's text reaches neither a file nor the terminal);
- write no configured secret: ``RESKILL_API_KEY`` is set to a short, shapeless secret
  that also appears in the inputs (reasons, run logs); no file the command created or
  changed may contain it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reskill_gym.skills import Operation, Skill, SkillLibrary, Trigger

SECRET = "Zq7-k3y"  # short and without any key shape: cut only as a configured secret
OUTSIDE = "outside-the-world-7f3a"  # in every file a link points at
LIMIT_S = 20.0  # far above any command here; a FIFO wait is infinite

CLI = settings(
    max_examples=40,
    deadline=None,  # time is bounded by the interval timer (LIMIT_S), not hypothesis
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# ----- the world -----------------------------------------------------------------------------
def _skill(name: str, content: str) -> Skill:
    return Skill(name=name, description=f"Skill {name}.", content=content, trigger=Trigger())


def _build_world(base: Path) -> dict[str, Path]:
    """A library with two versions, a plain skill folder, a run folder and an eval folder.
    The secret is in the inputs where an endpoint's echo lands (run logs, reasons), so a
    command that copies it into a new file fails. (Skill texts are the user's content and
    are copied as they are.)"""
    world = base / "world"
    lib = world / "lib"
    library = SkillLibrary.open(lib, create=True)
    library.commit([_skill("a", "Do a."), _skill("b", "Do b.")], reason="v1")
    library.commit([Operation.delete("b")], reason=f"v2 with {SECRET}")
    src = world / "src" / "plan"
    src.mkdir(parents=True)
    (src / "SKILL.md").write_text(
        "---\nname: plan\ndescription: Plan first.\n---\n## Action\nPlan.\n"
    )
    run = world / "run"
    run.mkdir()
    rows = [{"step": s, "episode/reward_mean": 0.5, "note": f"k {SECRET}"} for s in range(3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    event = {"kind": "creator_failed", "step": 1, "message": f"401: key {SECRET} refused"}
    (run / "events.jsonl").write_text(json.dumps(event) + "\n")
    (run / "config.yaml").write_text("run:\n  steps: 3\nenv:\n  name: search\n")
    out = world / "evalout"
    out.mkdir()
    victim = base / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text(f"user data {OUTSIDE}")
    (victim / "SKILL.md").write_text(f"---\nname: victim\ndescription: d\n---\n{OUTSIDE}\n")
    return {"world": world, "lib": lib, "src": world / "src", "run": run, "out": out,
            "victim": victim, "base": base}  # fmt: skip


#: Places where the project reads or writes, relative to the world.
PLACES = [
    "lib/.reskill/HEAD",
    "lib/.reskill/WORKTREE",
    "lib/.reskill/history.jsonl",
    "lib/a/SKILL.md",
    "lib/b",
    "src/plan/SKILL.md",
    "src/victim",
    "run/metrics.jsonl",
    "run/events.jsonl",
    "run/config.yaml",
    "run/report.md",
    "run/plots",
    "evalout/episodes.jsonl",
    "evalout/config.json",
    "evalout/report.md",
]


def _place(paths: dict[str, Path], where: str, kind: str) -> None:
    """Replace (or create) ``world/where`` with a link to the victim or a FIFO."""
    p = paths["world"] / where
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_dir() and not p.is_symlink():
        for child in sorted(p.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        p.rmdir()
    elif os.path.lexists(p):
        p.unlink()
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "link-file":
        p.symlink_to(paths["victim"] / ("SKILL.md" if p.name == "SKILL.md" else "keep.txt"))
    else:
        p.symlink_to(paths["victim"], target_is_directory=True)


def _files(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` without following links: bytes of regular files, a marker
    for anything else."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link->" + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
            elif not p.is_dir():
                out[rel] = "special"
    return out


# ----- arguments -----------------------------------------------------------------------------
texts = st.text(max_size=30) | st.sampled_from(
    ["", "-1", "0", "1", "2", "nan", "inf", "-inf", "1e308", "HEAD", "HEAD~1", "HEAD~200000",
     "../x", "a", "b", "plan", "[/x]", "\x1b[31mred", "x\ny", "\ud800", "9" * 30, SECRET]
)  # fmt: skip
numbers = st.sampled_from(["0", "1", "3", "-5", "nan", "inf", "1e9", "x", "2" * 25])


def _world_path(key: str) -> Callable[[dict[str, Path]], str]:
    return lambda w: str(w[key])


ARG = Callable[[dict[str, Path]], str]


def _argv(draw: Any) -> list[str | ARG]:
    lib: ARG = _world_path("lib")
    cmd = draw(st.sampled_from(
        ["ls", "show", "log", "diff", "status", "validate", "import", "export", "checkout",
         "rollback", "snapshot", "prune", "init", "report", "eval"]
    ))  # fmt: skip
    if cmd == "ls":
        return ["skills", "ls", "-L", lib, "-V", draw(texts)]
    if cmd == "show":
        return ["skills", "show", draw(texts), "-L", lib] + draw(st.sampled_from([[], ["--json"]]))
    if cmd == "log":
        return ["skills", "log", "-L", lib, "-n", draw(numbers)]
    if cmd == "diff":
        return ["skills", "diff", draw(texts), draw(texts), "-L", lib]
    if cmd == "status":
        return ["skills", "status", "-L", lib]
    if cmd == "validate":
        return ["skills", "validate", _world_path("src")]
    if cmd == "import":
        return ["skills", "import", _world_path("src"), "-L", lib, "-m", draw(texts)]
    if cmd == "export":
        return ["skills", "export", lambda w: str(w["world"] / "exported"), "-L", lib]
    if cmd == "checkout":
        return ["skills", "checkout", draw(texts), "-L", lib]
    if cmd == "rollback":
        return ["skills", "rollback", "-L", lib]
    if cmd == "snapshot":
        return ["skills", "snapshot", "-L", lib, "-m", draw(texts)]
    if cmd == "prune":
        return ["skills", "prune", "-L", lib, "--keep", draw(numbers)]
    if cmd == "init":
        return ["skills", "init", "-L", _world_path("src")]
    if cmd == "report":
        return ["report", _world_path("run")]
    flags = draw(st.lists(st.sampled_from(
        ["--seeds", "--temperature", "--timeout", "--max-turns", "--history", "--workers",
         "--max-tokens", "--mode", "--split", "--difficulty"]
    ), max_size=3, unique=True))  # fmt: skip
    argv: list[str | ARG] = ["eval", "--env", "search", "--agent", "python:os:getcwd", "--tasks",
                             "1", "--no-skills-baseline", "--skills", lib, "--out",
                             _world_path("out")]  # fmt: skip
    for f in flags:
        argv += [f, draw(numbers | texts)]
    return argv


@st.composite
def cases(draw: Any) -> tuple[list[str | ARG], list[tuple[str, str]]]:
    placements = draw(st.lists(
        st.tuples(st.sampled_from(PLACES), st.sampled_from(["fifo", "link-file", "link-dir"])),
        max_size=2, unique_by=lambda t: t[0],
    ))  # fmt: skip
    return _argv(draw), placements


# ----- bounded time --------------------------------------------------------------------------
class Hang(Exception):
    """Raised by the interval timer in a command that ran past LIMIT_S."""


@contextlib.contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ----- the property --------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESKILL_API_KEY", SECRET)
    monkeypatch.setenv("COLUMNS", "200")


_LIB: ARG = _world_path("lib")
_SRC: ARG = _world_path("src")
_RUN: ARG = _world_path("run")
_EVAL: list[str | ARG] = ["eval", "--env", "search", "--agent", "python:os:getcwd", "--tasks",
                          "1", "--no-skills-baseline", "--skills", _LIB, "--out",
                          _world_path("out")]  # fmt: skip


@CLI
@given(case=cases())
@example(case=(["skills", "log", "-L", _LIB], [("lib/.reskill/history.jsonl", "fifo")]))
@example(case=(["skills", "status", "-L", _LIB], [("lib/.reskill/WORKTREE", "fifo")]))
@example(case=(["skills", "ls", "-L", _LIB], [("lib/a/SKILL.md", "link-file")]))
@example(case=(["skills", "import", _SRC, "-L", _LIB], [("src/victim", "link-dir")]))
@example(case=(["skills", "checkout", "HEAD~1", "-L", _LIB], [("lib/b", "link-dir")]))
@example(case=(["skills", "snapshot", "-L", _LIB, "-m", SECRET], []))
@example(case=(["report", _RUN], [("run/plots", "link-dir"), ("run/events.jsonl", "fifo")]))
@example(case=(["report", _RUN], [("run/report.md", "link-file")]))
@example(case=(_EVAL, [("evalout/episodes.jsonl", "fifo")]))
@example(case=(_EVAL, [("evalout/report.md", "link-file"), ("evalout/config.json", "fifo")]))
@example(case=([*_EVAL, "--timeout", "inf"], []))
def test_any_command_is_clean_bounded_contained_and_keeps_secrets(kit, case) -> None:
    argv_spec, placements = case
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        paths = _build_world(base)
        for where, kind in placements:
            _place(paths, where, kind)
        argv = [a(paths) if callable(a) else a for a in argv_spec]
        victim_before = _files(paths["victim"])
        world_before = _files(paths["world"])
        t0 = time.monotonic()
        try:
            with _bounded(LIMIT_S):
                res = kit.cli(*argv)
        except Hang as exc:
            pytest.fail(f"{argv} with {placements}: {exc}")
        elapsed = time.monotonic() - t0
        out = res.output
        # clean: an exit code, never a traceback
        assert res.exception is None or isinstance(res.exception, SystemExit), (
            argv, placements, repr(res.exception), out[-2000:],
        )  # fmt: skip
        assert "Traceback" not in out, (argv, placements, out[-2000:])
        assert elapsed < LIMIT_S
        # contained: nothing outside the world changed
        assert _files(paths["victim"]) == victim_before, (argv, placements)
        assert sorted(p.name for p in base.iterdir()) == ["victim", "world"], (argv, placements)
        # no configured secret in what the command wrote, nor on the terminal
        after = _files(paths["world"])
        written = {k: v for k, v in after.items() if world_before.get(k) != v}
        leaked = [k for k, v in written.items() if isinstance(v, bytes) and SECRET.encode() in v]
        assert not leaked, (argv, placements, leaked)
        # and nothing read through a link: no text from the victim reached the world
        pulled = [k for k, v in written.items() if isinstance(v, bytes) and OUTSIDE.encode() in v]
        assert not pulled, (argv, placements, pulled)
        assert OUTSIDE not in out, (argv, placements, out[-2000:])
