"""The Eval page's data: conditions side by side with CIs, per split, task type and skill; for
the expert metric also each state's candidates with their probability under every condition.

Exports ``eval_payload``.

The statistics are the project's own (:func:`reskill_gym.evaluation.report.summarize`,
:func:`reskill_gym.evaluation.expert_report.summarize_expert`), recomputed from the records
whenever they grew, so a live evaluation's page follows it; a damaged line is skipped.
Probabilities of an expert state are the agent's choice rule
(:func:`reskill_gym.rollout.choice_probabilities`) over the recorded scores at the recorded
temperature; the optimal commands are the state's look-ahead labels.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from reskill_gym import safe_files
from reskill_gym.view.sources import MAX_LINE_BYTES, RunFolder

__all__ = ["eval_payload"]

logger = logging.getLogger(__name__)

#: Bootstrap resamples for the viewer's CIs (the report's 10,000 cost seconds on big runs).
N_BOOT = 2000
_CACHE: dict[tuple[str, Any], dict[str, Any]] = {}


def _success(run: RunFolder) -> dict[str, Any]:
    """Streams ``episodes.jsonl`` once per change (records are not kept: big evals stay cheap)."""
    from reskill_gym.evaluation.episode_log import EvalEpisode
    from reskill_gym.evaluation.report import summarize

    path = run.path / "episodes.jsonl"
    try:
        st = path.stat()
    except OSError:
        return {"metric": "success", "summary": None, "episodes": 0}
    key = (str(path), (st.st_ino, st.st_size, st.st_mtime_ns))
    if key not in _CACHE:
        recs = []
        with safe_files.open_regular(path) as fh:
            for raw in fh:
                if not raw.endswith(b"\n") or len(raw) > MAX_LINE_BYTES:
                    continue  # a torn last line (a writer mid-append) or a damaged one
                try:
                    recs.append(EvalEpisode.model_validate_json(raw))
                except (ValidationError, ValueError):
                    continue
        cfg = run.config
        meta = {"temperature": cfg.get("temperature")} if "temperature" in cfg else {}
        summary = summarize(recs, n_boot=N_BOOT, meta=meta) if recs else None
        _CACHE[key] = {
            "metric": "success",
            "summary": summary.model_dump(mode="json") if summary is not None else None,
            "episodes": len(recs),
        }
    return _CACHE[key]


def _expert(run: RunFolder) -> dict[str, Any]:
    import numpy as np

    from reskill_gym.evaluation.expert import ExpertScore
    from reskill_gym.evaluation.expert_report import summarize_expert
    from reskill_gym.evaluation.states import ExpertState
    from reskill_gym.rollout import choice_probabilities

    st_tail, sc_tail = run.tail("states.jsonl"), run.tail("scores.jsonl")
    st_rows, sc_rows = st_tail.rows(), sc_tail.rows()
    key = (str(run.path), ("expert", st_tail.version, sc_tail.version))
    if key in _CACHE:
        return _CACHE[key]
    states, scores = [], []
    for r in st_rows:
        try:
            states.append(ExpertState.model_validate(r))
        except ValidationError:
            continue
    for r in sc_rows:
        try:
            scores.append(ExpertScore.model_validate(r))
        except ValidationError:
            continue
    summary = summarize_expert(states, scores, n_boot=N_BOOT) if scores else None
    by_state: dict[str, dict[str, ExpertScore]] = {}
    for s in scores:
        by_state.setdefault(s.state_key, {})[s.condition] = s
    table = []
    for st in states:
        per = by_state.get(st.key, {})
        conditions = {}
        for cond, s in per.items():
            probs: list[float] = (
                [float(p) for p in choice_probabilities(np.asarray(s.scores), s.temperature)]
                if s.scores
                else []
            )
            conditions[cond] = {
                "candidates": s.candidates,
                "probs": [round(p, 4) for p in probs],
                "p_opt": s.p_opt,
                "chosen": s.chosen,
                "skill_ids": s.skill_ids,
            }
        table.append(
            {
                "key": st.key,
                "task_id": st.task_id,
                "task": st.task,
                "task_type": st.task_type,
                "step": st.step,
                "observation": st.observations[-1] if st.observations else "",
                "expert_action": st.expert_action,
                "optimal": st.optimal,
                "conditions": conditions,
            }
        )
    _CACHE[key] = {
        "metric": "expert",
        "summary": summary.model_dump(mode="json") if summary is not None else None,
        "states": table,
    }
    return _CACHE[key]


def eval_payload(run: RunFolder) -> dict[str, Any]:
    """The eval page of ``run`` (``{"metric": None}`` for a training run)."""
    if run.kind == "eval":
        return _success(run)
    if run.kind == "expert":
        return _expert(run)
    return {"metric": None}
