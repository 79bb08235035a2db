"""The tester in the published settings against a port of the published tracker, the window
of tests M is fitted on, and checkpoints of the running log-likelihood."""

from __future__ import annotations

import json
import math
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from reskill_gym.versioning import (
    Decision,
    GroupSpec,
    TesterConfig,
    VersionTester,
    fit_concentration,
)

GROUPS = [GroupSpec(group_id=f"g{i}", task_id=f"task{i}", n=8) for i in range(6)]
Step = tuple[int, int, int, int]  # (incumbent successes, episodes, candidate successes, episodes)


@pytest.fixture(scope="module")
def port() -> ModuleType:
    from reskill_gym.testing import published_tracker

    return published_tracker


def outcome_sequences(
    rng: np.random.Generator, n_tests: int, kinds: list[str]
) -> list[tuple[str, list[Step]]]:
    """Per-step outcomes of tests of the shapes the tracker meets: drifting, stationary and
    equal arms, steps from 6 to 240 rollouts (``small``: 6-8 a step, so a test needs about 8
    steps to reach 50 episodes), an arm without rollouts now and then, and rates flipping
    between 2 % and 98 % (``flip``: M falls to 1-3 and the 1e-6 floor of the fit is hit)."""
    tests = []
    for _ in range(n_tests):
        kind = str(rng.choice(kinds))
        base = rng.uniform(0.15, 0.75, size=2)
        steps: list[Step] = []
        for k in range(40):
            if kind == "drift":
                rates = np.clip(base + np.array([0.03, 0.12]) * k, 0.01, 0.99)
            elif kind == "equal":
                rates = np.array([base[0], base[0]])
            elif kind == "flip":
                rates = np.array([0.02, 0.98]) if k % 2 else np.array([0.98, 0.02])
            else:
                rates = base
            total = int(rng.choice([6, 8]) if kind == "small" else rng.choice([16, 40, 240]))
            n_cand = int(rng.binomial(total, rng.uniform(0.15, 0.85)))
            if rng.random() < 0.1:
                n_cand = 0 if rng.random() < 0.5 else total
            n_inc = total - n_cand
            steps.append(
                (
                    int(rng.binomial(n_inc, rates[0])),
                    n_inc,
                    int(rng.binomial(n_cand, rates[1])),
                    n_cand,
                )
            )
        tests.append((kind, steps))
    return tests


def replay_ours(config: TesterConfig, tests: list[tuple[str, list[Step]]]) -> list[Decision]:
    tester = VersionTester(config, rng=0)
    out = []
    for t, (_, steps) in enumerate(tests):
        inc, cand = f"v{t}", f"v{t}-cand"
        tester.start(inc, cand, step=0)
        for step, (s_inc, n_inc, s_cand, n_cand) in enumerate(steps):
            versions = [inc] * n_inc + [cand] * n_cand
            won = [True] * s_inc + [False] * (n_inc - s_inc)
            won += [True] * s_cand + [False] * (n_cand - s_cand)
            tester.record_many(versions, np.array(won, dtype=bool))
            decision = tester.end_step(step)
            if decision is not None:
                out.append(decision)
                break
        else:
            raise AssertionError(f"test {t} never decided")
    return out


def replay_port(port: ModuleType, tests: list[tuple[str, list[Step]]]) -> list[dict[str, Any]]:
    tracker = port.PublishedTracker(
        weighting_strategy="dynamic", rng=np.random.RandomState(0), n_thompson_samples=2000
    )
    out = []
    for t, (_, steps) in enumerate(tests):
        tracker.start_version_test(f"v{t}-cand", step=0)
        for s_inc, n_inc, s_cand, n_cand in steps:
            for j in range(n_inc):
                tracker.record_episode_outcome(False, 1.0 if j < s_inc else 0.0)
            for j in range(n_cand):
                tracker.record_episode_outcome(True, 1.0 if j < s_cand else 0.0)
            tracker.record_step()
            if tracker.should_decide():
                out.append(tracker.decide()[1])
                break
    return out


def agreement(ours: list[Decision], theirs: list[dict[str, Any]]) -> tuple[int, int, list]:
    """(same accept/revert, same M and posteriors to 1e-9 and same step, mismatches)."""
    same = full = 0
    bad = []
    for t, (d, p) in enumerate(zip(ours, theirs, strict=True)):
        inc, cand = d.incumbent, d.candidates[0]
        pairs = [
            (d.posteriors[cand].alpha, p["alpha_new"]),
            (d.posteriors[cand].beta, p["beta_new"]),
            (d.posteriors[inc].alpha, p["alpha_old"]),
            (d.posteriors[inc].beta, p["beta_old"]),
        ]
        ok = (d.outcome == "accept") == p["accepted"]
        exact = (
            ok
            and d.m == p["m_used"]
            and len(d.steps) == p["steps_elapsed"]
            and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in pairs)
        )
        same += ok
        full += exact
        if not exact:
            bad.append((t, d.outcome, d.m, p["accepted"], p["m_used"]))
    return same, full, bad


CAMPAIGNS = {
    # name: (seed, tests, kinds)
    "mixed": (2024, 40, ["drift", "flat", "equal", "small"]),
    "flipping": (7, 20, ["flip", "drift", "small"]),
}


