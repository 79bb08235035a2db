"""Within-group assignment of rollouts to the arms of a version test.

Exports ``clamp_probabilities``, ``allocate_groups`` and ``allocate_flat``.

A GRPO group is n rollouts of one task under one policy. Comparing versions *inside* a group
removes task difficulty and policy drift from the comparison, so every group of n >= 2
rollouts must contain the incumbent and at least one candidate. Within that constraint the
number of rollouts per arm is drawn to match the Thompson probabilities in expectation, with
the least variance possible (systematic sampling: each arm gets ``floor`` or ``ceil`` of its
expected share), then the slots are shuffled so the rollout index says nothing about the arm.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> arms = allocate_groups([8, 8, 2, 1], np.array([0.3, 0.7]), rng)
>>> [sorted(set(a.tolist())) for a in arms[:3]]
[[0, 1], [0, 1], [0, 1]]
>>> clamp_probabilities(np.array([0.01, 0.99]), (0.15, 0.85)).tolist()
[0.15000000000000002, 0.85]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["clamp_probabilities", "allocate_groups", "allocate_flat"]


def clamp_probabilities(p_best: np.ndarray, clamp: tuple[float, float]) -> np.ndarray:
    """Turn win probabilities (arm 0 = incumbent) into assignment probabilities.

    K = 2: the candidate's probability is clipped to ``[lo, hi]`` (the published rule), the
    incumbent gets the rest. K > 2: every arm is kept within ``[2 * lo / K, max(hi, 1 / K)]``
    (the same total exploration mass ``2 * lo`` spread over K arms) by the Euclidean projection
    onto that box intersected with the simplex, found by bisection on a common shift.
    """
    p = np.asarray(p_best, dtype=float)
    lo, hi = clamp
    k = p.size
    if k < 2:
        raise ValueError(f"need at least 2 arms, got {k}")
    if k == 2:
        pb = min(hi, max(lo, float(p[1])))
        return np.array([1.0 - pb, pb])
    floor = 2.0 * lo / k
    ceil = max(hi, 1.0 / k)
    left, right = -1.0 - ceil, 1.0 + ceil
    for _ in range(100):  # sum(clip(p + shift)) is monotone in shift
        mid = 0.5 * (left + right)
        if np.clip(p + mid, floor, ceil).sum() > 1.0:
            right = mid
        else:
            left = mid
    q = np.clip(p + 0.5 * (left + right), floor, ceil)
    return q / q.sum()


def allocate_groups(
    sizes: Sequence[int] | np.ndarray, probs: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Arm index (0 = incumbent) for every rollout of every group.

    For a group of ``n >= 2``: one slot goes to the incumbent and one to a candidate (with
    K > 2, the candidate is drawn in proportion to the candidates' probabilities); the other
    ``n - 2`` slots are split by systematic sampling with probabilities chosen so that each
    arm's expected count is ``n * probs[k]`` whenever that is feasible (for K = 2:
    ``1 <= n * p <= n - 1``; otherwise the within-group constraint wins and the nearest
    feasible split is used). A group of 1 draws its single arm from ``probs``. All draws for a
    call are vectorised: a few calls into ``rng`` regardless of the number of groups.
    """
    flat, offsets = allocate_flat(sizes, probs, rng)
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def allocate_flat(
    sizes: Sequence[int] | np.ndarray, probs: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """:func:`allocate_groups` as one flat array plus group offsets (``len(sizes) + 1``)."""
    n = np.asarray(sizes, dtype=np.int64)
    p = np.asarray(probs, dtype=float)
    k = p.size
    if n.ndim != 1 or (n.size and n.min() < 0):
        raise ValueError(f"group sizes must be a 1-D sequence of non-negative ints, got {sizes!r}")
    if k < 2 or p.min() < 0 or abs(p.sum() - 1.0) > 1e-9:
        raise ValueError(f"probs must be a distribution over >= 2 arms, got {p}")
    g = n.size
    offsets = [0, *np.cumsum(n).tolist()]
    total = offsets[-1]
    if total == 0:
        return np.zeros(0, dtype=np.int64), offsets
    pair = n >= 2
    # Reserved slots: the incumbent and one candidate in every group of >= 2.
    counts = np.zeros((g, k), dtype=np.int64)
    counts[:, 0] = pair
    cand_mass = p[1:].sum()
    cand_share = p[1:] / cand_mass if cand_mass > 0 else np.full(k - 1, 1.0 / (k - 1))
    if k == 2:
        counts[:, 1] = pair
    elif pair.any():
        draws = rng.random(int(pair.sum()))
        pick = np.minimum(np.searchsorted(np.cumsum(cand_share), draws, side="right"), k - 2)
        counts[np.flatnonzero(pair), 1 + pick] = 1
    rest = np.where(pair, n - 2, 0)
    need = rest > 0
    if need.any():
        r = rest[need].astype(float)[:, None]
        expected_reserved = np.concatenate(([1.0], cand_share))
        # Free-slot probabilities such that reserved + free matches n * p in expectation.
        q = np.clip((n[need, None] * p - expected_reserved) / r, 0.0, None)
        q_sum = q.sum(axis=1, keepdims=True)
        q = np.where(q_sum > 0, q / np.maximum(q_sum, 1e-300), 1.0 / k)
        edges = r * np.cumsum(q, axis=1)
        edges[:, -1] = r[:, 0]
        hits = np.ceil(edges - rng.random((edges.shape[0], 1))).astype(np.int64)
        hits[:, 1:] -= hits[:, :-1].copy()
        counts[need] += hits
    single = n == 1
    if single.any():
        draws = rng.random(int(single.sum()))
        arm = np.minimum(np.searchsorted(np.cumsum(p), draws, side="right"), k - 1)
        counts[np.flatnonzero(single), arm] = 1
    flat = np.repeat(np.tile(np.arange(k), g), counts.ravel())
    if np.all(n == n[0]):  # the usual GRPO layout: shuffle each row of a (groups, n) table
        flat = rng.permuted(flat.reshape(g, int(n[0])), axis=1).ravel()
    else:
        flat = flat[np.argsort(np.repeat(np.arange(g), n) + rng.random(total), kind="stable")]
    return flat, offsets
