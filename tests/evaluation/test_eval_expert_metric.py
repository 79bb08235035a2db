"""The expert metric without an engine: conditions built through the skill wrapper (placebo of
the same length, shuffled triggers, true task shown), figures and task-level statistics from
hand-made records, the run (resume, reused prompts) with a real tiny LM, config checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reskill_gym.evaluation import EvalConfig
from reskill_gym.evaluation.expert import (
    ExpertScore,
    placebo_pool,
    placebo_view,
    score_figures,
    state_prompt,
)
from reskill_gym.evaluation.expert_report import summarize_expert, write_expert_report
from reskill_gym.evaluation.report import cluster_bootstrap_ci
from reskill_gym.evaluation.states import ActionLabel, ExpertState
from reskill_gym.rollout import TurnConfig, choice_probabilities
from reskill_gym.skills import LibraryView
from reskill_gym.skills.bundle import DEFAULT_TEMPLATE

REPO = Path(__file__).resolve().parents[2]
SKILLS = REPO / "skills"
CFG = TurnConfig(action_mode="score")


def state(
    task_id="t0",
    *,
    task="heat some mug and put it in cabinet",
    task_type="pick_heat_then_place_in_recep",
    prefix=("take mug 1 from countertop 1",),
    obs=("You are in the middle of a room.", "You pick up the mug 1. The microwave 1 is closed."),
    split="unseen",
    shuffled_task="cool some apple and put it in fridge",
    step_key="0",
    off_path=0,
):
    adm = ["go to microwave 1", "look", "inventory", "go to cabinet 1"]
    return ExpertState(
        key=f"{split}|{task_id}|expert|{step_key}",
        env="alfworld",
        split=split,
        task_id=task_id,
        task=task,
        task_type=task_type,
        trajectory="expert",
        step=len(prefix),
        prefix=list(prefix),
        observations=list(obs),
        admissible=adm,
        expert_action="go to microwave 1",
        plan_len=4,
        labels=[
            ActionLabel(action="go to microwave 1", plan_len=3),
            ActionLabel(action="look", plan_len=4),
            ActionLabel(action="inventory", plan_len=4),
            ActionLabel(action="go to cabinet 1", plan_len=5),
        ],
        shuffled_task=shuffled_task,
        off_path=off_path,
    )


@pytest.fixture(scope="module")
def lib():
    return LibraryView.from_folder(SKILLS / "alfworld")


@pytest.fixture(scope="module")
def pool():
    return placebo_pool([SKILLS / "scienceworld", SKILLS / "search"])


def test_conditions_through_the_wrapper(lib, pool):
    s = state()
    none = state_prompt(s, None, CFG)
    full = state_prompt(s, lib, CFG)
    # after a take, on a heat task, with a closed receptacle in view: these fire
    assert {"after-take-then-place@1", "heat-with-microwave@2", "open-closed-receptacles@1"} <= set(
        full.skill_ids
    )
    assert none.skill_ids == [] and none.bundle_chars == 0
    assert full.messages[-1]["content"].startswith(none.messages[-1]["content"])
    fired = [lib.get(i.rpartition("@")[0]) for i in full.skill_ids]
    for offset in range(len(pool)):
        placebo = state_prompt(s, placebo_view(fired, pool, offset=offset), CFG)
        # same length and number of skills, none of the library's text
        assert placebo.bundle_chars == full.bundle_chars
        assert len(placebo.skill_ids) == len(full.skill_ids)
        assert not set(placebo.skill_ids) & set(lib.names)
        assert "microwave" not in placebo.messages[-1]["content"].split("## Skills")[1]
    shuffled = state_prompt(s, lib, CFG, trigger_task=s.shuffled_task)
    assert "cool-with-fridge@1" in shuffled.skill_ids
    assert "heat-with-microwave@2" not in shuffled.skill_ids
    assert "after-take-then-place@1" in shuffled.skill_ids  # state triggers as usual
    assert "Task: heat some mug" in shuffled.messages[-1]["content"]  # the true task is shown
    assert placebo_view([], pool) is None


def test_placebo_items_match_each_library_item(lib, pool):
    for skill in lib:
        (p,) = placebo_view([skill], pool, offset=3)
        assert len(DEFAULT_TEMPLATE.render_item(p)) == len(DEFAULT_TEMPLATE.render_item(skill))
        assert p.trigger.type == "general" and p.name in {q.name for q in pool}


def test_score_figures_follow_the_choice_rule():
    scores = [-1.0, -2.0, -0.5, -3.0]
    cands = ["a", "b", "c", "d"]
    f = score_figures(scores, cands, optimal=["a", "b"], expert="a", temperature=1.0)
    probs = choice_probabilities(np.array(scores), 1.0)
    assert f["p_opt"] == pytest.approx(probs[0] + probs[1])
    assert f["top1"] is False and f["expert_rank"] == 2
    g = score_figures(scores, cands, optimal=["c"], expert="c", temperature=0.0)
    assert (g["p_opt"], g["top1"], g["expert_rank"]) == (1.0, True, 1)
    # ties go to the first best, as choose_action does
    h = score_figures([0.0, 0.0], ["x", "y"], optimal=["y"], expert="y", temperature=0.0)
    assert h["top1"] is False and h["expert_rank"] == 1


def test_cluster_bootstrap_resamples_tasks():
    rng = np.random.default_rng(0)
    # 8 tasks, 5 states each, values strongly tied within a task
    task_means = rng.normal(0, 1, 8)
    values = np.repeat(task_means, 5) + rng.normal(0, 0.05, 40)
    clusters = np.repeat([f"t{i}" for i in range(8)], 5)
    r = cluster_bootstrap_ci(values, clusters, n_boot=20000, seed=1)
    # brute force: draw 8 tasks with replacement, mean over their states
    boots = []
    for _ in range(4000):
        pick = rng.integers(0, 8, 8)
        boots.append(np.concatenate([values[clusters == f"t{i}"] for i in pick]).mean())
    lo, hi = np.quantile(boots, [0.025, 0.975])
    assert r.clusters == 8 and r.n == 40
    assert abs(r.lo - lo) < 0.1 and abs(r.hi - hi) < 0.1
    naive = cluster_bootstrap_ci(values, [str(i) for i in range(40)], seed=1)
    assert (r.hi - r.lo) > 1.8 * (naive.hi - naive.lo)  # states are not independent


def _scores(st, cond, opt_logit, skills=()):
    s = [opt_logit, 0.0, 0.0, 0.0]
    f = score_figures(s, st.admissible, optimal=st.optimal, expert=st.expert_action, temperature=1)
    return ExpertScore(
        key=f"{cond}|{st.key}",
        state_key=st.key,
        condition=cond,
        skill_ids=list(skills),
        bundle_chars=100 if skills else 0,
        candidates=st.admissible,
        scores=s,
        score_norm="mean",
        temperature=1.0,
        chosen=st.admissible[0],
        **f,
    )


def test_summary_pairs_states_and_resamples_tasks(tmp_path):
    states, scores = [], []
    for t in range(6):
        for k in range(3):
            st = state(
                f"t{t}",
                step_key=str(k),
                split="seen" if t < 3 else "unseen",
                task_type="a" if t % 2 else "b",
                off_path=k == 2,
            )
            states.append(st)
            fired = ["s1@1"] + (["s2@1"] if k == 0 else [])
            scores += [
                _scores(st, "none", 0.0),
                _scores(st, "library", 1.0 + (t >= 3), fired),
                _scores(st, "placebo", 0.0, ["p@1"]),
                _scores(st, "shuffled", 0.5, fired),
            ]
    scores.append(_scores(state("ghost"), "none", 0.0))  # a score without a state is ignored
    s = summarize_expert(states, scores, meta={"env": "alfworld", "agent": "local:x"})
    assert s.conditions == ["none", "library", "placebo", "shuffled"]
    assert {"all", "seen", "unseen", "on-path", "off-path"} <= set(s.groups)
    p = lambda x: float(choice_probabilities(np.array([x, 0, 0, 0.0]), 1.0)[0])  # noqa: E731
    d = s.diff("library", "none")
    assert d.diff.n == 18 and d.diff.clusters == 6
    assert d.diff.mean == pytest.approx(np.mean([p(1) - p(0)] * 9 + [p(2) - p(0)] * 9))
    assert s.diff("library", "none", "seen").diff.mean == pytest.approx(p(1) - p(0))
    assert d.diff.lo > 0
    assert s.diff("library", "placebo").diff.mean == pytest.approx(d.diff.mean)
    assert s.diff("library", "shuffled", metric="top1").diff.mean == 0.0
    assert s.figure("none").p_opt.mean == pytest.approx(p(0))
    assert s.figure("library").skills_shown == 1.0
    # recomputing p_opt at another temperature uses the stored scores
    t0 = summarize_expert(states, scores, temperature=0.0)
    assert t0.figure("library").p_opt.mean == 1.0 and t0.figure("none").p_opt.mean == 1.0
    by = {k.skill: k for k in s.skills}
    assert by["s1"].states_fired == 18 and by["s2"].states_fired == 6
    assert by["s2"].not_fired.n == 12
    assert {t.group for t in s.task_types} == {"a", "b"}
    files = write_expert_report(s, tmp_path)
    md = files["report.md"].read_text()
    assert "| all | library - placebo | 18 | 6 |" in md and "## Per skill" in md
    assert json.loads(files["summary.json"].read_text())["labels"]["states"] == 18
    for name in ("expert_conditions.png", "expert_paired.png", "expert_skills.png"):
        assert files[name].read_bytes()[:4] == b"\x89PNG"


def test_expert_config_checks():
    ok = EvalConfig(env="alfworld", agent="local:default", skills=["s"], metric="expert")
    assert ok.temperature == 1.0 and ok.mode == "score"
    assert ok.expert.conditions == ["none", "library", "placebo", "shuffled"]
    assert EvalConfig.model_validate(ok.model_dump()) == ok
    only = EvalConfig(
        env="alfworld",
        agent="local:default",
        skills=["s"],
        metric="expert",
        expert={"conditions": ["placebo"]},
        temperature=0,
    )
    assert only.expert.conditions == ["library", "placebo"] and only.temperature == 0.0
    with pytest.raises(ValueError, match="planner"):
        EvalConfig(env="scienceworld", agent="local:default", skills=["s"], metric="expert")
    with pytest.raises(ValueError, match="score mode"):
        EvalConfig(env="alfworld", agent="python:m:f", skills=["s"], metric="expert")
    with pytest.raises(ValueError, match="exactly one"):
        EvalConfig(env="alfworld", agent="local:default", skills=["a", "b"], metric="expert")
    with pytest.raises(ValueError, match="perturb_share"):
        EvalConfig(
            env="alfworld",
            agent="local:default",
            skills=["s"],
            metric="expert",
            expert={"perturb_share": 2},
        )


@pytest.mark.parametrize(
    "path", sorted((REPO / "benchmarks" / "configs").glob("efficacy_*.yaml")), ids=lambda p: p.name
)
def test_efficacy_configs_validate(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "efficacy_bench", REPO / "benchmarks" / "efficacy.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    configs, out = mod.load_config(path, {})
    assert [c.difficulty for c in configs] == ["tiny", "small"]
    for c in configs:
        assert c.metric == "expert" and c.mode == "score" and c.rollout.score_norm == "mean"
        assert set(c.splits) == {"seen", "unseen"} and c.expert.placebo_skills
        assert all(Path(p).is_dir() for p in [*c.skills, *c.expert.placebo_skills])
