"""``--metric expert`` end to end on the real ALFWorld engine: a real tiny LM through the score
agent (fast), resume and pinning; the slow test runs ``reskill eval --metric expert`` with
SmolLM2 on a CI-sized sample."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reskill_gym.evaluation import EvalConfig, run_expert
from reskill_gym.evaluation.config import EvalAbortedError
from reskill_gym.evaluation.expert import LibraryView, score_figures, state_prompt

REPO = Path(__file__).resolve().parents[2]
SKILLS = REPO / "skills" / "alfworld"


def config(**kw):
    base = dict(
        env="alfworld",
        agent="local:default",
        skills=[str(SKILLS)],
        metric="expert",
        splits=["unseen"],
        tasks=2,
        difficulty="tiny",
        expert={"states_per_task": 2},
    )
    return EvalConfig(**(base | kw))


def test_run_resume_and_reused_prompts(tmp_path, tiny_backend):
    from reskill_gym.evaluation.agents import ScoreAgent

    cfg = config()
    agent = ScoreAgent(tiny_backend, temperature=1.0)
    out = tmp_path / "out"
    first = run_expert(cfg, out, agent=agent, stop_after=1)
    n_cond = len(first.conditions)
    assert first.ran == n_cond and len(first.states) >= 3  # one state, every condition
    assert (out / "config.json").exists() and (out / "states.jsonl").exists()
    second = run_expert(cfg, out, agent=agent)
    assert second.skipped == n_cond and second.ran == n_cond * (len(second.states) - 1)
    assert run_expert(cfg, out, agent=agent).ran == 0
    states = {s.key: s for s in second.states}
    lib = LibraryView.from_folder(SKILLS)
    for r in second.scores:
        st = states[r.state_key]
        assert r.candidates == st.admissible and len(r.scores) == len(st.admissible)
        f = score_figures(
            r.scores, r.candidates, optimal=st.optimal, expert=st.expert_action, temperature=1.0
        )
        assert (r.p_opt, r.top1, r.expert_rank) == (f["p_opt"], f["top1"], f["expert_rank"])
        if r.reused:  # the same prompt as another condition: the same scores, not recomputed
            src = next(x for x in second.scores if x.key == f"{r.reused}|{r.state_key}")
            assert src.scores == r.scores and r.input_tokens == 0
    # a library score is the agent's answer to the replayed prompt, recomputable
    r = next(x for x in second.scores if x.condition == "library" and not x.reused)
    p = state_prompt(states[r.state_key], lib, cfg.rollout)
    again = agent.act(p.messages, p.info, np.random.default_rng(0))
    assert again.choice.scores == pytest.approx(r.scores, abs=1e-5)
    assert p.skill_ids == r.skill_ids
    # a setting that changes the states refuses to resume
    with pytest.raises(EvalAbortedError, match="'expert'"):
        run_expert(config(expert={"states_per_task": 2, "perturb_share": 0.5}), out, agent=agent)


@pytest.mark.slow
def test_reskill_eval_metric_expert_end_to_end(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    t0 = time.monotonic()
    out = tmp_path / "expert"
    args = [
        "eval", "--metric", "expert", "--env", "alfworld", "--agent", "local:default",
        "--skills", str(SKILLS), "--split", "seen", "--split", "unseen", "--tasks", "1",
        "--states-per-task", "2", "--difficulty", "tiny", "--out", str(out),
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "library-placebo" in res.output
    md = (out / "report.md").read_text()
    assert "## Conditions side by side" in md and "library - placebo" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["temperature"] == 1.0 and summary["labels"]["tasks"] == 2
    scores = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert {s["condition"] for s in scores} >= {"none", "library", "placebo"}
    assert all(0.0 <= s["p_opt"] <= 1.0 for s in scores)
    again = CliRunner().invoke(app, args)  # resume: nothing left to score
    assert again.exit_code == 0 and " 0 scores run" in again.output
    print(f"reskill eval --metric expert, 2 tasks: {time.monotonic() - t0:.1f}s", file=sys.stderr)
