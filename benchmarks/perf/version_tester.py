"""Per-training-step cost of the version tester against a plain-Python reference.

One training step = assign 30 groups x 8 rollouts, record 240 outcomes, refit the discount
concentration M on 50 finished tests of 5 steps each (2,000-point grid, 500 records), flush
with the discount and decide. ``reskill_gym.versioning.VersionTester`` does this with an exact
win probability computed once per step and a vectorised grid; ``ReferenceTester`` below has
the published algorithm's shape: 10,000 Monte-Carlo draws (Python ``random``) per rollout to
get the Thompson probability, and Python loops over grid points and records.

Identical decisions: assignment cannot be compared draw for draw (the reference assigns each
rollout by its own Monte-Carlo estimate and coin flip, we use the exact probability and a
stratified split), so the check replays the *same recorded outcomes* (per test, per step,
per version) into both implementations and requires the same accept/reject, the same
accepted version, the same fitted M and the same posteriors (to 1e-9). The rule
``probability`` is also replayed: there the reference's P(B > A) is itself a 10,000-draw
Monte-Carlo estimate, so close calls near the threshold may legitimately differ; the
agreement count is reported, not required.

Run: ``.venv/bin/python benchmarks/perf/version_tester.py [--ref-steps 1] [--ours-steps 100]
[--replay-tests 20] [--json results.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reskill_gym.versioning import GroupSpec, TesterConfig, VersionTester, fit_concentration

GROUPS = [GroupSpec(group_id=f"g{i}", task_id=f"task{i}", n=8) for i in range(30)]

RateFn = Callable[[int], float]
# Both arms improve over a test as a learning policy does; which one ends ahead varies.
SCENARIOS: dict[str, tuple[RateFn, RateFn]] = {
    "up": (lambda k: 0.40 + 0.05 * k, lambda k: 0.15 + 0.15 * k),
    "down": (lambda k: 0.25 + 0.10 * k, lambda k: 0.55 + 0.01 * k),
    "flat": (lambda k: 0.50, lambda k: 0.60),
}


class ReferenceTester:
    """Plain-Python version tester with the published implementation's shape.

    Same math as ``VersionTester`` (Beta posteriors, evidence discounted by M / (M + n), M by
    Beta-Binomial grid search on finished tests, posterior-mean rule), but: the Thompson
    probability comes from ``mc_draws`` Monte-Carlo samples per rollout, and the grid search
    loops over grid points and records in Python.
    """

    def __init__(
        self,
        seed: int,
        rule: str = "posterior_mean",
        tau: float = 0.95,
        mc_draws: int = 10_000,
        clamp: tuple[float, float] = (0.15, 0.85),
        prior: tuple[float, float] = (1.0, 1.0),
        min_steps: int = 5,
        min_episodes: int = 50,
        m_grid: tuple[int, int] = (1, 2000),
        min_finished: int = 2,
    ) -> None:
        self.random = random.Random(seed)
        self.rule, self.tau, self.mc_draws = rule, tau, mc_draws
        self.clamp, self.prior = clamp, prior
        self.min_steps, self.min_episodes = min_steps, min_episodes
        self.m_grid, self.min_finished = m_grid, min_finished
        self.history: list[tuple[list[list[int]], list[list[int]]]] = []
        self.versions: list[str] = []

    def start(self, incumbent: str, candidate: str) -> None:
        self.versions = [incumbent, candidate]
        self.alpha = [self.prior[0], self.prior[0]]
        self.beta = [self.prior[1], self.prior[1]]
        self.pending_s, self.pending_n = [0, 0], [0, 0]
        self.total_n = 0
        self.step_s: list[list[int]] = []
        self.step_n: list[list[int]] = []
        self.m = self.fit_m() if len(self.history) >= self.min_finished else None

    def mc_prob_b(self) -> float:
        rnd = self.random
        wins = 0
        for _ in range(self.mc_draws):
            if rnd.betavariate(self.alpha[1], self.beta[1]) > rnd.betavariate(
                self.alpha[0], self.beta[0]
            ):
                wins += 1
        return wins / self.mc_draws

    def assign_rollout(self) -> str:
        p = min(self.clamp[1], max(self.clamp[0], self.mc_prob_b()))
        return self.versions[1] if self.random.random() < p else self.versions[0]

    def record(self, version: str, success: bool) -> None:
        i = self.versions.index(version)
        self.pending_n[i] += 1
        self.pending_s[i] += 1 if success else 0

    def fit_m(self) -> int:
        a0, b0 = self.prior
        records = []
        for succ, eps in self.history:
            for arm in range(len(succ[0])):
                s_tot = sum(row[arm] for row in succ)
                n_tot = sum(row[arm] for row in eps)
                mu = (s_tot + a0) / (n_tot + a0 + b0)
                for row_s, row_n in zip(succ, eps):
                    if row_n[arm] > 0:
                        records.append((row_s[arm], row_n[arm], mu))
        best_m, best_ll = None, -math.inf
        lg = math.lgamma
        for m in range(self.m_grid[0], self.m_grid[1] + 1):
            ll = 0.0
            for s, n, mu in records:
                a, b = m * mu, m * (1.0 - mu)
                f = n - s
                ll += (
                    lg(n + 1)
                    - lg(s + 1)
                    - lg(f + 1)
                    + lg(s + a)
                    - lg(a)
                    + lg(f + b)
                    - lg(b)
                    - lg(n + m)
                    + lg(m)
                )
            if ll > best_ll:
                best_m, best_ll = m, ll
        assert best_m is not None
        return best_m

    def end_step(self) -> dict[str, Any] | None:
        if self.pending_n[0] + self.pending_n[1] == 0:
            return None
        a0, b0 = self.prior
        for i in range(2):
            n, s = self.pending_n[i], self.pending_s[i]
            w = self.m / (self.m + n) if self.m is not None else 1.0
            self.alpha[i] = a0 + w * (self.alpha[i] - a0) + s
            self.beta[i] = b0 + w * (self.beta[i] - b0) + (n - s)
        self.step_s.append(list(self.pending_s))
        self.step_n.append(list(self.pending_n))
        self.total_n += sum(self.pending_n)
        self.pending_s, self.pending_n = [0, 0], [0, 0]
        if len(self.step_n) < self.min_steps or self.total_n < self.min_episodes:
            return None
        if self.rule == "posterior_mean":
            mean = [a / (a + b) for a, b in zip(self.alpha, self.beta)]
            accept = mean[1] > mean[0]
        else:
            accept = self.mc_prob_b() >= self.tau
        self.history.append((self.step_s, self.step_n))
        return {
            "outcome": "accept" if accept else "reject",
            "accepted": self.versions[1] if accept else self.versions[0],
            "m": None if self.m is None else float(self.m),
            "alpha": list(self.alpha),
            "beta": list(self.beta),
        }


def simulate_campaign(
    n_tests: int, seed: int, config: TesterConfig
) -> tuple[VersionTester, list[dict[str, Any]]]:
    """Run ``n_tests`` version tests on drifting simulated arms; log every recorded outcome."""
    tester = VersionTester(config, rng=seed)
    env = np.random.default_rng(seed + 1)
    kinds = list(SCENARIOS)
    step, logs = 0, []
    for i in range(n_tests):
        inc, cand = f"v{i}", f"v{i}-cand"
        fa, fb = SCENARIOS[kinds[int(env.integers(len(kinds)))]]
        tester.start(inc, cand, step=step)
        steps_log: list[list[tuple[str, bool]]] = []
        k = 0
        while True:
            flat = [v for group in tester.assign(GROUPS) for v in group]
            p = np.array([fb(k) if v == cand else fa(k) for v in flat])
            wins = (env.random(len(flat)) < p).tolist()
            for v, won in zip(flat, wins):
                tester.record(v, won)
            steps_log.append(list(zip(flat, wins)))
            decision = tester.end_step(step)
            step, k = step + 1, k + 1
            if decision is not None:
                break
        logs.append({"incumbent": inc, "candidate": cand, "steps": steps_log, "decision": decision})
    return tester, logs


def replay(logs: list[dict[str, Any]], rule: str, seed: int) -> dict[str, Any]:
    """Feed the same outcomes into a fresh VersionTester and a fresh ReferenceTester."""
    ours = VersionTester(TesterConfig(decision_rule=rule), rng=seed)
    ref = ReferenceTester(seed, rule=rule)
    same = same_full = 0
    mismatches: list[dict[str, Any]] = []
    decided: list[str] = []
    for t, log in enumerate(logs):
        ours.start(log["incumbent"], log["candidate"], step=0)
        ref.start(log["incumbent"], log["candidate"])
        d_ours = d_ref = None
        for s, outcomes in enumerate(log["steps"]):
            for v, won in outcomes:
                ours.record(v, won)
                ref.record(v, won)
            d_ours = ours.end_step(s)
            d_ref = ref.end_step()
        assert d_ours is not None and d_ref is not None, "replayed test did not decide"
        post_ok = all(
            math.isclose(d_ours.posteriors[v].alpha, d_ref["alpha"][i], rel_tol=1e-9)
            and math.isclose(d_ours.posteriors[v].beta, d_ref["beta"][i], rel_tol=1e-9)
            for i, v in enumerate([log["incumbent"], log["candidate"]])
        )
        decided.append(d_ours.outcome)
        outcome_ok = d_ours.outcome == d_ref["outcome"] and d_ours.accepted == d_ref["accepted"]
        same += outcome_ok
        same_full += outcome_ok and d_ours.m == d_ref["m"] and post_ok
        if not (outcome_ok and d_ours.m == d_ref["m"] and post_ok):
            mismatches.append(
                {
                    "test": t,
                    "ours": [d_ours.outcome, d_ours.m],
                    "ref": [d_ref["outcome"], d_ref["m"]],
                }
            )
    return {
        "tests": len(logs),
        "same_decision": same,
        "same_m_and_posteriors": same_full,
        "accepted": decided.count("accept"),
        "outcomes": decided,
        "mismatches": mismatches,
    }


class Laps:
    """Wall-clock and process-CPU seconds per named part of each step.

    CPU time is reported beside wall time because this benchmark often runs on shared
    machines, where wall time mostly measures the neighbours (both implementations are
    single-threaded).
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, tuple[float, float]]] = []

    def begin(self) -> None:
        self._current: dict[str, tuple[float, float]] = {}
        self._w, self._c = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self._current[name] = (w - self._w, c - self._c)
        self._w, self._c = w, c

    def end(self) -> None:
        self.steps.append(self._current)

    def median(self, parts: Sequence[str], clock: int) -> float:
        """Median over steps of the summed ``parts`` (clock 0: wall, 1: CPU), in ms."""
        return 1e3 * statistics.median(sum(step[p][clock] for p in parts) for step in self.steps)


