"""Statistics and report files from hand-made episode records (no env, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reskill_gym.episode import Turn
from reskill_gym.evaluation.episode_log import EvalEpisode
from reskill_gym.evaluation.report import (
    bootstrap_mean_ci,
    render_table,
    summarize,
    write_eval_report,
)


def rec(cond, task, seed, success, *, split="unseen", ttype="a", skills=(), error=None, valid=True):
    key = f"{cond}|{split}|{task}|{seed}"
    turns = [
        Turn(
            observation="o",
            action="x" if valid else "",
            parse="tagged" if valid else "empty",
            valid=valid,
            skill_ids=list(skills),
            input_tokens=10,
            output_tokens=2,
        )
    ]
    return EvalEpisode(
        key=key,
        episode_id=key,
        env_id="ReSkill-ALFWorld-v0",
        condition=cond,
        split=split,
        task_id=task,
        task_type=ttype,
        seed=seed,
        agent="python:m:f",
        mode="generate",
        won=success,
        reward=float(success),
        turns=turns,
        error=error,
        error_type="rate_limit" if error else None,
        stop_reason="error" if error else "done",
    )


def test_bootstrap_matches_resampling_and_is_exact_for_constants():
    x = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0] * 3, dtype=float)
    r = bootstrap_mean_ci(x, n_boot=20000, seed=1)
    rng = np.random.default_rng(2)
    means = rng.choice(x, size=(20000, x.size)).mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert r.mean == pytest.approx(0.6) and abs(r.lo - lo) < 0.035 and abs(r.hi - hi) < 0.035
    c = bootstrap_mean_ci([1.0] * 5)
    assert (c.mean, c.lo, c.hi) == (1.0, 1.0, 1.0)
    assert math.isnan(bootstrap_mean_ci([]).mean)


def test_paired_difference_errors_and_skill_stats(tmp_path):
    recs = []
    for t in range(6):
        recs.append(rec("no-skills", f"t{t}", 0, t < 2, ttype="a" if t % 2 else "b"))
        recs.append(
            rec(
                "lib@v1",
                f"t{t}",
                0,
                t < 5,
                ttype="a" if t % 2 else "b",
                skills=["s1@1"] + (["s2@1"] if t >= 4 else []),
            )
        )
    recs.append(rec("no-skills", "t6", 0, False, error="429"))
    recs.append(rec("lib@v1", "t6", 0, True, skills=["s1@1"]))
    s = summarize(recs, conditions=["no-skills", "lib@v1"])
    assert s.baseline == "no-skills"
    assert s.stat("no-skills").errors == 1 and s.stat("no-skills").success.n == 6
    assert s.stat("lib@v1").success.mean == pytest.approx(6 / 7)
    d = s.diff("lib@v1")
    assert d.diff.n == 6 and d.diff.mean == pytest.approx(3 / 6) and (d.wins, d.losses) == (3, 0)
    assert d.diff.lo > 0  # 3 wins, no losses: the CI excludes 0
    by = {(k.skill): k for k in s.skills if k.condition == "lib@v1"}
    assert by["s1@1"].episodes_fired == 7 and by["s1@1"].success_when_fired == pytest.approx(6 / 7)
    assert by["s2@1"].episodes_fired == 2 and by["s2@1"].success_when_fired == 0.5
    assert by["s2@1"].success_when_not_fired == pytest.approx(1.0)
    types = {(t.condition, t.task_type): t.success.mean for t in s.task_types}
    assert types[("no-skills", "b")] == pytest.approx(1 / 3)
    files = write_eval_report(s, tmp_path)
    for name in (
        "report.md",
        "summary.json",
        "success_by_split.png",
        "skill_usage.png",
        "success_by_task_type.png",
        "paired_difference.png",
    ):
        assert files[name].read_bytes()[:4] in (b"\x89PNG", b"# Fr", b"{\n  ")
    md = (tmp_path / "report.md").read_text()
    assert "+50.0" in md and "| `no-skills` | unseen | 7 | 1 |" in md
    assert "| `lib@v1` | 70 | 14 | 0.0000 | 100% | tagged 7 |" in md
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(render_table(s))
    assert "lib@v1" in console.export_text()


def test_valid_action_ratio_from_turns():
    recs = [rec("A", f"t{i}", 0, False, valid=i % 4 != 0) for i in range(8)]
    s = summarize(recs)
    assert s.stat("A").valid_action_ratio == pytest.approx(6 / 8)
    assert s.stat("A").parse_counts == {"empty": 2, "tagged": 6}
    assert s.stat("A").input_tokens == 80 and s.stat("A").avg_turns == 1.0


def test_multi_split_and_no_baseline(tmp_path):
    recs = [
        rec("A", f"t{i}", 0, i % 2 == 0, split=sp) for i in range(4) for sp in ("seen", "unseen")
    ]
    recs += [rec("B", f"t{i}", 0, True, split=sp) for i in range(4) for sp in ("seen", "unseen")]
    s = summarize(recs)
    assert s.baseline == "A" and s.splits == ["seen", "unseen"]
    assert s.diff("B", "seen").diff.mean == 0.5 and s.diff("B", "all").diff.n == 8
    write_eval_report(s, tmp_path)
    assert (tmp_path / "success_by_split.png").stat().st_size > 5000


def test_duplicate_episodes_count_once_when_deterministic():
    # ALFWorld ignores the seed and greedy decoding repeats itself: seeds 0 and 1 are the same
    # episode twice. 6 tasks: the library wins 4, the baseline 2.
    recs = []
    for t in range(6):
        for seed in (0, 1):
            recs.append(rec("no-skills", f"t{t}", seed, t < 2))
            recs.append(rec("lib", f"t{t}", seed, t < 4))
    once = [r for r in recs if r.seed == 0]
    greedy = summarize(recs, meta={"temperature": 0.0})
    single = summarize(once, meta={"temperature": 0.0})
    assert greedy.meta["collapse_duplicates"] is True
    for name in ("no-skills", "lib"):
        g, s = greedy.stat(name), single.stat(name)
        assert g.episodes == 12 and g.distinct == 6 and g.success.clusters == 6
        assert (g.success.mean, g.success.lo, g.success.hi) == (
            s.success.mean,
            s.success.lo,
            s.success.hi,
        )
    d = greedy.diff("lib")
    assert d.diff.n == 6 and d.diff.clusters == 6 and (d.wins, d.losses) == (2, 0)
    assert (d.diff.lo, d.diff.hi) == (single.diff("lib").diff.lo, single.diff("lib").diff.hi)
    # counted twice (the old bug), the interval would be narrower than the evidence allows
    naive = bootstrap_mean_ci([1.0] * 4 + [0.0] * 8)
    assert naive.hi - naive.lo < d.diff.hi - d.diff.lo
    # sampling (temperature > 0): every seed is an independent draw, kept; tasks resampled
    sampled = summarize(recs, meta={"temperature": 1.0})
    assert sampled.meta["collapse_duplicates"] is False
    st = sampled.stat("lib")
    assert st.distinct == 12 and st.success.n == 12 and st.success.clusters == 6
    # resampling tasks: both seeds of a task move together, as wide as one seed per task
    assert st.success.hi - st.success.lo == pytest.approx(
        single.stat("lib").success.hi - single.stat("lib").success.lo, abs=0.02
    )
    # different episodes of one task are not duplicates
    recs[0].turns[0].observation = "something else"
    assert summarize(recs, meta={"temperature": 0.0}).stat("no-skills").distinct == 7
