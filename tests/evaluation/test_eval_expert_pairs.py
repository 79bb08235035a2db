"""``summarize_expert(pairs=...)``: two libraries scored on the same states compare paired
(a revised library against the one it replaces), with task-resampled CIs; the default pairs
are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from reskill_gym.evaluation.expert import ExpertScore, score_figures
from reskill_gym.evaluation.expert_report import PAIRS, summarize_expert
from reskill_gym.evaluation.states import ActionLabel, ExpertState
from reskill_gym.rollout import choice_probabilities

ADMISSIBLE = ["go to microwave 1", "look", "inventory", "go to cabinet 1"]


def _state(task_id: str, step: int, split: str) -> ExpertState:
    return ExpertState(
        key=f"{split}|{task_id}|expert|{step}",
        env="alfworld",
        split=split,
        task_id=task_id,
        task="heat some mug and put it in cabinet",
        task_type="pick_heat_then_place_in_recep",
        trajectory="expert",
        step=step,
        prefix=["look"] * step,
        observations=["You are in the middle of a room."] * (step + 1),
        admissible=ADMISSIBLE,
        expert_action="go to microwave 1",
        plan_len=4,
        labels=[
            ActionLabel(action="go to microwave 1", plan_len=3),
            ActionLabel(action="look", plan_len=4),
            ActionLabel(action="inventory", plan_len=4),
            ActionLabel(action="go to cabinet 1", plan_len=5),
        ],
    )


def _score(st: ExpertState, cond: str, logit: float) -> ExpertScore:
    s = [logit, 0.0, 0.0, 0.0]
    f = score_figures(s, st.admissible, optimal=st.optimal, expert=st.expert_action, temperature=1)
    return ExpertScore(
        key=f"{cond}|{st.key}",
        state_key=st.key,
        condition=cond,
        candidates=st.admissible,
        scores=s,
        score_norm="mean",
        temperature=1.0,
        chosen=st.admissible[0],
        **f,
    )


def _p(logit: float) -> float:
    return float(choice_probabilities(np.array([logit, 0.0, 0.0, 0.0]), 1.0)[0])


def test_revised_library_compares_paired_with_the_old_one():
    states, scores = [], []
    for t in range(6):
        split = "seen" if t < 3 else "unseen"
        for k in range(2):
            st = _state(f"t{t}", k, split)
            states.append(st)
            # the revision helps on unseen tasks only, and only in task t5 by more
            new = 1.0 + (split == "unseen") * (2.0 if t == 5 else 1.0)
            scores += [_score(st, "none", 0.0), _score(st, "library", 1.0)]
            scores.append(_score(st, "revised", new))
    pairs = [("revised", "library"), ("revised", "none"), ("library", "none"), ("x", "none")]
    s = summarize_expert(states, scores, pairs=pairs, n_boot=2000)
    assert s.conditions == ["none", "library", "revised"]  # free names after the known ones
    assert s.figure("revised", "unseen").p_opt.mean == pytest.approx(
        np.mean([_p(2.0)] * 4 + [_p(3.0)] * 2)
    )
    d = s.diff("revised", "library", "unseen").diff
    assert d.n == 6 and d.clusters == 3
    assert d.mean == pytest.approx(np.mean([_p(2.0) - _p(1.0)] * 4 + [_p(3.0) - _p(1.0)] * 2))
    assert 0 < d.lo < d.mean < d.hi  # tasks resampled: t5 widens the interval
    assert s.diff("revised", "library", "seen").diff.mean == pytest.approx(0.0)
    assert s.diff("revised", "none", "unseen").diff.mean > d.mean
    with pytest.raises(KeyError):  # a pair naming an absent condition is left out
        s.diff("x", "none")
    with pytest.raises(KeyError):  # only the pairs asked for
        s.diff("library", "placebo")
    # default: the standard pairs only, whatever else was scored
    default = summarize_expert(states, scores, n_boot=200)
    assert {(x.condition, x.baseline) for x in default.diffs} == {("library", "none")}
    assert ("library", "none") == PAIRS[0]
