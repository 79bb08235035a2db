"""The version tester against a port of the published tracker: cost per training step and
whether both make the same accept/revert decisions.

The baseline is ``reskill_gym.testing.published_tracker.PublishedTracker``, a port of the
published ReSkill ``VersionABTracker`` (per-rollout Monte-Carlo Thompson probability with
``np.random``, the whole posterior discounted by ``M / (M + n)``, M from the one-step-ahead
predictive likelihood of every decided test, scored in Python loops over the 2,000-point
grid).

Three measurements:

1. **Per step** (live campaigns on drifting simulated arms, 30 groups x 8 rollouts a step,
   ``--tests`` tests of 5 steps): assign every rollout, record the outcomes, flush, decide when
   due (which includes scoring the finished test for the fit of M). Ours is timed with the
   published settings (``TesterConfig.published()``: predictive fit, posterior discounted)
   and with the project defaults (pooled fit, evidence discounted). Each implementation
   assigns its own rollouts, so the campaigns see different outcomes; only costs compare.
2. **M from scratch** on ``--history`` finished tests of 5 steps: our vectorised fits
   against the port scoring every test (the published tracker never refits from scratch; this
   is the cost of restoring a fit from recorded tests).
3. **Decisions on replayed outcomes**: ``--replay-tests`` tests (drifting, stationary and
   equal arms, ``--replay-groups`` groups of 8 a step) are recorded once, then the same
   per-step outcomes are fed to the port and to our tester in several settings. With the
   published settings we require the same accept/revert, the same M and the same
   posteriors (1e-9) every time; the project defaults are counted, not required.

Run: ``.venv/bin/python benchmarks/perf/version_tester.py [--tests 12] [--history 50]
[--replay-tests 40] [--replay-groups 30] [--seed 0] [--json results.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reskill_gym.testing.published_tracker import PublishedTracker
from reskill_gym.versioning import (
    GroupSpec,
    TesterConfig,
    VersionTester,
    fit_concentration,
)

RateFn = Callable[[int], float]
# Both arms of most scenarios change over a test as a learning policy does.
SCENARIOS: dict[str, tuple[RateFn, RateFn]] = {
    "up": (lambda k: 0.40 + 0.05 * k, lambda k: 0.15 + 0.15 * k),
    "down": (lambda k: 0.25 + 0.10 * k, lambda k: 0.55 + 0.01 * k),
    "flat": (lambda k: 0.50, lambda k: 0.60),
    "equal": (lambda k: 0.50, lambda k: 0.50),
    "near": (lambda k: 0.45 + 0.02 * k, lambda k: 0.47 + 0.01 * k),
}
SETTINGS: dict[str, TesterConfig] = {
    "ours, published settings": TesterConfig.published(),
    "ours, project defaults": TesterConfig(),
    "ours, predictive + evidence": TesterConfig(m_fit="predictive"),
    "ours, pooled + posterior": TesterConfig(discount_convention="posterior"),
}


def groups(n_groups: int) -> list[GroupSpec]:
    return [GroupSpec(group_id=f"g{i}", task_id=f"task{i}", n=8) for i in range(n_groups)]


class Laps:
    """Wall-clock and process-CPU seconds per named part of each step.

    CPU time is reported beside wall time because this benchmark runs on shared machines,
    where wall time also measures the neighbours (both implementations are single-threaded).
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, tuple[float, float]]] = []
        self.deciding: list[bool] = []

    def begin(self) -> None:
        self._current: dict[str, tuple[float, float]] = {}
        self._w, self._c = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self._current[name] = (w - self._w, c - self._c)
        self._w, self._c = w, c

    def end(self, decided: bool) -> None:
        self.steps.append(self._current)
        self.deciding.append(decided)

    def stat(self, parts: Sequence[str], clock: int, how: str = "median") -> float:
        """Summed ``parts`` over steps, in ms (clock 0 wall, 1 CPU); how: median, mean,
        decide (mean over steps that decided)."""
        vals = [sum(step[p][clock] for p in parts) for step in self.steps]
        if how == "decide":
            vals = [v for v, d in zip(vals, self.deciding) if d]
        if not vals:
            return math.nan
        return 1e3 * (statistics.median(vals) if how == "median" else statistics.fmean(vals))


