"""A port of the published ReSkill version tracker: the parity oracle and benchmark baseline.

Exports ``PublishedTracker`` and ``PublishedTestState``.

``tests/versioning`` checks that ``TesterConfig.published()`` decides as this port does, and
``benchmarks/perf/version_tester.py`` measures the core tester against its cost. Nothing in
the core imports it.

Follows ``reskill/skill_serving/skill_ab_tracker.py``, class ``VersionABTracker``, of the
public repository amazon-science/reskill (read at commit d3ac167), rewritten here from that
reading; its algorithm, defaults and sampling are kept as published:

* two arms, "new" (the candidate) and "old" (the incumbent), each a Beta posterior that
  starts at (1, 1);
* assignment: every rollout draws its own Thompson probability, the share of
  ``n_thompson_samples`` (10,000) paired ``np.random.beta`` draws where new beats old,
  clamped to [0.15, 0.85], then one ``np.random.random()`` coin (``uniform_sampling``: 0.5);
* outcomes are buffered and flushed once per step; ``weighting_strategy`` ``dynamic``
  multiplies each arm's *whole* posterior (prior included) by ``w = M / (M + n)`` (``w = 1``
  for an arm without episodes this step, or while M is unknown) before adding the step's
  counts; ``last_step`` resets each arm to ``1 + s, 1 + n - s``; ``none`` just adds;
* decide after ``test_steps`` (5) flushed steps and ``min_episodes`` (50) episodes: accept
  when the new arm's posterior mean is strictly higher;
* M (``dynamic`` only): when a test is decided its per-step counts are scored for every M in
  1..2000 by the one-step-ahead predictive likelihood (per arm from (1, 1): discount by w,
  floor both pseudo-counts at 1e-6, add the Beta-Binomial log-pmf of the step's successes,
  then add the counts) and added to a running sum over *every* test decided so far; from
  the second decided test on, M is the grid point with the highest sum (first one on ties),
  used unchanged until the next decision. Cancelled tests are not scored.

Left out, as they do not touch the statistics: the registry snapshot and operation list,
per-skill trigger counts, the W&B metrics dict and JSON save/load. One addition: ``rng``
takes a ``np.random.RandomState`` so the benchmark can seed it; the default is the global
``np.random`` module, as published. Loops stay plain Python on purpose: this is the cost
being compared against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PublishedTracker", "PublishedTestState"]

GRID_SIZE = 2000  # M grid 1..2000, fixed in the published tracker
FLOOR = 1e-6  # lower bound on discounted pseudo-counts inside the M scoring


@dataclass
class PublishedTestState:
    """One running test: both posteriors, counters, pending buffer and per-step counts."""

    version_id: str
    started_at_step: int = 0
    alpha_new: float = 1.0
    beta_new: float = 1.0
    alpha_old: float = 1.0
    beta_old: float = 1.0
    total_episodes: int = 0
    new_count: int = 0
    old_count: int = 0
    steps_elapsed: int = 0
    step_data: list[dict[str, Any]] = field(default_factory=list)
    pending_new_successes: int = 0
    pending_new_total: int = 0
    pending_old_successes: int = 0
    pending_old_total: int = 0


class PublishedTracker:
    """The published per-rollout Thompson tracker with its dynamic discount (see module doc).

    >>> tr = PublishedTracker(weighting_strategy="dynamic", rng=np.random.RandomState(0))
    >>> tr.start_version_test("v2", step=0)
    >>> tr.record_episode_outcome(True, 1.0); tr.record_step(); tr.steps_elapsed
    1
    """

    def __init__(
        self,
        test_steps: int = 5,
        min_episodes: int = 50,
        prob_clamp_min: float = 0.15,
        prob_clamp_max: float = 0.85,
        n_thompson_samples: int = 10_000,
        uniform_sampling: bool = False,
        weighting_strategy: str = "none",
        rng: np.random.RandomState | None = None,
    ) -> None:
        if weighting_strategy not in ("none", "dynamic", "last_step"):
            raise ValueError(f"weighting_strategy {weighting_strategy!r} is not a published one")
        self.test_steps = test_steps
        self.min_episodes = min_episodes
        self.prob_clamp_min = prob_clamp_min
        self.prob_clamp_max = prob_clamp_max
        self.n_thompson_samples = n_thompson_samples
        self.uniform_sampling = uniform_sampling
        self.weighting_strategy = weighting_strategy
        self.np_random: Any = np.random if rng is None else rng
        self.current: PublishedTestState | None = None
        self.history: list[dict[str, Any]] = []
        self.m_loglik = [0.0] * GRID_SIZE
        self.m_hat = math.inf
        self.completed_tests = 0

    # ------------------------------------------------------------------ test lifecycle
    @property
    def is_testing(self) -> bool:
        return self.current is not None

    @property
    def steps_elapsed(self) -> int:
        return self.current.steps_elapsed if self.current else 0

    @property
    def m(self) -> float | None:
        """M in use (None while it is still infinite: no discount)."""
        return None if self.m_hat == math.inf else self.m_hat

    def start_version_test(self, version_id: str, step: int = 0) -> None:
        if self.current is not None:
            return  # published: a warning, the running test continues
        self.current = PublishedTestState(version_id=version_id, started_at_step=step)

    def cancel_test(self) -> None:
        self.current = None

    # ------------------------------------------------------------------ assignment
    def new_version_probability(self) -> float:
        """Monte-Carlo P(new > old), clamped; 0.5 under uniform sampling or when idle."""
        st = self.current
        if st is None or self.uniform_sampling:
            return 0.5
        draws_new = self.np_random.beta(st.alpha_new, st.beta_new, size=self.n_thompson_samples)
        draws_old = self.np_random.beta(st.alpha_old, st.beta_old, size=self.n_thompson_samples)
        p_new = float(np.mean(draws_new > draws_old))
        return max(self.prob_clamp_min, min(self.prob_clamp_max, p_new))

    def sample_rollout_decision(self) -> bool:
        """One rollout: True = new version. A fresh Monte-Carlo estimate every call."""
        if self.current is None:
            return True
        p_new = self.new_version_probability()
        return bool(self.np_random.random() < p_new)

    # ------------------------------------------------------------------ outcomes
    def record_episode_outcome(self, is_new_version: bool, success: float) -> None:
        st = self.current
        if st is None:
            return
        won = 1 if success > 0.5 else 0
        st.total_episodes += 1
        if is_new_version:
            st.new_count += 1
            st.pending_new_successes += won
            st.pending_new_total += 1
        else:
            st.old_count += 1
            st.pending_old_successes += won
            st.pending_old_total += 1

    def _flush(self) -> tuple[float, float]:
        st = self.current
        assert st is not None
        ns, nn = st.pending_new_successes, st.pending_new_total
        os_, on = st.pending_old_successes, st.pending_old_total
        if self.weighting_strategy == "last_step":
            w_new = w_old = 0.0
            st.alpha_new, st.beta_new = 1.0 + ns, 1.0 + (nn - ns)
            st.alpha_old, st.beta_old = 1.0 + os_, 1.0 + (on - os_)
        elif self.weighting_strategy == "dynamic":
            m = self.m_hat
            known = m != math.inf
            w_new = m / (m + nn) if nn > 0 and known else 1.0
            w_old = m / (m + on) if on > 0 and known else 1.0
            st.alpha_new = w_new * st.alpha_new + ns
            st.beta_new = w_new * st.beta_new + (nn - ns)
            st.alpha_old = w_old * st.alpha_old + os_
            st.beta_old = w_old * st.beta_old + (on - os_)
        else:
            w_new = w_old = 1.0
            st.alpha_new += ns
            st.beta_new += nn - ns
            st.alpha_old += os_
            st.beta_old += on - os_
        st.step_data.append(
            {"new_m": ns, "new_n": nn, "old_m": os_, "old_n": on, "w_new": w_new, "w_old": w_old}
        )
        st.pending_new_successes = st.pending_new_total = 0
        st.pending_old_successes = st.pending_old_total = 0
        return w_new, w_old

    def record_step(self) -> None:
        """Flush the step; the published per-step log also draws one Monte-Carlo estimate."""
        if self.current is None:
            return
        self._flush()
        self.current.steps_elapsed += 1
        self.new_version_probability()  # logged as p_new in the published per-step record

    def should_decide(self) -> bool:
        st = self.current
        return (
            st is not None
            and st.steps_elapsed >= self.test_steps
            and st.total_episodes >= self.min_episodes
        )

    def decide(self) -> tuple[bool, dict[str, Any]]:
        st = self.current
        if st is None:
            return False, {}
        new_mean = st.alpha_new / (st.alpha_new + st.beta_new)
        old_mean = st.alpha_old / (st.alpha_old + st.beta_old)
        accepted = new_mean > old_mean
        m_used = self.m
        if self.weighting_strategy == "dynamic" and st.step_data:
            self._score_test(st.step_data)
            self._update_m()
        stats = {
            "version_id": st.version_id,
            "accepted": accepted,
            "new_mean": new_mean,
            "old_mean": old_mean,
            "alpha_new": st.alpha_new,
            "beta_new": st.beta_new,
            "alpha_old": st.alpha_old,
            "beta_old": st.beta_old,
            "total_episodes": st.total_episodes,
            "steps_elapsed": st.steps_elapsed,
            "m_used": m_used,
            "m_after": self.m,
            "p_new_final": self.new_version_probability(),
            "step_data": st.step_data,
        }
        self.history.append(stats)
        self.current = None
        return accepted, stats

    # ------------------------------------------------------------------ M estimation
    @staticmethod
    def betabinom_logpmf(k: int, n: int, a: float, b: float) -> float:
        lg = math.lgamma
        return (
            lg(n + 1)
            - lg(k + 1)
            - lg(n - k + 1)
            + lg(k + a)
            + lg(n - k + b)
            - lg(n + a + b)
            - lg(a)
            - lg(b)
            + lg(a + b)
        )

    def _score_test(self, step_data: list[dict[str, Any]]) -> None:
        """Add one decided test's predictive log-likelihood at every M to the running sum."""
        for i in range(GRID_SIZE):
            m = float(i + 1)
            a_new = b_new = a_old = b_old = 1.0
            ll = 0.0
            for sd in step_data:
                ns, nn, os_, on = sd["new_m"], sd["new_n"], sd["old_m"], sd["old_n"]
                w_new = m / (m + nn) if nn > 0 else 1.0
                w_old = m / (m + on) if on > 0 else 1.0
                a_new, b_new = max(w_new * a_new, FLOOR), max(w_new * b_new, FLOOR)
                a_old, b_old = max(w_old * a_old, FLOOR), max(w_old * b_old, FLOOR)
                if nn > 0:
                    ll += self.betabinom_logpmf(ns, nn, a_new, b_new)
                if on > 0:
                    ll += self.betabinom_logpmf(os_, on, a_old, b_old)
                a_new, b_new = a_new + ns, b_new + (nn - ns)
                a_old, b_old = a_old + os_, b_old + (on - os_)
            self.m_loglik[i] += ll
        self.completed_tests += 1

    def _update_m(self) -> None:
        if self.completed_tests < 2:
            return
        best = 0
        for i in range(1, GRID_SIZE):
            if self.m_loglik[i] > self.m_loglik[best]:
                best = i
        self.m_hat = float(best + 1)
