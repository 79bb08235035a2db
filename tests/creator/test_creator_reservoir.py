"""Reservoir bounds, grouping, sampling, persistence; the assertion store; the verifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reskill_gym.creator import AssertionChange, AssertionStore, Reservoir, Verifier
from reskill_gym.creator.verify import similarity
from reskill_gym.episode import Episode, Turn
from reskill_gym.skills import LibraryView, Operation, Skill, Trigger


def ep(i: int, task: str, won: bool, **kw) -> Episode:
    return Episode(
        episode_id=f"e{i}",
        env_id="x",
        task_id=task,
        task=f"do {task}",
        won=won,
        turns=[Turn(observation="o", action="look")],
        **kw,
    )


def test_bounded_oldest_out_and_readd_moves_to_newest() -> None:
    r = Reservoir(capacity=5)
    r.add([ep(i, "t", False) for i in range(8)])
    assert len(r) == 5 and [e.episode_id for e in r.episodes()] == ["e3", "e4", "e5", "e6", "e7"]
    r.add(ep(3, "t", True))
    assert [e.episode_id for e in r.episodes()][-1] == "e3" and r.get("e3").won
    r.add(ep(99, "t", False, error="engine crashed"))
    assert r.get("e99") is None
    assert r.ready(5) and not r.ready(6)
    with pytest.raises(TypeError):
        r.add([{"episode_id": "nope"}])


def test_sample_groups_mix_and_ratio() -> None:
    r = Reservoir(200)
    i = 0
    for t in range(10):  # 10 mixed groups: 1 win, 3 losses
        for k in range(4):
            r.add(ep(i, f"m{t}", k == 0))
            i += 1
    for t in range(10):  # 10 failure-only groups
        for _ in range(4):
            r.add(ep(i, f"f{t}", False))
            i += 1
    for t in range(10):  # 10 success-only groups
        for _ in range(4):
            r.add(ep(i, f"w{t}", True))
            i += 1
    groups = r.sample_groups(15, min_success_ratio=0.3, rng=np.random.default_rng(0))
    assert len(groups) == 15 and sum(g.mixed for g in groups) == 10  # mixed first
    eps = [e for g in groups for e in g.episodes]
    assert sum(e.success for e in eps) / len(eps) >= 0.3
    again = r.sample_groups(15, min_success_ratio=0.3, rng=np.random.default_rng(0))
    assert [g.task_id for g in again] == [g.task_id for g in groups]  # replayable
    assert {g.task_id for g in r.sample_groups(3, 0.3, rng=1)} <= {f"m{t}" for t in range(10)}


def test_save_load_roundtrip_and_bad_lines(tmp_path) -> None:
    r = Reservoir(capacity=7)
    r.add([ep(i, f"t{i % 3}", i % 2 == 0) for i in range(9)])
    path = r.save(tmp_path / "res.jsonl")
    back = Reservoir.load(path)
    assert back.capacity == 7 and back.episodes() == r.episodes()
    assert Reservoir(path=path).episodes() == r.episodes()  # constructing with a path resumes
    state = json.loads(json.dumps(r.state_dict()))
    fresh = Reservoir()
    fresh.load_state_dict(state)
    assert fresh.episodes() == r.episodes() and fresh.capacity == 7
    lines = path.read_text().splitlines()
    (tmp_path / "bad.jsonl").write_text("\n".join([lines[0], lines[1], "{not json"]) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not JSON"):
        Reservoir.load(tmp_path / "bad.jsonl")
    (tmp_path / "bad2.jsonl").write_text(json.dumps({"episode_id": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad2.jsonl:1: episode field 'env_id'"):
        Reservoir.load(tmp_path / "bad2.jsonl")
    with pytest.raises(FileNotFoundError):
        Reservoir.load(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="no path"):
        Reservoir().save()


def test_assertion_store_lifecycle() -> None:
    s = AssertionStore(max_examples=2)
    a = s.apply(
        AssertionChange(
            op="create", text="opens first", failed=3, passed=1, example_episode_ids=["a", "b", "c"]
        ),
        step=1,
    )
    assert a.id == "A1" and a.example_episode_ids == ["a", "b"]
    s.apply(
        AssertionChange(op="update", id="A1", failed=1, passed=4, example_episode_ids=["z"]), step=2
    )
    a = s.get("A1")
    assert (a.passed, a.failed, a.example_episode_ids) == (5, 4, ["z", "a"])
    with pytest.raises(KeyError, match="no assertion 'A9'"):
        s.apply(AssertionChange(op="retire", id="A9"), step=3)
    with pytest.raises(ValueError, match="needs a non-empty 'text'"):
        AssertionChange(op="create")
    copy = s.copy()
    copy.apply(AssertionChange(op="retire", id="A1", reason="fixed"), step=3)
    assert s.get("A1").status == "active" and copy.get("A1").status == "retired"
    copy.apply(AssertionChange(op="update", id="A1", failed=2), step=4)
    assert copy.get("A1").status == "active"  # the problem came back
    restored = AssertionStore()
    restored.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert restored.get("A1") == s.get("A1")
    assert restored.apply(AssertionChange(op="create", text="t2"), step=5).id == "A2"


def test_verifier_checks() -> None:
    seed = Skill(
        name="open-first",
        description="d",
        content="Open the fridge before taking food.",
        trigger=Trigger(type="observation_pattern", pattern="is closed"),
    )
    v = Verifier(LibraryView("v0", [seed]), max_content_chars=60)
    e = Episode(
        episode_id="e",
        env_id="x",
        task_id="t",
        task="cool an apple",
        turns=[
            Turn(
                observation="The fridge 1 is closed.",
                action="take apple 1 from fridge 1",
                invalid_action=True,
            ),
            Turn(observation="Nothing happens.", action="open fridge 1"),
        ],
    )
    ok = Skill(
        name="retry-after-nothing",
        description="d",
        content="Change the command.",
        trigger=Trigger(type="observation_pattern", pattern="nothing happens"),
    )
    assert v.verify(Operation.add(ok), [e]).passed
    dup = ok.replace(name="dup", content="Open the fridge before taking the food.")
    rep = v.verify(Operation.add(dup), [e])
    assert not rep.passed and "similar to 'open-first'" in rep.feedback()
    long = ok.replace(content="x " * 40)
    assert "content_length" in v.verify(Operation.add(long), [e]).feedback()
    never = ok.replace(trigger=Trigger(type="action_pattern", pattern="^heat"))
    rep = v.verify(Operation.add(never), [e])
    assert rep.trigger_rate == 0.0 and "fires in 0%" in rep.feedback()
    assert "exists" in v.verify(Operation.add(seed.replace(content="new text")), [e]).feedback()
    assert "no skill 'ghost'" in v.verify(Operation.delete("ghost"), []).feedback()
    assert v.verify(Operation.delete("open-first"), []).passed
    assert "identical" in v.verify(Operation.modify(seed), [e]).feedback()
    assert "no targeted" in v.verify(Operation.add(ok), []).feedback()
    second = ok.replace(name="second", content="Change the command now.")
    rep = v.verify(Operation.add(second), [e], accepted=[Operation.add(ok)])
    assert "similar to 'retry-after-nothing'" in rep.feedback()
    assert similarity("Heat the mug with microwave 1.", "Search the names in the question.") < 0.5


def test_dedup_task_arm_outcome_keeps_newest_per_key() -> None:
    r = Reservoir(capacity=6, dedup_by="task_arm_outcome")
    r.add([ep(0, "t", False), ep(1, "t", False), ep(2, "t", True)])
    assert [e.episode_id for e in r.episodes()] == ["e1", "e2"]  # e1 replaced e0, newest last
    assert r.get("e0") is None and r.get("e1").task_id == "t"
    r.add([ep(3, "t", False, arm="candidate"), ep(4, "t", True, arm="incumbent")])
    # candidate = 'new' arm: its own slot; incumbent = 'old': replaces e2
    assert [e.episode_id for e in r.episodes()] == ["e1", "e3", "e4"]
    r.add([ep(10 + k, f"u{k}", False) for k in range(4)])  # FIFO past capacity 6
    assert len(r) == 6 and [e.episode_id for e in r.episodes()][:3] == ["e3", "e4", "e10"]
    assert r.get("e1") is None  # the oldest slot went first
    # Re-adding an id whose outcome changed moves it to its new key and drops the old slot.
    r.add(ep(10, "u0", True))
    assert sum(e.episode_id == "e10" for e in r.episodes()) == 1 and r.get("e10").won
    snap = r.snapshot()
    assert snap.dedup_by == "task_arm_outcome" and snap.episodes() == r.episodes()
    state = json.loads(json.dumps(r.state_dict()))
    fresh = Reservoir(dedup_by="task_arm_outcome")
    fresh.load_state_dict(state)
    assert fresh.episodes() == r.episodes()
    with pytest.raises(ValueError, match="dedup_by must be one of"):
        Reservoir(dedup_by="task")  # type: ignore[arg-type]


def test_dedup_mode_round_trips_through_the_file(tmp_path) -> None:
    r = Reservoir(capacity=9, dedup_by="task_arm_outcome")
    r.add([ep(i, f"t{i % 2}", i % 3 == 0) for i in range(8)])
    back = Reservoir.load(r.save(tmp_path / "r.jsonl"))
    assert back.dedup_by == "task_arm_outcome" and back.episodes() == r.episodes()
    assert Reservoir.load(tmp_path / "r.jsonl", dedup_by="episode").dedup_by == "episode"


def _groups_reservoir() -> Reservoir:
    r = Reservoir(500)
    i = 0
    for prefix, n, wins in (("m", 4, 1), ("f", 6, 0), ("w", 6, 4)):
        for t in range(n):
            for k in range(4):
                r.add(ep(i, f"{prefix}{t}", k < wins))
                i += 1
    return r


def test_sample_task_groups_published_order_and_group_ratio() -> None:
    r = _groups_reservoir()  # 4 mixed, 6 failure-only, 6 success-only task groups
    g = r.sample_task_groups(10, min_success_ratio=0.0, rng=0)
    kinds = [x.task_id[0] for x in g]
    assert kinds == ["m"] * 4 + ["f"] * 6  # mixed first, then failure-only fills the rest
    g = r.sample_task_groups(10, min_success_ratio=0.6, rng=0)
    kinds = [x.task_id[0] for x in g]
    assert kinds[:4] == ["m"] * 4 and kinds.count("w") == 2 and kinds.count("f") == 4
    assert sum(x.has_success for x in g) / len(g) >= 0.6  # the ratio counts groups
    g = r.sample_task_groups(14, min_success_ratio=0.3, rng=0)
    assert [x.task_id[0] for x in g].count("w") == 4  # failure-only exhausted, wins top up
    again = r.sample_task_groups(10, min_success_ratio=0.6, rng=0)
    assert [x.task_id for x in again] == [x.task_id for x in r.sample_task_groups(10, 0.6, rng=0)]
    assert r.sample_task_groups(0) == [] and Reservoir().sample_task_groups(5) == []


def test_sample_task_groups_caps_episodes_keeping_both_outcomes_and_arms() -> None:
    r = Reservoir(100)
    r.add([ep(i, "t", i == 0, arm="candidate" if i == 1 else None) for i in range(12)])
    (g,) = r.sample_task_groups(3, rng=0, max_episodes=4)
    ids = [e.episode_id for e in g.episodes]
    assert len(ids) == 4 and "e0" in ids and "e1" in ids  # the lone success and 'new' arm kept
    assert ids == sorted(ids, key=lambda s: int(s[1:]))  # oldest first
    assert g.arms == {"new", "old"} and g.mixed
