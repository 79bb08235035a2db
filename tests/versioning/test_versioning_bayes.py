"""Exactness of the Beta arithmetic: win probabilities and the vectorised M-grid likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from reskill_gym.versioning.bayes import (
    beta_binomial_loglik_grid,
    finished_test_loglik,
    fit_concentration,
    predictive_loglik_tests,
    prob_best,
    prob_greater,
)


def closed_form_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(theta_B > theta_A) for integer parameters (Evan Miller's sum), the exact reference."""
    total = 0.0
    for i in range(a_b):
        total += math.exp(
            special.betaln(a_a + i, b_a + b_b)
            - math.log(b_b + i)
            - special.betaln(1 + i, b_b)
            - special.betaln(a_a, b_a)
        )
    return total


def loop_loglik(s: list[int], n: list[int], mu: list[float], m_values: list[float]) -> list[float]:
    """Plain-loop Beta-Binomial log-likelihood, one record and one grid point at a time."""
    out = []
    for m in m_values:
        total = 0.0
        for s_r, n_r, mu_r in zip(s, n, mu):
            a, b = m * mu_r, m * (1.0 - mu_r)
            f_r = n_r - s_r
            total += (
                math.lgamma(n_r + 1)
                - math.lgamma(s_r + 1)
                - math.lgamma(f_r + 1)
                + math.lgamma(s_r + a)
                + math.lgamma(f_r + b)
                - math.lgamma(n_r + a + b)
                - math.lgamma(a)
                - math.lgamma(b)
                + math.lgamma(a + b)
            )
        out.append(total)
    return out


def test_exact_probability_matches_closed_form_for_integers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        a_a, b_a, a_b, b_b = (int(v) for v in rng.integers(1, 600, size=4))
        exact = closed_form_b_beats_a(a_a, b_a, a_b, b_b)
        assert prob_greater(a_b, b_b, a_a, b_a) == pytest.approx(exact, abs=1e-9)


def test_exact_probability_matches_monte_carlo_for_real_parameters() -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        a1, b1, a2, b2 = np.exp(rng.uniform(np.log(0.3), np.log(800.0), size=4))
        draws = 100_000  # MC sd <= 0.0016, so 0.01 is > 6 sd
        mc = float(np.mean(rng.beta(a1, b1, draws) > rng.beta(a2, b2, draws)))
        assert abs(prob_greater(a1, b1, a2, b2) - mc) < 0.01, (a1, b1, a2, b2)


def test_probability_extremes_and_symmetry() -> None:
    # A tight posterior against a wide one, both ways round; complementary events sum to 1.
    for params in [(900.5, 100.2, 1.3, 0.8), (2.0, 2.0, 600.0, 400.0), (0.4, 0.6, 0.5, 0.5)]:
        p = prob_greater(*params)
        q = prob_greater(params[2], params[3], params[0], params[1])
        assert 0.0 <= p <= 1.0
        assert p + q == pytest.approx(1.0, abs=1e-9)
    assert prob_greater(5.0, 5.0, 5.0, 5.0) == pytest.approx(0.5, abs=1e-12)
    assert prob_greater(3000.0, 10.0, 10.0, 3000.0) == pytest.approx(1.0, abs=1e-12)