PARTS = ("assign", "record", "flush_decide")


def time_ours(config: TesterConfig, n_tests: int, n_groups: int, seed: int) -> Laps:
    tester = VersionTester(config, rng=seed)
    env = np.random.default_rng(seed + 1)
    gs = groups(n_groups)
    kinds = list(SCENARIOS)
    laps, step, k, decided = Laps(), 0, 0, 0
    fa = fb = SCENARIOS["up"][0]
    while decided < n_tests:
        laps.begin()
        if not tester.active:
            fa, fb = SCENARIOS[kinds[int(env.integers(len(kinds)))]]
            tester.start(f"inc{step}", f"cand{step}", step=step)
            k = 0
        cand = tester.versions[1]
        plan = tester.assign(gs)
        laps.lap("assign")
        flat = [v for g in plan for v in g]
        p = np.array([fb(k) if v == cand else fa(k) for v in flat])
        tester.record_many(flat, env.random(len(flat)) < p)
        laps.lap("record")
        d = tester.end_step(step)
        laps.lap("flush_decide")
        laps.end(d is not None)
        decided += d is not None
        step, k = step + 1, k + 1
    return laps


def time_port(n_tests: int, n_groups: int, seed: int) -> Laps:
    tracker = PublishedTracker(weighting_strategy="dynamic", rng=np.random.RandomState(seed))
    env = np.random.default_rng(seed + 1)
    kinds = list(SCENARIOS)
    laps, step, k, decided = Laps(), 0, 0, 0
    fa = fb = SCENARIOS["up"][0]
    while decided < n_tests:
        laps.begin()
        if not tracker.is_testing:
            fa, fb = SCENARIOS[kinds[int(env.integers(len(kinds)))]]
            tracker.start_version_test(f"cand{step}", step=step)
            k = 0
        plan = [tracker.sample_rollout_decision() for _ in range(8 * n_groups)]
        laps.lap("assign")
        p = np.array([fb(k) if is_new else fa(k) for is_new in plan])
        for is_new, won in zip(plan, (env.random(len(plan)) < p).tolist()):
            tracker.record_episode_outcome(is_new, 1.0 if won else 0.0)
        laps.lap("record")
        tracker.record_step()
        d = tracker.decide() if tracker.should_decide() else None
        laps.lap("flush_decide")
        laps.end(d is not None)
        decided += d is not None
        step, k = step + 1, k + 1
    return laps


def record_campaign(n_tests: int, n_groups: int, seed: int) -> list[dict[str, Any]]:
    """Outcomes of ``n_tests`` live tests (our published settings assign), per step and arm."""
    tester = VersionTester(TesterConfig.published(), rng=seed)
    env = np.random.default_rng(seed + 1)
    gs = groups(n_groups)
    kinds = list(SCENARIOS)
    logs, step = [], 0
    for i in range(n_tests):
        kind = kinds[int(env.integers(len(kinds)))]
        fa, fb = SCENARIOS[kind]
        inc, cand = f"v{i}", f"v{i}-cand"
        tester.start(inc, cand, step=step)
        steps: list[tuple[int, int, int, int]] = []  # (s_inc, n_inc, s_cand, n_cand)
        k = 0
        while True:
            flat = [v for g in tester.assign(gs) for v in g]
            is_cand = np.array([v == cand for v in flat])
            won = env.random(len(flat)) < np.where(is_cand, fb(k), fa(k))
            tester.record_many(flat, won)
            steps.append(
                (
                    int(won[~is_cand].sum()),
                    int((~is_cand).sum()),
                    int(won[is_cand].sum()),
                    int(is_cand.sum()),
                )
            )
            d = tester.end_step(step)
            step, k = step + 1, k + 1
            if d is not None:
                break
        logs.append({"scenario": kind, "steps": steps, "live": d.outcome})
    return logs


