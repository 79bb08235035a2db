"""YAML alias bombs, deep nesting and huge files are refused within a second, everywhere."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from reskill_gym.skills import SkillError, SkillLibrary, read_skill, validate_skill_dir
from reskill_gym.skills.store import put_blob
from reskill_gym.yaml_loading import (
    YAMLLimitError,
    YAMLLimits,
    YAMLLoadError,
    check_yaml,
    check_yaml_file,
    load_yaml,
    load_yaml_file,
)

REPO = Path(__file__).resolve().parents[2]


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """The "billion laughs": 10**levels leaves from a few hundred bytes."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


DEEP = "x: " + "[" * 5000 + "]" * 5000 + "\n"  # libyaml itself stops at 1000
NESTED = "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)) + "  " * 200 + "v: 1\n"


class _Timer:
    def __enter__(self) -> _Timer:
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t


@pytest.mark.parametrize("text", [alias_bomb(), alias_bomb(levels=30, width=2), DEEP, NESTED])
def test_bounded_loader_rejects_bombs_fast(text: str) -> None:
    with _Timer() as t, pytest.raises(YAMLLoadError, match="bomb.yaml") as err:
        load_yaml(text, source="bomb.yaml")
    assert t.s < 1.0
    assert "nest" in str(err.value) or isinstance(err.value, YAMLLimitError)


def test_bounded_loader_accepts_ordinary_anchors_and_limits_size(tmp_path: Path) -> None:
    assert load_yaml("base: &b {lr: 1.0e-6}\nrun: {<<: *b, steps: 2}\n")["run"]["steps"] == 2
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 2000 + "\n")
    with pytest.raises(YAMLLimitError, match="big.yaml"):
        load_yaml_file(big, limits=YAMLLimits(max_bytes=1000))
    with pytest.raises(YAMLLoadError, match="undefined"):
        check_yaml("a: *nope\n")
    (tmp_path / "bin.yaml").write_bytes(b"a: \xff\n")
    with pytest.raises(YAMLLoadError, match="not UTF-8"):
        load_yaml_file(tmp_path / "bin.yaml")
    with pytest.raises(YAMLLoadError, match="line 2"):
        load_yaml("a: 1\nb: : x\n")


def _bomb_skill(parent: Path, kit) -> Path:
    front = "name: plan\ndescription: d\nextra:\n" + "".join(
        "  " + line + "\n" for line in alias_bomb().splitlines()
    )
    return kit.write_raw_skill(parent, "plan", front)


def test_skill_md_bomb_is_refused_everywhere(kit, tmp_path: Path) -> None:
    src = tmp_path / "src"
    folder = _bomb_skill(src, kit)
    with _Timer() as t, pytest.raises(SkillError, match="front matter"):
        read_skill(folder)
    assert t.s < 1.0
    assert "expand" in validate_skill_dir(folder)[0]
    kit.cli("--help")  # import the CLI outside the timed part
    with _Timer() as t:
        res = kit.cli("skills", "import", src, "-L", tmp_path / "lib")
    assert t.s < 1.0
    kit.user_error(res, "plan/SKILL.md", "front matter", "alias bomb")
    kit.user_error(kit.cli("skills", "init", "-L", src), "alias bomb")
    assert not (src / ".reskill").exists()
    kit.user_error(kit.cli("skills", "show", "plan", "-L", src, "--json"), "alias bomb")
    res = kit.cli("skills", "validate", src)
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_front_matter_size_and_depth_caps(kit, tmp_path: Path) -> None:
    big = kit.write_raw_skill(tmp_path, "big", "name: big\ndescription: " + "d" * 70_000 + "\n")
    with pytest.raises(SkillError, match="bytes"):
        read_skill(big)
    for i, text in enumerate((DEEP, NESTED)):
        deep = kit.write_raw_skill(tmp_path, f"deep{i}", f"name: deep{i}\ndescription: d\n" + text)
        with pytest.raises(SkillError, match="nest"):
            read_skill(deep)


