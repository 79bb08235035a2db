"""The Run page's data: per-step metric columns, version-test spans and the config.

Exports ``run_overview`` and ``metric_columns``.

Curves come from ``metrics.jsonl`` (the shared namespace every trainer writes:
``episode/*``, ``arms/<arm>/*``, ``versions/*``, ``creator/*``, ``agent/*``, ...), sent as
columns (one list per key, ``None`` where a step has no finite value) so the browser draws
them without reshaping. Version tests, from start to decision, come from ``events.jsonl``
through :func:`reskill_gym.report.version_lives`, the same reading ``reskill report`` uses.

>>> metric_columns([{"step": 1, "a": 0.5, "b": "x"}, {"step": 0, "a": float("nan")}])
{'step': [0, 1], 'columns': {'a': [None, 0.5]}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from reskill_gym.report import version_lives
from reskill_gym.view.sources import RunFolder

__all__ = ["run_overview", "metric_columns"]


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def metric_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rows -> ``{"step": [...], "columns": {key: [...]}}``, by step; the last row of a step
    wins (a replayed step after a resume)."""
    by_step: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        step = row.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = row
    steps = sorted(by_step)
    keys: dict[str, None] = {}
    for s in steps:
        for k, v in by_step[s].items():
            if k not in ("step", "time") and _number(v) is not None:
                keys.setdefault(k, None)
    columns = {k: [_number(by_step[s].get(k)) for s in steps] for k in sorted(keys)}
    return {"step": steps, "columns": columns}


def run_overview(run: RunFolder) -> dict[str, Any]:
    """Everything the Run page shows for one run (cheap: logs are followed incrementally)."""
    rows = run.metrics.rows()
    events = run.events.rows()
    cfg = run.config
    cfg_run = cfg.get("run") if isinstance(cfg.get("run"), dict) else {}
    tests = [
        {
            "candidate": life.version,
            "base": life.base,
            "created": life.created,
            "started": life.test_started,
            "decided": life.decided,
            "outcome": life.outcome,
            "operations": life.operations,
            "reason": life.reason,
        }
        for life in version_lives(events)
    ]
    heads = [r.get("versions/head") for r in rows if isinstance(r.get("versions/head"), str)]
    return {
        "run": run.describe(),
        "config": cfg,
        "metrics": metric_columns(rows),
        "tests": tests,
        "head": heads[-1] if heads else None,
        "planned_steps": cfg_run.get("steps") if isinstance(cfg_run, dict) else None,
        "events": len(events),
    }
