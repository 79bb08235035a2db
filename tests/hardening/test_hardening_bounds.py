"""Bounded everything: templates, pattern sets, rendered skills, history and report text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reskill_gym.skills import SkillError, SkillLibrary, Trigger, UnsafePatternError
from reskill_gym.skills import triggers as triggers_mod
from reskill_gym.skills.bundle import BundleSelector, BundleTemplate, TurnContext


@pytest.mark.parametrize(
    "item",
    ["{content:>999999999}", "{name:^2000}", "{content:.100000}", "x{description:0>1001}"],
)
def test_template_width_is_capped(item: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(SkillError, match="width"):
        BundleTemplate(item=item)
    assert time.perf_counter() - t0 < 0.5
    assert BundleTemplate(item="{name:>40}: {content}").render_item  # ordinary widths pass


def test_template_width_via_run_config(kit, tmp_path: Path) -> None:
    cfg = tmp_path / "evolve.yaml"
    cfg.write_text("env:\n  template:\n    item: '{content:>999999999}'\n")
    res = kit.cli("evolve", "--config", cfg)
    assert res.exit_code == 2 and "width" in res.output and "Traceback" not in res.output


def test_patterns_that_overflow_a_pattern_set_are_refused_one_by_one(kit) -> None:
    # each of these used to pass alone; six of them made every reset() raise
    patterns = [f"{i}" + r"\W{1000}" * 20 for i in range(6)]
    t0 = time.perf_counter()
    for p in patterns:
        with pytest.raises(UnsafePatternError, match="RE2"):
            triggers_mod.check_pattern(p)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ValueError, match=r"27004 RE2 instructions"):
        Trigger(type="observation_pattern", pattern=r"\W{1000}")


def test_pattern_set_memory_is_checked_when_a_library_is_built(
    kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # patterns that pass alone but (with a tiny set budget) cannot share a set: the error
    # names the skills, at commit time, not on the first reset()
    skills = [
        kit.skill(f"s{i}", trigger=Trigger(type="observation_pattern", pattern=rf"{i}\w{{400}}"))
        for i in range(3)
    ]
    monkeypatch.setattr(triggers_mod, "_SET_MAX_MEM", 1 << 16)
    with pytest.raises(SkillError, match="pattern set") as err:
        BundleSelector(skills)
    assert "s0" in str(err.value) and "s2" in str(err.value)
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    head = lib.head
    with pytest.raises(SkillError, match="s1"):
        lib.commit(skills, reason="too big together")
    assert lib.head == head
    monkeypatch.undo()
    vid = lib.commit(skills, reason="fits the real budget")
    obs = "1" + "x" * 400
    assert lib.view(vid).select(TurnContext(1, "look", obs, "t")).names == ("s1",)


def test_rendered_skill_md_must_fit_the_read_caps(kit, tmp_path: Path) -> None:
    # flow-style nesting re-renders as indented block style, several times larger
    extra = "".join(
        f"  k{i}: {{a: {{b: {{c: {{d: {{e: {{f: {{g: {{h: {{i: x}}}}}}}}}}}}}}}}}}\n"
        for i in range(700)
    )
    src = tmp_path / "src"
    kit.write_raw_skill(src, "big", f"name: big\ndescription: d\nextra:\n{extra}")
    assert len((src / "big" / "SKILL.md").read_bytes()) < 64 << 10
    lib_dir = tmp_path / "lib"
    SkillLibrary.open(lib_dir, create=True)
    kit.user_error(kit.cli("skills", "import", src, "-L", lib_dir), "big", "front matter")
    for cmd in ("ls", "status"):  # the library stays usable
        assert kit.cli("skills", cmd, "-L", lib_dir).exit_code == 0


def test_a_huge_policy_reply_is_clipped_before_it_is_stored(
    kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 30 MB reply used to be parsed, prompted and stored whole (60 MB per episode)."""
    import sys

    (tmp_path / "huge_policy.py").write_text(
        "def act(messages, info):\n    return '<answer> x </answer>' + 'y' * 30_000_000\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("huge_policy", None)
    out = tmp_path / "o"
    skills = Path(__file__).resolve().parents[2] / "skills" / "search"
    res = kit.cli(
        "eval", "--env", "search", "--agent", "python:huge_policy:act", "--tasks", "1",
        "--no-skills-baseline", "--skills", skills, "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0 and res.exception is None, res.output
    assert (out / "episodes.jsonl").stat().st_size < 2_000_000
    assert "[clipped " in (out / "episodes.jsonl").read_text()
