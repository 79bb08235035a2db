"""Skill-version testing: within-group assignment, Thompson sampling with an adaptively
discounted Beta posterior, and accept/revert decisions. Pure numpy/scipy, no trainer import.

Exports ``VersionTester``, ``TesterConfig``, ``GroupSpec``, ``Decision``, ``StepRecord``,
``ArmPosterior``, ``ArmCounts``, ``FinishedTest``, ``TesterBusyError``,
``TesterInactiveError``, ``prob_greater``, ``prob_best``, ``beta_binomial_loglik_grid``,
``predictive_loglik_tests``, ``finished_test_loglik``, ``fit_concentration``,
``clamp_probabilities`` and ``allocate_groups``.
See ``reskill_gym/versioning/README.md`` for the algorithm and its options.

>>> t = VersionTester(TesterConfig(), rng=0)
>>> t.start("v1", "v2", step=0)
>>> round(t.p_candidate, 3)
0.5
"""

from __future__ import annotations

from reskill_gym.versioning.assignment import allocate_groups, clamp_probabilities
from reskill_gym.versioning.bayes import (
    beta_binomial_loglik_grid,
    finished_test_loglik,
    fit_concentration,
    predictive_loglik_tests,
    prob_best,
    prob_greater,
)
from reskill_gym.versioning.config import TesterConfig
from reskill_gym.versioning.tester import (
    ArmCounts,
    ArmPosterior,
    Decision,
    FinishedTest,
    GroupSpec,
    StepRecord,
    TesterBusyError,
    TesterInactiveError,
    VersionTester,
)

__all__ = [
    "VersionTester",
    "TesterConfig",
    "GroupSpec",
    "Decision",
    "StepRecord",
    "ArmPosterior",
    "ArmCounts",
    "FinishedTest",
    "TesterBusyError",
    "TesterInactiveError",
    "prob_greater",
    "prob_best",
    "beta_binomial_loglik_grid",
    "predictive_loglik_tests",
    "finished_test_loglik",
    "fit_concentration",
    "clamp_probabilities",
    "allocate_groups",
]