def test_library_store_blob_bomb_is_refused(kit, tmp_path: Path) -> None:
    # a bomb smuggled straight into the store (not through import) fails on read too
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    lib.commit([kit.skill("plan")], reason="seed")
    text = (_bomb_skill(tmp_path / "raw", kit) / "SKILL.md").read_bytes()
    tree = {"plan": {"SKILL.md": put_blob(lib.store, text)}}
    vid = kit.forge_version(lib, tree, move_head=False)
    with _Timer() as t, pytest.raises(SkillError, match="alias bomb"):
        lib.view(vid)
    assert t.s < 1.0


def test_train_config_bomb_fails_fast_before_omegaconf(kit, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from reskill_local.train import ConfigError, load_config

    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(alias_bomb())
    with _Timer() as t, pytest.raises(ConfigError, match="alias bomb"):
        load_config(cfg)
    assert t.s < 1.0
    res = kit.cli("train", "--config", cfg)
    assert res.exit_code == 2 and "alias bomb" in res.output and "Traceback" not in res.output


def test_report_config_bomb_and_stray_bytes(kit, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(
        b'{"step": 0, "episode/reward_mean": 0.5}\n\xff\xfe garbage \n[1, 2]\n{"step": "x"}\n'
    )
    (run / "events.jsonl").write_bytes(b'{"kind": "test_decided", "data": [1]}\n\x00\n')
    res = kit.cli("report", run)
    assert res.exit_code == 0, res.output  # bad lines are skipped with a warning
    assert (run / "report.md").is_file()
    (run / "config.yaml").write_text(alias_bomb())
    with _Timer() as t:
        res = kit.cli("report", run)
    assert t.s < 1.0
    assert res.exit_code == 2 and "config.yaml" in res.output and "Traceback" not in res.output


def test_eval_config_bomb(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "eval_frozen_for_test", REPO / "benchmarks" / "eval_frozen.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(alias_bomb())
    with _Timer() as t, pytest.raises(SystemExit, match="alias bomb"):
        mod.load_config(cfg, {})
    assert t.s < 1.0


def long_value_repeated(value_bytes: int = 900_000, aliases: int = 900) -> str:
    """Few nodes, few aliases, one long string: most of a gigabyte once expanded."""
    return f"v: &v '{'x' * value_bytes}'\nl: [" + ", ".join(["*v"] * aliases) + "]\n"


def test_expanded_bytes_are_capped_not_only_nodes(kit, tmp_path: Path) -> None:
    text = long_value_repeated()
    with _Timer() as t, pytest.raises(YAMLLimitError, match="bytes of text"):
        check_yaml(text, source="long.yaml")
    assert t.s < 1.0
    assert load_yaml(long_value_repeated(1000, 10))["l"][9] == "x" * 1000  # ordinary reuse
    cfg = tmp_path / "evolve.yaml"
    cfg.write_text(text)
    with _Timer() as t:
        res = kit.cli("evolve", "--config", cfg)
    assert t.s < 5.0
    assert res.exit_code == 2 and "bytes of text" in res.output and "Traceback" not in res.output
    front = (
        "name: plan\ndescription: d\nx: &v '"
        + "y" * 30_000
        + "'\nz: [*v, *v, *v, *v, *v, *v, *v, *v, *v]\n"
    )
    with pytest.raises(SkillError, match="bytes of text"):
        read_skill(kit.write_raw_skill(tmp_path / "skills", "plan", front))


def test_yaml_file_that_is_a_fifo_or_link(kit, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    (tmp_path / "real.yaml").write_text("a: 1\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "real.yaml")
    with _Timer() as t:
        for p, follow in ((fifo, False), (fifo, True), (link, False)):
            with pytest.raises(YAMLLoadError, match=p.name):
                load_yaml_file(p) if not follow else check_yaml_file(p, follow_links=True)
    assert t.s < 1.0
    # a path the user typed may be a link to their own file; a FIFO never blocks
    assert check_yaml_file(link, follow_links=True) == "a: 1\n"
    res = kit.cli("evolve", "--config", fifo)
    assert res.exit_code == 2 and "FIFO" in res.output and "Traceback" not in res.output