@pytest.mark.parametrize("campaign", list(CAMPAIGNS))
def test_published_settings_decide_as_the_published_tracker(
    port: ModuleType, campaign: str
) -> None:
    seed, n_tests, kinds = CAMPAIGNS[campaign]
    tests = outcome_sequences(np.random.default_rng(seed), n_tests, kinds)
    theirs = replay_port(port, tests)
    ours = replay_ours(TesterConfig.published(), tests)
    same, full, bad = agreement(ours, theirs)
    assert (same, full) == (n_tests, n_tests), bad  # same accept/revert, M, posteriors, step
    ms = [d.m for d in ours if d.m is not None]
    assert len(ms) == n_tests - 2  # M is fitted from the third test on
    accepts = sum(d.outcome == "accept" for d in ours)
    assert 0.2 * n_tests < accepts < 0.8 * n_tests  # both outcomes occur: agreement is not trivial
    assert max(len(d.steps) for d in ours) > 5  # small steps: decided on episodes, not steps
    if campaign == "flipping":
        assert min(ms) <= 3  # the floored region of the fit is exercised
    # The project defaults are another estimator: on the same data M and posteriors differ.
    defaults = replay_ours(TesterConfig(), tests)
    _, full_d, _ = agreement(defaults, theirs)
    assert full_d < n_tests - 2


def test_fit_window_all_tests_or_the_last_n() -> None:
    def run(config: TesterConfig) -> tuple[VersionTester, list[tuple[list, list]]]:
        tester = VersionTester(config, rng=3)
        env = np.random.default_rng(3)
        tables = []
        step = 0
        for i in range(6):
            tester.start(f"a{i}", f"b{i}", step=step)
            while True:
                plan = [v for g in tester.assign(GROUPS) for v in g]
                rate = 0.2 + 0.15 * (step % 4)  # drifting policy
                tester.record_many(plan, env.random(len(plan)) < rate)
                d = tester.end_step(step)
                step += 1
                if d is not None:
                    tables.append(([r.successes for r in d.steps], [r.episodes for r in d.steps]))
                    break
        return tester, tables

    for m_fit in ("pooled", "predictive"):
        every = TesterConfig(min_steps=3, max_history_tests=3, m_fit=m_fit)
        tester, tables = run(every)
        assert len(tester.history) == 3 and tester.tests_in_fit == 6
        assert tester.fit_m() == fit_concentration(tables, (1, 2000), (1.0, 1.0), method=m_fit)
        windowed = TesterConfig(min_steps=3, max_history_tests=3, m_fit_window=2, m_fit=m_fit)
        tester, tables = run(windowed)
        assert tester.tests_in_fit == 2
        last_two = fit_concentration(tables[-2:], (1, 2000), (1.0, 1.0), method=m_fit)
        assert tester.fit_m() == last_two
    with pytest.raises(ValueError, match="max_history_tests"):
        TesterConfig(m_fit_window=200)
    with pytest.raises(ValueError, match="min_finished_tests"):
        TesterConfig(m_fit_window=1)
    with pytest.raises(ValueError, match="m_fit"):
        TesterConfig(m_fit="window")  # type: ignore[arg-type]


def drive(tester: VersionTester, env: np.random.Generator, steps: range) -> list:
    log = []
    for step in steps:
        if not tester.active:
            tester.start(tester.head or "v0", f"c{step}", step=step)
        cand = tester.versions[1]
        plan = tester.assign(GROUPS)
        for group in plan:
            for version in group:
                p = 0.3 + 0.1 * (step % 5) + (0.15 if version == cand else 0.0)
                tester.record(version, float(env.random() < p))
        d = tester.end_step(step)
        log.append((plan, d.to_dict() if d else None, tester.p_candidate))
    return log


def test_published_settings_checkpoint_continues_bit_identically(tmp_path) -> None:
    cfg = TesterConfig.published(min_steps=2, min_episodes=10, max_history_tests=2)
    original = VersionTester(cfg, rng=11)
    drive(original, np.random.default_rng(1), range(0, 13))
    assert original.tests_in_fit > len(original.history) == 2  # the sum outlives the history
    state = original.state_dict()
    assert len(state["m_loglik"]) == 2000 and json.loads(json.dumps(state)) == state
    restored = VersionTester.load(original.save(tmp_path / "tester.json"))
    assert restored.state_dict() == state
    log_a = drive(original, np.random.default_rng(5), range(13, 40))
    log_b = drive(restored, np.random.default_rng(5), range(13, 40))
    assert log_a == log_b and original.state_dict() == restored.state_dict()
    assert any(d is not None and d["m"] is not None for _, d, _ in log_a)
    decisions = [d for _, d, _ in log_a if d is not None]
    assert all(d["m_fit"] == "predictive" for d in decisions)
    assert all(d["discount_convention"] == "posterior" for d in decisions)
    # The published flush discounts the whole posterior: alpha = w * alpha_before + s.
    for d in decisions:
        before = [1.0, 1.0]
        for rec in d["steps"]:
            for k in range(2):
                assert rec["alpha"][k] == rec["weights"][k] * before[k] + rec["successes"][k]
            before = rec["alpha"]
    assert any(w < 1.0 for d in decisions for rec in d["steps"] for w in rec["weights"])


def test_state_without_running_sum_is_rebuilt_from_history() -> None:
    cfg = TesterConfig(min_steps=2, min_episodes=10)
    tester = VersionTester(cfg, rng=2)
    drive(tester, np.random.default_rng(2), range(0, 9))
    state = tester.state_dict()
    old = {k: v for k, v in state.items() if k not in ("m_loglik", "m_tests_scored")}
    clone = VersionTester()
    clone.load_state_dict(old)
    assert clone.fit_m() == tester.fit_m() and clone.tests_in_fit == tester.tests_in_fit
    np.testing.assert_allclose(clone.state_dict()["m_loglik"], state["m_loglik"], rtol=1e-12)
    broken = dict(state, m_loglik=[0.0] * 5)
    with pytest.raises(ValueError, match="m_loglik"):
        VersionTester().load_state_dict(broken)
