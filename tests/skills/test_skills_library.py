"""SkillLibrary: versions, history, views, crash safety and concurrent writers."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reskill_gym.skills import (
    LibraryError,
    LibraryView,
    Operation,
    Skill,
    SkillError,
    SkillLibrary,
    Trigger,
    TurnContext,
    read_skill,
)
from reskill_gym.skills.skillmd import spec_errors

REPO = Path(__file__).resolve().parents[2]


def sk(name: str, kind: str = "general", pattern: str | None = None, **kw) -> Skill:
    kw.setdefault("description", f"Skill {name}.")
    kw.setdefault("content", f"Do what {name} says.")
    return Skill(name=name, trigger=Trigger(type=kind, pattern=pattern), **kw)


def test_open_plain_seed_folder(skill_folder: Path) -> None:
    ro = LibraryView.from_folder(skill_folder)
    assert not (skill_folder / ".reskill").exists()  # read-only view writes nothing
    lib = SkillLibrary.open(skill_folder, create=True)
    assert lib.view().names == ("after-take", "open-closed", "plan-first")
    assert lib.head == ro.version  # same content, same id, store or folder
    (init,) = lib.history()
    assert init.kind == "init" and {o.name for o in init.operations} == set(ro.names)
    with pytest.raises(LibraryError, match="not a skill library"):
        SkillLibrary.open(skill_folder.parent / "nothing-here")


def test_commit_history_diff_checkout_rollback(tmp_path: Path) -> None:
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    v0 = lib.head
    v1 = lib.commit(
        [sk("a"), sk("b")], reason="two", step=1, proposed_by="creator", extra={"p_b": 0.7}
    )
    a2 = lib.view().get("a").replace(content="Changed.")
    v2 = lib.commit([a2, Operation.delete("b"), Operation.add(sk("c"))], reason="edit", step=2)
    view = lib.view()
    assert view.version == v2 and view.names == ("a", "c")
    a = view.get("a")
    assert a.version == 2 and a.created_at_step == 2  # bumped and re-stamped
    assert a.provenance.parent_version == v1 and a.provenance.rationale == "edit"
    assert (tmp_path / "lib" / "a" / "SKILL.md").read_text() == view.text("a")  # working copy
    assert not (tmp_path / "lib" / "b").exists()
    hist = lib.history()
    assert [e.kind for e in hist] == ["init", "commit", "commit"]
    assert hist[1].parent == v0 and hist[1].extra == {"p_b": 0.7}
    assert [(o.op, o.name) for o in hist[2].operations] == [
        ("modify", "a"),
        ("delete", "b"),
        ("add", "c"),
    ]
    d = lib.diff(v1, v2)
    assert (d.added, d.removed, d.modified) == (["c"], ["b"], ["a"])
    assert "+Changed." in d.patches["a"]
    assert lib.resolve("HEAD~1") == v1 and lib.resolve(v1[:6]) == v1
    assert lib.rollback() == v1 and lib.view().names == ("a", "b")
    assert (tmp_path / "lib" / "b" / "SKILL.md").exists()
    assert lib.checkout(v2[:8]) == v2
    assert [e.kind for e in lib.history()][-2:] == ["rollback", "checkout"]
    # identical content: no new version
    assert lib.commit([lib.view().get("c")], reason="noop") == v2
    for name in lib.view().names:
        assert spec_errors(tmp_path / "lib" / name) == []


def test_commit_errors(tmp_path: Path) -> None:
    lib = SkillLibrary.open(tmp_path, create=True)
    lib.commit([sk("a")], reason="x")
    with pytest.raises(LibraryError, match="cannot add 'a'"):
        lib.commit([Operation.add(sk("a"))], reason="x")
    with pytest.raises(LibraryError, match="cannot delete 'zz'"):
        lib.commit([Operation.delete("zz")], reason="x")
    with pytest.raises(SkillError, match="content"):
        lib.commit([sk("long", content="x" * 501)], reason="x")
    with pytest.raises(LibraryError, match="unknown version"):
        lib.view("ffffffff")
    with pytest.raises(LibraryError, match="no parent"):
        SkillLibrary.open(tmp_path / "fresh", create=True).rollback()


def test_set_head_false_and_events(tmp_path: Path) -> None:
    lib = SkillLibrary.open(tmp_path, create=True)
    a = lib.commit([sk("a")], reason="incumbent")
    b = lib.commit([sk("b")], reason="candidate", set_head=False)
    assert lib.head == a and lib.view(b).names == ("a", "b")
    assert not (tmp_path / "b").exists()
    lib.append_event({"test": "B vs A", "p_b_better": 0.91, "decision": "accept"}, step=7)
    lib.checkout(b, reason="accepted")
    ev = [e for e in lib.history() if e.kind == "event"][0]
    assert ev.extra["decision"] == "accept" and ev.step == 7
    assert lib.history()[-1].kind == "checkout" and lib.head == b


def test_hand_edits_need_snapshot(tmp_path: Path) -> None:
    lib = SkillLibrary.open(tmp_path, create=True)
    lib.commit([sk("a")], reason="x")
    md = tmp_path / "a" / "SKILL.md"
    md.write_text(md.read_text().replace("Do what a says.", "Edited by hand."))
    assert lib.status()["modified"] == ["a"]
    with pytest.raises(LibraryError, match="snapshot"):
        lib.commit([sk("b")], reason="would overwrite the edit")
    v = lib.snapshot(reason="hand edit")
    assert lib.view(v).get("a").content == "Edited by hand."
    assert lib.history()[-1].operations[0].op == "modify"


def test_prune_keeps_recent_head_and_referenced(tmp_path: Path) -> None:
    lib = SkillLibrary.open(tmp_path, create=True)
    vs = [lib.head] + [lib.commit([sk(f"s{i}")], reason=str(i)) for i in range(8)]
    removed = lib.prune(keep=3, referenced=[vs[1]])
    kept = set(lib.versions())
    assert kept == {vs[1], *vs[-3:]}
    assert set(removed) == set(vs) - kept
    with pytest.raises(LibraryError, match="pruned"):
        lib.view(vs[2])
    assert lib.view(vs[1]).names == ("s0",)  # its blobs survived the garbage collection
    assert lib.history()[-1].kind == "prune"


def test_view_is_immutable_and_pickles_small(tmp_path: Path, skill_folder: Path) -> None:
    lib = SkillLibrary.open(skill_folder, create=True)
    view = lib.view()
    with pytest.raises(AttributeError):
        view.foo = 1  # type: ignore[attr-defined]
    assert not hasattr(view, "commit")
    data = pickle.dumps(view)
    assert len(data) < 300
    back = pickle.loads(data)
    assert back.version == view.version and back.skills == view.skills
    ro = LibraryView.from_folder(skill_folder)
    assert pickle.loads(pickle.dumps(ro)).version == ro.version
    b = back.select(TurnContext(1, "take apple 1 from table 1", "The box 1 is closed.", ""))
    assert b.names == ("after-take", "open-closed")
    with pytest.raises(KeyError, match="did you mean open-closed"):
        view.get("open-close")


def test_torn_history_line_is_dropped(tmp_path: Path) -> None:
    lib = SkillLibrary.open(tmp_path, create=True)
    lib.commit([sk("a")], reason="x")
    with open(tmp_path / ".reskill" / "history.jsonl", "a") as fh:
        fh.write('{"kind": "commit", "vers')
    lib = SkillLibrary.open(tmp_path)
    assert [e.kind for e in lib.history()] == ["init", "commit"]


_KILLED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reskill_gym.skills import Skill, SkillLibrary, Trigger
    from reskill_gym.skills import store

    root, phase, marker = sys.argv[1:4]

    def hook(name):
        if name == phase:
            Path(marker).write_text(name)
            time.sleep(120)

    store._crash_point = hook  # every write step (commit, journal, working copy) calls it
    lib = SkillLibrary.open(root)
    new = [Skill(name=f"new-{i}", description="d", content="c", trigger=Trigger(type="general"))
           for i in range(3)]
    old = lib.view().get("a").replace(content="modified")
    lib.commit(new + [old], reason="killed commit", step=9)
    """
)


