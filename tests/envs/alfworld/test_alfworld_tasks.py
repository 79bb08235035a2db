"""The generated ALFWorld task set, its generator and the official-layout index (no engine)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from reskill_gym.envs.alfworld.env import packaged_taskset
from reskill_gym.envs.alfworld.generator import UNSEEN_OBJECTS, generate_task, load_room_templates
from reskill_gym.envs.alfworld.official import index_official
from reskill_gym.envs.alfworld.render import receptacle_ids, render_problem
from reskill_gym.envs.alfworld.spec import DIFFICULTIES, TASK_TYPES, TaskSet, TaskSpec
from reskill_gym.envs.alfworld.taskset import check_taskset, export_official_layout


def test_packaged_set_covers_levels_splits_and_types() -> None:
    ts = packaged_taskset()
    assert 250 <= len(ts.tasks) <= 400
    for difficulty in DIFFICULTIES:
        for split in ("train", "seen", "unseen"):
            tasks = ts.select(difficulty=difficulty, split=split)
            assert tasks, (difficulty, split)
            assert set(TASK_TYPES) == {t.task_type for t in tasks}, (difficulty, split)
    assert all(t.plan for t in ts.tasks), "every shipped task carries its verified plan"


def test_level_shapes() -> None:
    ts = packaged_taskset()
    tiny = ts.select(difficulty="tiny")
    assert all(2 <= len(t.receptacles) <= 3 for t in tiny)
    assert all(t.agent_at is not None for t in tiny), "tiny: agent starts facing the target"
    assert max(len(t.plan) for t in tiny) <= 5
    std = ts.select(difficulty="std")
    assert sum(len(t.receptacles) for t in std) / len(std) >= 9
    assert all(t.agent_at is None for t in std)


def test_splits_hold_out_layouts_objects_and_tasks() -> None:
    ts = packaged_taskset()
    for difficulty in DIFFICULTIES:
        train = ts.select(difficulty=difficulty, split="train")
        seen = ts.select(difficulty=difficulty, split="seen")
        unseen = ts.select(difficulty=difficulty, split="unseen")
        train_layouts = {t.layout for t in train + seen}
        assert not train_layouts & {t.layout for t in unseen}
        for t in train + seen:
            assert not {c for c, _ in t.objects} & UNSEEN_OBJECTS, t.task_id
        key = lambda t: (t.task_type, t.object_target, t.parent_target, t.layout)  # noqa: E731
        assert not {key(t) for t in train} & {key(t) for t in seen}
        assert any(t.object_target in UNSEEN_OBJECTS for t in unseen)


def test_generator_is_deterministic_and_matches_shipped_set() -> None:
    ts = packaged_taskset()
    sample = TaskSet.of(ts.tasks[::25])
    assert check_taskset(sample) == []
    a = generate_task("small", "train", 7)
    b = generate_task("small", "train", 7)
    assert a == b and a is not None


def test_room_templates_come_from_alfred_scenes() -> None:
    rooms = load_room_templates()
    assert len(rooms) >= 100
    kitchen = next(r for r in rooms if r.layout == "FloorPlan1")
    assert (
        kitchen.room_type == "Kitchen"
        and kitchen.count("Cabinet") > 1
        and kitchen.count("SinkBasin") == 1
    )
    assert "Apple" in kitchen.objects and "Cabinet" not in kitchen.objects


def test_spec_round_trip_and_errors(tmp_path: Path) -> None:
    spec = packaged_taskset().tasks[0]
    assert TaskSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    bad = spec.to_json() | {"objects": [["Apple", 99]]}
    with pytest.raises(ValueError, match="receptacle #99"):
        TaskSpec.from_json(bad, source="x.json")
    missing = {k: v for k, v in spec.to_json().items() if k != "goal"}
    with pytest.raises(ValueError, match="x.json.*lacks field 'goal'"):
        TaskSpec.from_json(missing, source="x.json")
    path = tmp_path / "ts.json"
    TaskSet.of([spec]).save(path)
    assert TaskSet.load(path).tasks == (spec,)
    path.write_text("{}")
    with pytest.raises(ValueError, match="ts.json.*version-1"):
        TaskSet.load(path)


def test_render_uses_alfred_ids() -> None:
    spec = next(t for t in packaged_taskset().tasks if "SinkBasin" in t.receptacles)
    ids = receptacle_ids(spec)
    assert any(i.startswith("Sink_bar_") and i.endswith("_bar_SinkBasin") for i in ids)
    problem = render_problem(spec)
    assert problem.count("(atLocation agent1 ") == 1 and "(:goal" in problem
    assert render_problem(spec) == problem


def test_official_index_on_exported_tree(tmp_path: Path) -> None:
    ts = packaged_taskset()
    picked = [ts.select(difficulty="tiny", split=s)[0] for s in ("train", "seen", "unseen")]
    base = export_official_layout(TaskSet.of(picked), tmp_path)
    # Variants alfworld itself skips: movable/Sliced paths and unsolvable games.
    extra = base / "train" / "pick_and_place_with_movable_recep-Apple-Bowl-Fridge-1" / "trial_x"
    extra.mkdir(parents=True)
    (extra / "game.tw-pddl").write_text("{}")
    (extra / "traj_data.json").write_text("{}")
    unsolvable = base / "train" / "pick_and_place_simple-Mug-None-Shelf-3" / "trial_y"
    unsolvable.mkdir(parents=True)
    (unsolvable / "game.tw-pddl").write_text(json.dumps({"solvable": False}))
    (unsolvable / "traj_data.json").write_text("{}")
    index = index_official(tmp_path, cache_dir=tmp_path / "cache")
    assert {k: len(v) for k, v in index.items()} == {"train": 1, "seen": 1, "unseen": 1}
    game = index["unseen"][0]
    assert game.task_id.startswith("valid_unseen/") and game.task_type == picked[2].task_type
    assert Counter(g.split for games in index.values() for g in games) == {
        "train": 1,
        "seen": 1,
        "unseen": 1,
    }
    assert index_official(tmp_path, cache_dir=tmp_path / "cache") == index  # from the cache
    with pytest.raises(FileNotFoundError, match="json_2.1.1"):
        index_official(tmp_path / "nothing")
