"""``benchmarks/efficacy.py --reference``: a second library scored on the first run's states.

The reference run's states of the chosen splits are reused, its ``none`` scores copied, and
its ``library`` scores join the combined report as the reference condition, paired state by
state with the new library.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from reskill_gym.evaluation import EvalConfig
from reskill_gym.evaluation.expert import SCORES_FILE, STATES_FILE, ExpertScore, score_figures
from reskill_gym.evaluation.states import ActionLabel, ExpertState

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "efficacy.py"
ADMISSIBLE = ["go to microwave 1", "look", "inventory"]


@pytest.fixture(scope="module")
def efficacy() -> Any:
    spec = importlib.util.spec_from_file_location("bench_efficacy", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _state(task: int, split: str) -> ExpertState:
    return ExpertState(
        key=f"{split}|tiny/{split}/{task:04d}|expert|0",
        env="alfworld",
        split=split,
        task_id=f"tiny/{split}/{task:04d}",
        task="heat some mug and put it in cabinet",
        task_type="pick_heat_then_place_in_recep",
        trajectory="expert",
        step=0,
        prefix=[],
        observations=["You are in the middle of a room."],
        admissible=ADMISSIBLE,
        expert_action="go to microwave 1",
        plan_len=3,
        difficulty="tiny",
        labels=[
            ActionLabel(action="go to microwave 1", plan_len=2),
            ActionLabel(action="look", plan_len=3),
            ActionLabel(action="inventory", plan_len=3),
        ],
    )


def _score(st: ExpertState, cond: str, logit: float) -> ExpertScore:
    s = [logit, 0.0, 0.0]
    f = score_figures(s, ADMISSIBLE, optimal=st.optimal, expert=st.expert_action, temperature=1)
    return ExpertScore(
        key=f"{cond}|{st.key}",
        state_key=st.key,
        condition=cond,
        candidates=ADMISSIBLE,
        scores=s,
        score_norm="mean",
        temperature=1.0,
        chosen=ADMISSIBLE[0],
        **f,
    )


def _lines(records: list[Any]) -> str:
    return "".join(r.model_dump_json() + "\n" for r in records)


def test_reference_states_none_scores_and_pairs(tmp_path: Path, efficacy: Any) -> None:
    ref, out = tmp_path / "ref", tmp_path / "evolved"
    states = [_state(t, split) for split in ("seen", "unseen") for t in range(4)]
    (ref / "tiny").mkdir(parents=True)
    (ref / "tiny" / STATES_FILE).write_text(_lines(states))
    ref_scores = [_score(s, "none", 0.0) for s in states]
    ref_scores += [_score(s, "library", 0.5) for s in states]
    (ref / "tiny" / SCORES_FILE).write_text(_lines(ref_scores))

    efficacy.seed_from_reference(out / "tiny", ref / "tiny", ["unseen"])
    got = [json.loads(x) for x in (out / "tiny" / STATES_FILE).read_text().splitlines()]
    assert [g["split"] for g in got] == ["unseen"] * 4
    copied = [json.loads(x) for x in (out / "tiny" / SCORES_FILE).read_text().splitlines()]
    assert {c["condition"] for c in copied} == {"none"} and len(copied) == 4
    # what run_expert would add for the new library (scored higher than the reference)
    with (out / "tiny" / SCORES_FILE).open("a") as f:
        f.write(_lines([_score(s, "library", 1.5) for s in states if s.split == "unseen"]))
    efficacy.seed_from_reference(out / "tiny", ref / "tiny", ["unseen"])  # a rerun keeps it
    assert len((out / "tiny" / SCORES_FILE).read_text().splitlines()) == 8

    cfg = EvalConfig(
        env="alfworld",
        skills=["skills/alfworld"],
        agent="local:default",
        metric="expert",
        difficulty="tiny",
        splits=["unseen"],
    )
    summary, table = efficacy.combine(out, [cfg], reference=ref, reference_name="seed")
    assert summary.conditions == ["none", "library", "seed"]
    d = summary.diff("library", "seed", "unseen").diff
    assert d.n == 4 and d.mean > 0.1 and d.lo > 0
    assert summary.diff("seed", "none", "unseen").diff.mean > 0
    assert "library - seed" in table
    with pytest.raises(SystemExit, match="no states.jsonl"):
        efficacy.seed_from_reference(tmp_path / "x", tmp_path / "missing", ["unseen"])