@pytest.mark.parametrize(
    "phase,survives",
    [
        ("blobs-written", False),
        ("version-written", False),
        ("pending-written", False),
        ("head-moved", True),
        ("history-appended", True),
        ("worktree-file-written", True),
    ],
)
def test_killed_mid_commit(tmp_path: Path, phase: str, survives: bool) -> None:
    root = tmp_path / "lib"
    lib = SkillLibrary.open(root, create=True)
    before = lib.commit([sk("a"), sk("b")], reason="base")
    script = tmp_path / "killed.py"
    script.write_text(_KILLED)
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(script), str(root), phase, str(marker)])
    deadline = time.time() + 60
    while not marker.exists():
        assert proc.poll() is None, "writer exited before reaching the crash point"
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lib = SkillLibrary.open(root)  # recovers
    assert not (root / ".reskill" / "PENDING.json").exists()
    view = lib.view()
    hist = lib.history()
    if survives:
        assert view.names == ("a", "b", "new-0", "new-1", "new-2")
        assert view.get("a").content == "modified"
        assert hist[-1].kind == "commit" and hist[-1].version == lib.head
        assert hist[-1].parent == before and sum(e.version == lib.head for e in hist) == 1
    else:
        assert lib.head == before and view.names == ("a", "b")
        assert view.get("a").content == "Do what a says."
        assert hist[-1].version == before
    # working copy matches HEAD exactly, nothing half-written
    assert lib.status() == {"added": [], "modified": [], "deleted": [], "untracked": []}
    for name in view.names:
        assert read_skill(root / name) == view.get(name)
    # and the library keeps working
    lib.commit([sk("after-crash")], reason="next")


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reskill_gym.skills import Skill, SkillLibrary, Trigger

    root, tag, start, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    while not start.exists():
        time.sleep(0.005)
    lib = SkillLibrary.open(root)
    for i in range(n):
        s = Skill(name=f"{tag}-{i}", description="d", content=f"{tag} {i}",
                  trigger=Trigger(type="general"))
        lib.commit([s], reason=f"{tag} {i}", proposed_by=tag)
    """
)


def test_two_concurrent_writers(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    SkillLibrary.open(root, create=True)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    start = tmp_path / "go"
    n = 10
    procs = [
        subprocess.Popen([sys.executable, str(script), str(root), tag, str(start), str(n)])
        for tag in ("alpha", "beta")
    ]
    time.sleep(1.0)  # both are importing / waiting at the barrier
    start.write_text("go")
    for p in procs:
        assert p.wait(timeout=120) == 0
    lib = SkillLibrary.open(root)
    names = set(lib.view().names)
    assert names == {f"{t}-{i}" for t in ("alpha", "beta") for i in range(n)}
    commits = [e for e in lib.history() if e.kind == "commit"]
    assert len(commits) == 2 * n
    # a single linear chain: every commit builds on the one before it
    chain = [lib.history()[0].version] + [e.version for e in commits]
    assert [e.parent for e in commits] == chain[:-1]
    assert {e.proposed_by for e in commits} == {"alpha", "beta"}
    for line in (root / ".reskill" / "history.jsonl").read_text().splitlines():
        json.loads(line)


def test_seed_libraries_load_and_mix_trigger_types() -> None:
    for env in ("alfworld", "scienceworld", "search"):
        view = LibraryView.from_folder(REPO / "skills" / env)
        assert 5 <= len(view) <= 8, env
        kinds = {s.trigger.type for s in view}
        assert len(kinds) >= 3, (env, kinds)
        for s in view:
            assert len(s.content) <= 500 and s.description and s.when_to_use
        assert not (REPO / "skills" / env / ".reskill").exists()


def test_alfworld_seed_fires_sensibly() -> None:
    view = LibraryView.from_folder(REPO / "skills" / "alfworld")
    b0 = view.select(
        TurnContext(0, None, "You are in the middle of a room.", "put a hot apple in fridge")
    )
    assert b0.names == ("plan-from-task", "heat-with-microwave")
    b1 = view.select(
        TurnContext(3, "open drawer 9", "Nothing happens.", "put a hot apple in fridge")
    )
    assert "avoid-repeating-invalid" in b1.names
    b2 = view.select(
        TurnContext(4, "take apple 1 from countertop 1", "You pick up the apple 1.", "x")
    )
    assert b2.names == ("after-take-then-place",)
    b3 = view.select(TurnContext(5, "go to fridge 1", "The fridge 1 is closed.", "x"))
    assert b3.names == ("open-closed-receptacles",)