def test_prob_best_for_three_arms_matches_monte_carlo() -> None:
    rng = np.random.default_rng(2)
    alpha = np.array([40.5, 3.2, 12.0])
    beta = np.array([60.1, 2.7, 20.0])
    p = prob_best(alpha, beta)
    draws = rng.beta(alpha, beta, size=(400_000, 3))
    mc = np.bincount(draws.argmax(axis=1), minlength=3) / draws.shape[0]
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p, mc, atol=0.01)
    two = prob_best([3.0, 7.5], [4.0, 2.5])
    assert two[1] == pytest.approx(prob_greater(7.5, 2.5, 3.0, 4.0), abs=1e-15)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="> 0"):
        prob_greater(0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least 2 arms"):
        prob_best([1.0], [1.0])
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        beta_binomial_loglik_grid([5], [3], [0.5], [1.0])
    with pytest.raises(ValueError, match="strictly inside"):
        beta_binomial_loglik_grid([1], [3], [1.0], [1.0])


def test_vectorised_grid_equals_plain_loop() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        r = 120
        n = rng.integers(0, 150, size=r)
        s = rng.binomial(n, rng.uniform(0.05, 0.95, size=r))
        mu = np.repeat(rng.uniform(0.02, 0.98, size=r // 5), 5)  # records share (test, arm) means
        grid = np.concatenate(
            [np.arange(1.0, 60.0), [137.0, 999.0, 2000.0], rng.uniform(0.5, 2000, 5)]
        )
        fast = beta_binomial_loglik_grid(s, n, mu, grid)
        slow = loop_loglik(s.tolist(), n.tolist(), mu.tolist(), grid.tolist())
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


def test_vectorised_grid_per_record_equals_plain_loop() -> None:
    rng = np.random.default_rng(4)
    grid = np.arange(1.0, 2001.0, 37.0)
    for _ in range(50):
        n = int(rng.integers(1, 300))
        s = int(rng.integers(0, n + 1))
        mu = float(rng.uniform(0.01, 0.99))
        fast = beta_binomial_loglik_grid([s], [n], [mu], grid)
        slow = loop_loglik([s], [n], [mu], grid.tolist())
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


def _simulate_tests(rng: np.random.Generator, drift: float, n_tests: int = 20) -> list:
    tests = []
    for _ in range(n_tests):
        base = rng.uniform(0.2, 0.5, size=2)
        steps = np.arange(5)[:, None]
        rates = np.clip(base[None, :] + drift * steps, 0.01, 0.99)
        episodes = rng.integers(90, 150, size=(5, 2))
        successes = rng.binomial(episodes, rates)
        tests.append((successes.tolist(), episodes.tolist()))
    return tests


def test_fit_concentration_separates_stationary_from_drifting_arms() -> None:
    rng = np.random.default_rng(5)
    m_stationary = fit_concentration(_simulate_tests(rng, drift=0.0), (1, 2000), (1.0, 1.0))
    m_drift = fit_concentration(_simulate_tests(rng, drift=0.1), (1, 2000), (1.0, 1.0))
    assert m_stationary >= 500  # binomial-looking steps: little or no discount
    assert 1 < m_drift < 100  # steps scatter far beyond binomial noise: strong discount
    with pytest.raises(ValueError, match="at least one finished test"):
        fit_concentration([], (1, 2000), (1.0, 1.0))


def loop_predictive(tests: list, m_values: list[float], prior: tuple[float, float]) -> list:
    """The published M score written as plain loops: per test, per M, per arm, per step."""
    out = []
    for succ, eps in tests:
        curve = []
        for m in m_values:
            total = 0.0
            for arm in range(len(succ[0])):
                a, b = prior
                for row_s, row_n in zip(succ, eps):
                    s, n = row_s[arm], row_n[arm]
                    w = m / (m + n) if n > 0 else 1.0
                    a, b = max(w * a, 1e-6), max(w * b, 1e-6)
                    if n > 0:
                        f = n - s
                        total += (
                            math.lgamma(n + 1)
                            - math.lgamma(s + 1)
                            - math.lgamma(f + 1)
                            + math.lgamma(s + a)
                            + math.lgamma(f + b)
                            - math.lgamma(n + a + b)
                            - math.lgamma(a)
                            - math.lgamma(b)
                            + math.lgamma(a + b)
                        )
                    a, b = a + s, b + (n - s)
            curve.append(total)
        out.append(curve)
    return out


def _ragged_tests(rng: np.random.Generator, n_tests: int) -> list:
    """Tests of 1-9 steps, 2-3 arms, some arm-steps empty, some rates at the extremes."""
    tests = []
    for _ in range(n_tests):
        steps, arms = int(rng.integers(1, 10)), int(rng.integers(2, 4))
        eps = rng.integers(0, 130, size=(steps, arms))
        eps[rng.random(eps.shape) < 0.15] = 0
        rates = rng.choice([0.0, 0.02, 0.3, 0.7, 1.0], size=(steps, arms))
        tests.append((rng.binomial(eps, rates).tolist(), eps.tolist()))
    return tests


def test_predictive_fit_equals_plain_loop() -> None:
    rng = np.random.default_rng(6)
    tests = _ragged_tests(rng, 12)
    grid = np.concatenate([np.arange(1.0, 40.0), [137.0, 999.0, 2000.0], rng.uniform(0.5, 2000, 5)])
    for prior in [(1.0, 1.0), (0.5, 2.0)]:
        fast = predictive_loglik_tests(tests, grid, prior)
        slow = np.array(loop_predictive(tests, grid.tolist(), prior)).T
        assert fast.shape == (grid.size, len(tests))
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    # one test at a time through the tester's entry point gives the same curves
    for i, (succ, eps) in enumerate(tests[:3]):
        curve = finished_test_loglik(succ, eps, (1, 50), (1.0, 1.0), method="predictive")
        slow = loop_predictive([(succ, eps)], list(range(1, 51)), (1.0, 1.0))[0]
        np.testing.assert_allclose(curve, slow, rtol=0, atol=1e-9, err_msg=f"test {i}")
    # the floor is reached: M = 1 with ~100 episodes a step and no successes
    zero = [([[0, 0]] * 5, [[120, 100]] * 5)]
    np.testing.assert_allclose(
        predictive_loglik_tests(zero, [1.0], (1.0, 1.0))[:, 0],
        np.array(loop_predictive(zero, [1.0], (1.0, 1.0))).T[:, 0],
        rtol=0,
        atol=1e-9,
    )


def test_predictive_fit_separates_stationary_from_drifting_arms() -> None:
    rng = np.random.default_rng(7)
    stationary = _simulate_tests(rng, drift=0.0)
    drifting = _simulate_tests(rng, drift=0.1)
    m_stationary = fit_concentration(stationary, (1, 2000), (1.0, 1.0), method="predictive")
    m_drift = fit_concentration(drifting, (1, 2000), (1.0, 1.0), method="predictive")
    assert m_stationary >= 300
    assert m_drift < 150 and m_drift < m_stationary / 3
    with pytest.raises(ValueError, match="method"):
        fit_concentration(stationary, (1, 2000), (1.0, 1.0), method="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finished test 1"):
        predictive_loglik_tests([([[1]], [[2]]), ([[3]], [[2]])], [1.0], (1.0, 1.0))
