"""VersionTester against simulated Bernoulli arms, its modes, and save/restore."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from reskill_gym.versioning import (
    Decision,
    GroupSpec,
    TesterBusyError,
    TesterConfig,
    TesterInactiveError,
    VersionTester,
    fit_concentration,
)

GROUPS = [GroupSpec(group_id=f"g{i}", task_id=f"task{i}", n=8) for i in range(30)]
RateFn = Callable[[int], float]


def run_test(
    tester: VersionTester,
    env: np.random.Generator,
    rates: dict[str, RateFn],
    incumbent: str,
    candidate: str,
    step: int,
) -> tuple[Decision, int]:
    """One full version test on simulated arms; rates map version -> (step in test -> p)."""
    assert tester.start(incumbent, candidate, step=step) is None
    k = 0
    while True:
        plan = tester.assign(GROUPS)
        assert all(len(set(group)) == 2 for group in plan)  # both arms in every group
        flat = [v for group in plan for v in group]
        p = np.array([rates[v](k) for v in flat])
        assert tester.record_many(flat, env.random(p.size) < p) == len(flat)
        decision = tester.end_step(step)
        step += 1
        k += 1
        if decision is not None:
            return decision, step
        assert k < 50, "test never decided"


def single_test(seed: int, p_a: float, p_b: float, config: TesterConfig | None = None) -> Decision:
    tester = VersionTester(config or TesterConfig(), rng=seed)
    env = np.random.default_rng(10_000 + seed)
    rates = {"A": lambda _k: p_a, "B": lambda _k: p_b}
    decision, _ = run_test(tester, env, rates, "A", "B", step=0)
    return decision


def test_better_arm_wins_at_least_95_percent_of_200_tests() -> None:
    better_candidate = [single_test(s, 0.5, 0.7).outcome for s in range(200)]
    worse_candidate = [single_test(s, 0.7, 0.5).outcome for s in range(200)]
    assert better_candidate.count("accept") >= 190
    assert worse_candidate.count("reject") >= 190


def test_equal_arms_candidate_accepted_about_half_the_time() -> None:
    # Under the null the rule is symmetric (ties keep the incumbent), so the accept count is
    # ~Binomial(200, 0.5): we test [70, 130], about +-4.2 sd.
    accepted = [single_test(s, 0.6, 0.6).outcome for s in range(200)].count("accept")
    assert 70 <= accepted <= 130


def test_probability_rule_controls_false_accepts_under_the_null() -> None:
    # P(candidate better) >= 0.95 under equal arms should happen ~5 % of the time; bound 10 %.
    cfg = TesterConfig(decision_rule="probability", probability_threshold=0.95)
    accepted = [single_test(s, 0.6, 0.6, cfg).outcome for s in range(200)].count("accept")
    assert accepted <= 20
    power = [single_test(s, 0.5, 0.7, cfg).outcome for s in range(50)].count("accept")
    assert power >= 48


def test_decision_carries_full_statistics() -> None:
    d = single_test(3, 0.5, 0.7)
    assert d.outcome == "accept" and d.accepted == "B" and d.rejected == ["A"] and d.head == "B"
    assert len(d.steps) == 5 and d.step == 4 and d.started_step == 0
    assert sum(c.episodes for c in d.counts.values()) == 5 * 240
    assert d.posteriors["B"].mean > d.posteriors["A"].mean
    assert d.p_best["B"] > 0.99
    assert d.m is None  # no finished tests yet -> no dynamic discount
    for rec in d.steps:
        assert sum(rec.episodes) == 240
        assert 0.15 - 1e-12 <= rec.assign_probs[1] <= 0.85 + 1e-12  # clamping holds
    as_json = json.loads(json.dumps(d.to_dict()))
    assert as_json["outcome"] == "accept" and as_json["counts"]["B"]["episodes"] > 0


def test_thompson_shifts_rollouts_to_the_better_arm_within_clamp() -> None:
    d = single_test(5, 0.3, 0.8)
    assert d.steps[0].assign_probs == [0.5, 0.5]
    assert d.steps[-1].assign_probs[1] == pytest.approx(0.85)
    uniform = single_test(5, 0.3, 0.8, TesterConfig(mode="uniform"))
    assert all(r.assign_probs == [0.5, 0.5] for r in uniform.steps)


SCENARIOS: dict[str, tuple[RateFn, RateFn, str]] = {
    # Both arms improve as a learning policy does. "up": the candidate starts lower but learns
    # faster and ends clearly ahead (accept is right); "down": the reverse (reject is right).
    # Cumulative counts favour the arm that was better early, so no discount gets them wrong.
    "up": (lambda k: 0.40 + 0.05 * k, lambda k: 0.15 + 0.15 * k, "accept"),
    "down": (lambda k: 0.25 + 0.10 * k, lambda k: 0.55 + 0.01 * k, "reject"),
}


def campaign(seed: int, config: TesterConfig, n_tests: int = 7) -> list[tuple[bool, float | None]]:
    tester = VersionTester(config, rng=seed)
    env = np.random.default_rng(seed + 777)
    step, out = 0, []
    for i in range(n_tests):
        inc_rate, cand_rate, truth = SCENARIOS["up" if env.random() < 0.5 else "down"]
        incumbent, candidate = tester.head or "v0", f"v{i + 1}"
        rates = {incumbent: inc_rate, candidate: cand_rate}
        decision, step = run_test(tester, env, rates, incumbent, candidate, step)
        out.append((decision.outcome == truth, decision.m))
    return out


@pytest.mark.parametrize(
    "config",
    [TesterConfig(), TesterConfig.published()],
    ids=["pooled-fit-evidence-discount", "published-predictive-fit-posterior-discount"],
)
def test_dynamic_discount_finds_finite_m_and_beats_no_discount_under_drift(
    config: TesterConfig,
) -> None:
    # M needs 2 finished tests. Measured: pooled M 8-73, 85 % right; published M 11-41, 90 %.
    dyn = [r for s in range(12) for r in campaign(s, config)[2:]]
    none = [r for s in range(12) for r in campaign(s, TesterConfig(discount="none"))[2:]]
    ms = [m for _, m in dyn]
    assert all(m is not None for m in ms)
    assert max(ms) < 200  # finite M, far inside the 1..2000 grid
    acc_dyn = np.mean([ok for ok, _ in dyn])
    acc_none = np.mean([ok for ok, _ in none])
    assert acc_dyn >= 0.65
    assert acc_dyn >= acc_none + 0.3


def test_auto_accept_and_off_decide_at_start() -> None:
    t = VersionTester(TesterConfig(mode="auto_accept"), rng=0)
    d = t.start("v1", ["v2", "v3"], step=4)
    assert d is not None and d.outcome == "accept" and d.accepted == "v2"
    assert d.rejected == ["v1", "v3"] and not t.active and t.head == "v2"
    assert t.end_step(4) is None  # reported once, by start()
    assert t.assign([2, GroupSpec("g", "t", 1)]) == [["v2", "v2"], ["v2"]]
    off = VersionTester(TesterConfig(mode="off"), rng=0)
    d = off.start("v1", "v2", step=0)
    assert d is not None and d.outcome == "reject" and off.head == "v1"


def test_idle_assignment_and_records() -> None:
    t = VersionTester(rng=0)
    with pytest.raises(TesterInactiveError, match="head"):
        t.assign([4])
    assert t.assign([2], head="live") == [["live", "live"]]
    assert t.record("live", 1.0) is False and t.ignored_records == 1
    assert t.p_candidate is None and t.end_step(0) is None
    t.start("v1", "v2", step=0)
    assert t.record("stale-version", True) is False
    with pytest.raises(TesterBusyError):
        t.start("v1", "v3", step=1)
    with pytest.raises(ValueError, match="finite"):
        t.record("v1", float("nan"))
    with pytest.raises(TypeError):
        t.record("v1", "yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct"):
        VersionTester(rng=0).start("v1", ["v1"], step=0)
    with pytest.raises(ValueError, match="n must be an int"):
        GroupSpec("g", "t", -1)


def test_success_threshold_and_double_end_step_guard() -> None:
    t = VersionTester(TesterConfig(success_threshold=0.8, min_steps=3), rng=0)
    t.start("a", "b", step=10)
    assert t.record_many(["a", "a", "b", "b"], [0.9, 0.5, True, 0.8]) == 4
    assert t.end_step(10) is None
    rec = t.steps[-1]
    assert rec.successes == [1, 1] and rec.episodes == [2, 2]
    t.record("a", 1.0)
    assert t.end_step(10) is None  # fired twice: ignored, the outcome stays buffered
    assert len(t.steps) == 1
    assert t.end_step(11) is None
    assert t.steps[-1].episodes == [1, 0]


def test_discount_weights() -> None:
    cfg = TesterConfig(discount="last_step", min_steps=10)
    t = VersionTester(cfg, rng=0)
    t.start("a", "b", step=0)
    t.record_many(["a"] * 10 + ["b"] * 10, [1.0] * 10 + [0.0] * 10)
    t.end_step(0)
    t.record_many(["a", "b"], [0.0, 1.0])
    t.end_step(1)
    rec = t.steps[-1]
    assert rec.alpha == [1.0, 2.0] and rec.beta == [2.0, 1.0]  # only the last step counts
    # dynamic: two finished tests give a fitted M, then w = M / (M + n) per arm.
    dyn = VersionTester(TesterConfig(min_steps=3, min_episodes=0), rng=0)
    for i in range(2):
        dyn.start(f"x{i}", f"y{i}", step=3 * i)
        for step in (3 * i, 3 * i + 1, 3 * i + 2):
            dyn.record_many(["x" + str(i)] * 20 + ["y" + str(i)] * 20, [step % 2 == 0] * 40)
            dyn.end_step(step)
    assert not dyn.active and len(dyn.history) == 2
    dyn.start("a", "b", step=6)
    m = dyn.m
    assert m is not None and m == dyn.fit_m()
    dyn.record_many(["a"] * 10, [1.0] * 10)
    dyn.end_step(6)
    dyn.record_many(["a"] * 30, [1.0] * 30)
    dyn.end_step(7)
    rec = dyn.steps[-1]
    assert rec.weights[0] == pytest.approx(m / (m + 30)) and rec.weights[1] == 1.0
    assert rec.alpha[0] == pytest.approx(1 + (m / (m + 30)) * 10 + 30)  # alpha was 1 + 10


def drive(tester: VersionTester, env: np.random.Generator, steps: range) -> list:
    """Feed steps (one rollout at a time) and return everything observable."""
    log = []
    for step in steps:
        if not tester.active:
            tester.start(tester.head or "v0", f"c{step}", step=step)
        candidate = tester.versions[1]
        plan = tester.assign(GROUPS)
        for group in plan:
            for version in group:
                tester.record(version, float(env.random() < (0.7 if version == candidate else 0.5)))
        d = tester.end_step(step)
        log.append((plan, d.to_dict() if d else None, tester.p_candidate))
    return log


def test_save_restore_continues_bit_identically(tmp_path) -> None:
    cfg = TesterConfig(min_steps=2, min_episodes=10)
    original = VersionTester(cfg, rng=123)
    drive(original, np.random.default_rng(9), range(0, 9))  # finished tests -> dynamic M
    if not original.active:
        original.start(original.head or "v0", "mid", step=9)
    plan = original.assign(GROUPS)
    original.record_many([v for g in plan for v in g][:100], [1.0, 0.0] * 50)  # mid-step buffer
    path = original.save(tmp_path / "state" / "tester.json")
    assert [p.name for p in path.parent.iterdir()] == ["tester.json"]  # no temp file left
    state = original.state_dict()
    assert json.loads(json.dumps(state)) == state
    restored = VersionTester.load(path)
    assert restored.state_dict() == state
    original.end_step(9)
    restored.end_step(9)
    log_a = drive(original, np.random.default_rng(77), range(10, 30))
    log_b = drive(restored, np.random.default_rng(77), range(10, 30))
    assert log_a == log_b
    assert original.state_dict() == restored.state_dict()
    assert len(original.history) >= 3 and original.m is not None or not original.active
    assert any(d is not None and d["m"] is not None for _, d, _ in log_a)
    # The cached per-test curves give the same M as a cold fit on the kept history.
    tests = [(t.successes, t.episodes) for t in restored.history]
    assert restored.fit_m() == fit_concentration(tests, cfg.m_grid, cfg.prior)


def test_other_bit_generators_round_trip() -> None:
    t = VersionTester(rng=np.random.Generator(np.random.MT19937(5)))
    t.start("a", "b", step=0)
    clone = VersionTester()
    clone.load_state_dict(json.loads(json.dumps(t.state_dict())))
    assert clone.assign(GROUPS) == t.assign(GROUPS)


def test_load_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "tester.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="tester.json"):
        VersionTester.load(bad)
    state = VersionTester(rng=0).state_dict()
    state["config"]["clamp"] = [0.9, 0.1]
    bad.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=r"(?s)tester.json.*clamp"):
        VersionTester.load(bad)


def test_config_validation_messages() -> None:
    with pytest.raises(ValueError, match="clamp"):
        TesterConfig(clamp=(0.6, 0.9))
    with pytest.raises(ValueError, match="prior"):
        TesterConfig(prior=(0.0, 1.0))
    with pytest.raises(ValueError, match="m_grid"):
        TesterConfig(m_grid=(10, 5))
    with pytest.raises(ValueError, match="extra"):
        TesterConfig(modes="thompson")  # type: ignore[call-arg]


def test_three_candidates_bundle_test() -> None:
    tester = VersionTester(TesterConfig(), rng=8)
    env = np.random.default_rng(8)
    rates = {"inc": 0.4, "c1": 0.45, "c2": 0.75, "c3": 0.5}
    tester.start("inc", ["c1", "c2", "c3"], step=0)
    step = 0
    while True:
        for group in tester.assign(GROUPS):
            assert "inc" in group and len(set(group)) >= 2
            for v in group:
                tester.record(v, bool(env.random() < rates[v]))
        d = tester.end_step(step)
        step += 1
        if d:
            break
    assert d.outcome == "accept" and d.accepted == "c2"
    assert set(d.rejected) == {"inc", "c1", "c3"}
    assert sum(d.p_best.values()) == pytest.approx(1.0)