def replay_port(logs: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    tracker = PublishedTracker(weighting_strategy="dynamic", rng=np.random.RandomState(seed))
    out = []
    for t, log in enumerate(logs):
        tracker.start_version_test(f"v{t}-cand", step=0)
        stats = None
        for s_inc, n_inc, s_cand, n_cand in log["steps"]:
            for j in range(n_cand):
                tracker.record_episode_outcome(True, 1.0 if j < s_cand else 0.0)
            for j in range(n_inc):
                tracker.record_episode_outcome(False, 1.0 if j < s_inc else 0.0)
            tracker.record_step()
            if tracker.should_decide():
                _, stats = tracker.decide()
        assert stats is not None, f"replayed test {t} did not decide in the port"
        out.append(stats)
    return out


def replay_ours(logs: list[dict[str, Any]], config: TesterConfig, seed: int) -> list[Any]:
    tester = VersionTester(config, rng=seed)
    out = []
    for t, log in enumerate(logs):
        inc, cand = f"v{t}", f"v{t}-cand"
        tester.start(inc, cand, step=0)
        d = None
        for step, (s_inc, n_inc, s_cand, n_cand) in enumerate(log["steps"]):
            outcomes = [True] * s_inc + [False] * (n_inc - s_inc)
            outcomes += [True] * s_cand + [False] * (n_cand - s_cand)
            tester.record_many([inc] * n_inc + [cand] * n_cand, np.array(outcomes, dtype=bool))
            d = tester.end_step(step)
        assert d is not None, f"replayed test {t} did not decide in our tester"
        out.append(d)
    return out


def compare(ours: list[Any], port: list[dict[str, Any]]) -> dict[str, Any]:
    same = same_full = 0
    mismatches = []
    for t, (d, p) in enumerate(zip(ours, port)):
        inc, cand = d.incumbent, d.candidates[0]
        ok = (d.outcome == "accept") == p["accepted"]
        post = all(
            math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
            for x, y in (
                (d.posteriors[cand].alpha, p["alpha_new"]),
                (d.posteriors[cand].beta, p["beta_new"]),
                (d.posteriors[inc].alpha, p["alpha_old"]),
                (d.posteriors[inc].beta, p["beta_old"]),
            )
        )
        full = ok and d.m == p["m_used"] and post
        same += ok
        same_full += full
        if not full:
            mismatches.append(
                {"test": t, "ours": [d.outcome, d.m], "port": [p["accepted"], p["m_used"]]}
            )
    return {
        "tests": len(port),
        "same_decision": same,
        "same_m_and_posteriors": same_full,
        "mismatches": mismatches,
    }


def history_tests(n_tests: int, seed: int) -> list[tuple[list[list[int]], list[list[int]]]]:
    logs = record_campaign(n_tests, 30, seed)
    return [
        ([[r[0], r[2]] for r in log["steps"]], [[r[1], r[3]] for r in log["steps"]]) for log in logs
    ]


def time_cold_fits(
    tests: list[tuple[list[list[int]], list[list[int]]]], reps: int = 5
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("pooled", "predictive"):
        walls, cpus = [], []
        for _ in range(reps):
            w, c = time.perf_counter(), time.process_time()
            m = fit_concentration(tests, (1, 2000), (1.0, 1.0), method=method)  # type: ignore[arg-type]
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        out[f"ours_{method}"] = {
            "m": m,
            "wall_ms": 1e3 * statistics.median(walls),
            "cpu_ms": 1e3 * statistics.median(cpus),
        }
    port = PublishedTracker(weighting_strategy="dynamic")
    w, c = time.perf_counter(), time.process_time()
    for succ, eps in tests:
        port._score_test(
            [
                {"new_m": s[1], "new_n": n[1], "old_m": s[0], "old_n": n[0]}
                for s, n in zip(succ, eps)
            ]
        )
    port._update_m()
    out["port"] = {
        "m": port.m,
        "wall_ms": 1e3 * (time.perf_counter() - w),
        "cpu_ms": 1e3 * (time.process_time() - c),
    }
    return out


def run(
    n_tests: int, n_history: int, n_replay: int, replay_groups: int, seed: int
) -> dict[str, Any]:
    res: dict[str, Any] = {"load_start": os.getloadavg(), "tests": n_tests}
    laps = {
        "ours, published settings": time_ours(TesterConfig.published(), n_tests, 30, seed),
        "ours, project defaults": time_ours(TesterConfig(), n_tests, 30, seed),
        "port of published": time_port(n_tests, 30, seed),
    }
    res["per_step_ms"] = {
        name: {
            f"{how}_{clock_name}": lp.stat(PARTS, clock, how)
            for how in ("median", "mean", "decide")
            for clock, clock_name in ((0, "wall"), (1, "cpu"))
        }
        | {f"{part}_median_cpu": lp.stat([part], 1) for part in PARTS}
        | {"steps": len(lp.steps)}
        for name, lp in laps.items()
    }
    res["cold_fit"] = time_cold_fits(history_tests(n_history, seed + 50))
    res["cold_fit"]["history_tests"] = n_history
    logs = record_campaign(n_replay, replay_groups, seed + 100)
    port = replay_port(logs, seed)
    res["replay"] = {"groups": replay_groups, "scenarios": [log["scenario"] for log in logs]}
    for name, cfg in SETTINGS.items():
        ours = replay_ours(logs, cfg, seed)
        res["replay"][name] = compare(ours, port)
        if name == "ours, published settings":
            res["replay"]["equals_live"] = [d.outcome for d in ours] == [
                log["live"] for log in logs
            ]
    res["replay"]["port_accepted"] = sum(p["accepted"] for p in port)
    res["load_end"] = os.getloadavg()
    return res


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=12, help="tests per timed live campaign")
    parser.add_argument("--history", type=int, default=50, help="finished tests for the cold fit")
    parser.add_argument("--replay-tests", type=int, default=40, help="tests replayed into all")
    parser.add_argument("--replay-groups", type=int, default=30, help="groups of 8 per replay step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    res = run(args.tests, args.history, args.replay_tests, args.replay_groups, args.seed)
    ls, le = res["load_start"], res["load_end"]
    print(
        f"load average (1/5/15 min): start {ls[0]:.2f} {ls[1]:.2f} {ls[2]:.2f}, end {le[0]:.2f} {le[1]:.2f} {le[2]:.2f}"
    )
    print(f"per training step, 30 groups x 8 rollouts, {res['tests']} tests of 5 steps (ms)")
    head = f"{'':<27}{'median wall':>12}{'median cpu':>11}{'mean cpu':>9}{'decide cpu':>11}"
    print(head + f"{'assign':>8}{'record':>8}{'flush':>8}")
    for name, r in res["per_step_ms"].items():
        print(
            f"{name:<27}{r['median_wall']:>12.2f}{r['median_cpu']:>11.2f}{r['mean_cpu']:>9.2f}"
            f"{r['decide_cpu']:>11.2f}{r['assign_median_cpu']:>8.2f}{r['record_median_cpu']:>8.2f}"
            f"{r['flush_decide_median_cpu']:>8.2f}"
        )
    port_step = res["per_step_ms"]["port of published"]
    for name in ("ours, published settings", "ours, project defaults"):
        r = res["per_step_ms"][name]
        print(
            f"port / {name}: median step {port_step['median_cpu'] / r['median_cpu']:.0f}x cpu, "
            f"{port_step['median_wall'] / r['median_wall']:.0f}x wall; mean step "
            f"{port_step['mean_cpu'] / r['mean_cpu']:.0f}x cpu"
        )
    cf = res["cold_fit"]
    print(f"M from scratch on {cf['history_tests']} tests x 5 steps (2,000-point grid):")
    for name in ("ours_pooled", "ours_predictive", "port"):
        print(
            f"  {name:<16} M={cf[name]['m']!s:>6}  {cf[name]['wall_ms']:>9.1f} ms wall {cf[name]['cpu_ms']:>9.1f} ms cpu"
        )
    rp = res["replay"]
    print(
        f"replayed outcomes of {len(rp['scenarios'])} tests ({rp['groups']} groups x 8 a step), "
        f"port accepted {rp['port_accepted']}:"
    )
    for name in SETTINGS:
        r = rp[name]
        print(
            f"  {name:<29} same decision {r['same_decision']}/{r['tests']}, "
            f"same M and posteriors {r['same_m_and_posteriors']}/{r['tests']}"
        )
    print(f"replayed decisions equal the live ones: {rp['equals_live']}")
    if args.json:
        _write_json(args.json, res)
    pub = rp["ours, published settings"]
    ok = pub["same_m_and_posteriors"] == pub["tests"] and rp["equals_live"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