PARTS = ("assign", "record", "fit_m", "flush_decide")
CACHED_PARTS = ("assign", "record", "fit_m_cached", "flush_decide")


def time_ours(history_tester: VersionTester, steps: int, seed: int) -> Laps:
    """Our step. ``fit_m`` is a cold refit on the fixed 50 finished tests (all 500 records,
    every curve recomputed); ``fit_m_cached`` is the tester's own incremental refit."""
    tester = VersionTester(history_tester.config, rng=seed)
    tester.load_state_dict(history_tester.state_dict())
    tester.rng = np.random.default_rng(seed)
    cfg = tester.config
    fixed_history = [(t.successes, t.episodes) for t in history_tester.history]
    env = np.random.default_rng(seed + 2)
    laps = Laps()
    for step in range(steps):
        laps.begin()
        if not tester.active:
            tester.start(f"inc{step}", f"cand{step}", step=step)
        plan = tester.assign(GROUPS)
        laps.lap("assign")
        for group in plan:
            for v in group:
                tester.record(v, bool(env.random() < 0.5))
        laps.lap("record")
        m = fit_concentration(fixed_history, cfg.m_grid, cfg.prior)  # the M-grid update
        laps.lap("fit_m")
        m_cached = tester.fit_m()
        laps.lap("fit_m_cached")
        tester.end_step(step)
        laps.lap("flush_decide")
        laps.end()
        assert m >= 1 and m_cached is not None
    return laps


