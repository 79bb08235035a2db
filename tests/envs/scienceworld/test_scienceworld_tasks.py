"""ScienceWorld task table and splits: no JVM needed."""

from __future__ import annotations

import json

import pytest

from reskill_gym.envs.scienceworld.tasks import (
    HELD_OUT_TASKS,
    TASK_TABLE_PATH,
    format_task_id,
    load_task_table,
    parse_task_id,
    split_task_ids,
    write_task_table,
)


def test_table_has_30_families_whose_sets_partition_the_variations() -> None:
    table = load_task_table()
    assert len(table) == 30
    for fam in table.values():
        train, dev, test = (fam.variations(w) for w in ("train", "dev", "test"))
        assert train.start == 0 and train.stop == dev.start and dev.stop == test.start
        assert test.stop == fam.max_variations
        assert len(train) > 0 and len(test) > 0


def test_splits_are_disjoint_and_follow_the_held_out_families() -> None:
    table = load_task_table()
    train, seen, unseen = (set(split_task_ids(s)) for s in ("train", "seen", "unseen"))
    assert not (train & seen) and not (train & unseen) and not (seen & unseen)
    fams = {
        s: {t.split(":")[0] for t in ids}
        for s, ids in (("train", train), ("seen", seen), ("unseen", unseen))
    }
    assert fams["unseen"] == set(HELD_OUT_TASKS)
    assert fams["train"] == fams["seen"] == set(table) - set(HELD_OUT_TASKS)
    assert len(fams["train"]) == 20
    # seen = the engine's test variations of training families
    boil = table["boil"]
    assert {t for t in seen if t.startswith("boil:")} == {
        f"boil:{v}" for v in boil.variations("test")
    }
    assert {t for t in train if t.startswith("boil:")} == {
        f"boil:{v}" for v in boil.variations("train")
    }


def test_held_out_is_one_family_per_topic_group() -> None:
    table = load_task_table()
    groups = {fam.task_num.split("-")[0] for fam in table.values()}
    held_groups = [table[name].task_num.split("-")[0] for name in HELD_OUT_TASKS]
    assert sorted(held_groups) == sorted(groups)  # each of the 10 groups exactly once
    for name in HELD_OUT_TASKS:  # ... and it is the group's last task
        group = table[name].task_num.split("-")[0]
        last = max(
            int(f.task_num.split("-")[1])
            for f in table.values()
            if f.task_num.startswith(group + "-")
        )
        assert table[name].task_num == f"{group}-{last}"


def test_dev_variations_and_family_filter() -> None:
    dev_seen = split_task_ids("seen", eval_variations="dev", tasks=["boil", "find-animal"])
    assert dev_seen == [f"boil:{v}" for v in load_task_table()["boil"].variations("dev")]
    assert split_task_ids("unseen", tasks=["boil"]) == []
    custom = split_task_ids("unseen", held_out=["boil"])
    assert {t.split(":")[0] for t in custom} == {"boil"}


def test_task_id_parsing_and_errors() -> None:
    assert parse_task_id(" use-thermometer:405 ") == ("use-thermometer", 405)
    assert format_task_id("boil", 3) == "boil:3"
    with pytest.raises(ValueError, match="look like"):
        parse_task_id("boil")
    with pytest.raises(ValueError, match="did you mean boil"):
        parse_task_id("boill:1")
    with pytest.raises(ValueError, match="variations 0..29"):
        parse_task_id("boil:30")
    with pytest.raises(ValueError, match="did you mean find-animal"):
        split_task_ids("train", tasks=["find-animals"])
    with pytest.raises(ValueError, match="split must be"):
        split_task_ids("valid")
    with pytest.raises(ValueError, match="eval_variations"):
        split_task_ids("seen", eval_variations="train")  # type: ignore[arg-type]


def test_bad_table_files_name_the_file_and_field(tmp_path) -> None:
    good = json.loads(TASK_TABLE_PATH.read_text())
    path = tmp_path / "table.json"
    write_task_table(good, path)
    assert load_task_table(path) == load_task_table()
    assert not list(tmp_path.glob(".table.json.*"))  # no temp file left behind

    broken = json.loads(json.dumps(good))
    del broken["tasks"]["boil"]["test"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"bad\.json: tasks\.boil: missing field 'test'"):
        load_task_table(bad)
    broken["tasks"]["boil"]["test"] = [21, 99]
    bad2 = tmp_path / "bad2.json"
    bad2.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"bad2\.json: tasks\.boil: field 'test' range"):
        load_task_table(bad2)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(ValueError, match="garbage.json: cannot read"):
        load_task_table(garbage)
