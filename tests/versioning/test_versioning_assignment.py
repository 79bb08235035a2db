"""Within-group assignment: both arms in every group, expectation matched, clamping held."""

from __future__ import annotations

import numpy as np
import pytest

from reskill_gym.versioning.assignment import allocate_groups, clamp_probabilities


@pytest.mark.parametrize("p_b", [0.15, 0.3, 0.5, 0.77, 0.85])
def test_every_group_of_two_or_more_has_both_arms_and_expectation_matches(p_b: float) -> None:
    rng = np.random.default_rng(0)
    sizes = [8] * 400 + [2] * 50 + [5] * 100 + [1] * 200 + [0] * 3
    arms = allocate_groups(sizes, np.array([1 - p_b, p_b]), rng)
    assert [len(a) for a in arms] == sizes
    for a, n in zip(arms, sizes):
        if n >= 2:
            assert set(a.tolist()) == {0, 1}
    b8 = np.array([a.sum() for a in arms[:400]])
    # Systematic sampling: each group gets floor or ceil of its expected share...
    target = 8 * p_b
    assert set(b8.tolist()) <= {int(np.floor(target)), int(np.ceil(target))}
    # ...and the mean matches n * p (sd of the mean <= 0.5 / sqrt(400) = 0.025).
    assert b8.mean() == pytest.approx(target, abs=0.1)
    b5 = np.array([a.sum() for a in arms[450:550]])
    assert b5.mean() == pytest.approx(max(1, min(4, 5 * p_b)), abs=0.15)
    ones = np.array([a[0] for a in arms[550:750]])
    assert ones.mean() == pytest.approx(p_b, abs=0.12)  # 200 Bernoulli draws, > 3 sd


def test_positions_are_shuffled_within_groups() -> None:
    rng = np.random.default_rng(1)
    arms = allocate_groups([8] * 2000, np.array([0.5, 0.5]), rng)
    first_slot = np.array([a[0] for a in arms])
    assert 0.45 < first_slot.mean() < 0.55  # not "incumbent first" by construction


def test_small_groups_keep_both_arms_even_when_p_is_extreme() -> None:
    rng = np.random.default_rng(2)
    arms = allocate_groups([2, 3] * 100, np.array([0.85, 0.15]), rng)
    assert all(set(a.tolist()) == {0, 1} for a in arms)


def test_clamping_bounds_for_two_and_more_arms() -> None:
    assert clamp_probabilities(np.array([0.999, 0.001]), (0.15, 0.85))[1] == pytest.approx(0.15)
    assert clamp_probabilities(np.array([0.001, 0.999]), (0.15, 0.85))[1] == pytest.approx(0.85)
    assert clamp_probabilities(np.array([0.4, 0.6]), (0.15, 0.85))[1] == pytest.approx(0.6)
    q = clamp_probabilities(np.array([0.0, 0.999, 0.001, 0.0]), (0.15, 0.85))
    assert q.sum() == pytest.approx(1.0)
    assert np.all(q >= 2 * 0.15 / 4 - 1e-12) and np.all(q <= 0.85 + 1e-12)
    assert int(np.argmax(q)) == 1


def test_three_arms_every_group_has_incumbent_and_a_candidate() -> None:
    rng = np.random.default_rng(3)
    probs = np.array([0.2, 0.5, 0.3])
    arms = allocate_groups([8] * 3000, probs, rng)
    for a in arms:
        assert 0 in a and (1 in a or 2 in a)
    counts = np.bincount(np.concatenate(arms), minlength=3) / (8 * 3000)
    np.testing.assert_allclose(counts, probs, atol=0.01)


def test_bad_inputs() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="distribution"):
        allocate_groups([4], np.array([0.5, 0.6]), rng)
    with pytest.raises(ValueError, match="non-negative"):
        allocate_groups([-1], np.array([0.5, 0.5]), rng)