def time_reference(history_tester: VersionTester, steps: int, seed: int) -> Laps:
    ref = ReferenceTester(seed)
    ref.history = [(t.successes, t.episodes) for t in history_tester.history]
    env = random.Random(seed + 3)
    n_hist = len(ref.history)
    ref.start("inc", "cand")
    laps = Laps()
    for _ in range(steps):
        laps.begin()
        plan = [[ref.assign_rollout() for _ in range(g.n)] for g in GROUPS]
        laps.lap("assign")
        for group in plan:
            for v in group:
                ref.record(v, env.random() < 0.5)
        laps.lap("record")
        ref.m = ref.fit_m()
        laps.lap("fit_m")
        if ref.end_step() is not None:
            ref.history = ref.history[:n_hist]
            ref.start("inc", "cand")
        laps.lap("flush_decide")
        laps.end()
    return laps


def run(
    ref_steps: int = 1, ours_steps: int = 100, replay_tests: int = 20, seed: int = 0
) -> dict[str, Any]:
    cfg = TesterConfig()
    history_tester, _ = simulate_campaign(50, seed, cfg)  # 50 finished tests of 5 steps each
    assert len(history_tester.history) == 50
    ours = time_ours(history_tester, ours_steps, seed)
    ref = time_reference(history_tester, ref_steps, seed)
    _, logs = simulate_campaign(replay_tests, seed + 100, cfg)
    replay_mean = replay(logs, "posterior_mean", seed)
    live = [log["decision"].outcome for log in logs]
    replay_prob = replay(logs, "probability", seed)
    res: dict[str, Any] = {"ours_steps": ours_steps, "ref_steps": ref_steps, "history_tests": 50}
    for clock, name in ((0, "wall"), (1, "cpu")):
        table = {
            "ours": {p: ours.median([p], clock) for p in (*PARTS, "fit_m_cached")},
            "reference": {p: ref.median([p], clock) for p in PARTS},
        }
        table["ours"]["total"] = ours.median(PARTS, clock)
        table["ours"]["total_cached"] = ours.median(CACHED_PARTS, clock)
        table["reference"]["total"] = ref.median(PARTS, clock)
        table["ratio_cold_refit"] = table["reference"]["total"] / table["ours"]["total"]
        table["ratio_cached"] = table["reference"]["total"] / table["ours"]["total_cached"]
        res[f"{name}_ms"] = table
    res["replay_equals_live"] = replay_mean["outcomes"] == live
    res["replay_posterior_mean"] = replay_mean
    res["replay_probability"] = replay_prob
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
    parser.add_argument(
        "--ref-steps", type=int, default=1, help="reference steps to time (~30 s each)"
    )
    parser.add_argument("--ours-steps", type=int, default=100, help="VersionTester steps to time")
    parser.add_argument("--replay-tests", type=int, default=20, help="tests replayed into both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    res = run(args.ref_steps, args.ours_steps, args.replay_tests, args.seed)
    print(
        f"version tester, one training step (30 groups x 8 rollouts, M on 50 tests x 5 steps); "
        f"median of {res['ours_steps']} (ours) / {res['ref_steps']} (reference) steps"
    )
    print(f"{'part':<16}{'ours wall':>11}{'ours cpu':>10}{'ref wall':>11}{'ref cpu':>10}  (ms)")
    wall, cpu = res["wall_ms"], res["cpu_ms"]
    for key in (*PARTS, "fit_m_cached", "total", "total_cached"):
        ref_w = f"{wall['reference'][key]:>11.1f}" if key in wall["reference"] else f"{'':>11}"
        ref_c = f"{cpu['reference'][key]:>10.1f}" if key in cpu["reference"] else f"{'':>10}"
        print(f"{key:<16}{wall['ours'][key]:>11.2f}{cpu['ours'][key]:>10.2f}{ref_w}{ref_c}")
    for label, key in (
        ("cold M refit every step", "ratio_cold_refit"),
        ("cached M curves", "ratio_cached"),
    ):
        print(f"speed ratio, {label}: {wall[key]:.0f}x wall, {cpu[key]:.0f}x cpu")
    for rule in ("posterior_mean", "probability"):
        r = res[f"replay_{rule}"]
        print(
            f"replayed outcomes, rule={rule}: same decision {r['same_decision']}/{r['tests']}, "
            f"same M and posteriors {r['same_m_and_posteriors']}/{r['tests']} "
            f"(accepted {r['accepted']})"
        )
    print(f"replayed decisions equal the live ones: {res['replay_equals_live']}")
    if args.json:
        _write_json(args.json, res)
    mean_rule = res["replay_posterior_mean"]
    ok = mean_rule["same_m_and_posteriors"] == mean_rule["tests"] and res["replay_equals_live"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
