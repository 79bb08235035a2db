"""Configuration of the skill-version tester.

Exports ``TesterConfig`` (plus the ``Mode``, ``Discount``, ``DecisionRule``, ``MFit`` and
``DiscountConvention`` literals).
Every field carries its help text (one source of truth for CLI help and docs); cross-field
checks run at construction with messages that say what to change.

>>> TesterConfig().clamp
(0.15, 0.85)
>>> TesterConfig(mode="uniform", discount="none").mode
'uniform'
>>> TesterConfig.published().m_fit  # the published tracker's settings
'predictive'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reskill_gym.versioning.bayes import MFit

__all__ = ["TesterConfig", "Mode", "Discount", "DecisionRule", "MFit", "DiscountConvention"]

Mode = Literal["thompson", "uniform", "auto_accept", "off"]
Discount = Literal["dynamic", "none", "last_step"]
DecisionRule = Literal["posterior_mean", "probability"]
DiscountConvention = Literal["evidence", "posterior"]


class TesterConfig(BaseModel):
    """How candidates are tested against the live library version."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    __test__ = False  # the name starts with "Test": keep pytest from collecting it

    mode: Mode = Field(
        "thompson",
        description=(
            "thompson: assignment probability = clamped P(candidate is best); uniform: equal "
            "split (the paper's ablation); auto_accept: adopt every candidate untested "
            "(ablation); off: never adopt a candidate (frozen library)."
        ),
    )
    discount: Discount = Field(
        "dynamic",
        description=(
            "How older evidence fades at each step's flush. dynamic: weight M/(M+n) on the "
            "accumulated pseudo-counts, M fitted on finished tests; none: plain accumulation; "
            "last_step: only the latest step counts."
        ),
    )
    clamp: tuple[float, float] = Field(
        (0.15, 0.85),
        description="Lower and upper bound on the candidate's assignment probability (K = 2).",
    )
    success_threshold: float = Field(
        0.5, description="A rollout counts as a success when its reward is above this value."
    )
    min_steps: int = Field(5, ge=1, description="Training steps with outcomes before a decision.")
    min_episodes: int = Field(50, ge=0, description="Episodes (all arms) before a decision.")
    decision_rule: DecisionRule = Field(
        "posterior_mean",
        description=(
            "posterior_mean: accept the candidate if its posterior mean is higher (the "
            "published rule); probability: accept if P(candidate is best) >= probability_threshold."
        ),
    )
    probability_threshold: float = Field(
        0.95, gt=0.0, lt=1.0, description="Threshold tau of the 'probability' decision rule."
    )
    prior: tuple[float, float] = Field(
        (1.0, 1.0), description="Beta prior (alpha0, beta0) of every arm; both must be > 0."
    )
    m_grid: tuple[int, int] = Field(
        (1, 2000),
        description="Inclusive integer grid (lo, hi) searched for the discount concentration M.",
    )
    min_finished_tests: int = Field(
        2, ge=1, description="Finished tests needed before M is fitted; before that no discount."
    )
    max_history_tests: int = Field(
        100,
        ge=1,
        description=(
            "Most recent finished tests whose per-step counts are kept in the state (audit, "
            "and the tests a windowed fit of M reads); bounds the checkpoint size."
        ),
    )
    m_fit: MFit = Field(
        "pooled",
        description=(
            "Likelihood that picks M. pooled: each arm's per-step outcomes as Beta-Binomial "
            "draws around its pooled rate in the test; predictive (the published tracker): "
            "one-step-ahead Beta-Binomial predictive of the arm's posterior after the step's "
            "discount M/(M+n) was applied to all of it, prior pseudo-counts included."
        ),
    )
    m_fit_window: int | None = Field(
        None,
        ge=1,
        description=(
            "Fit M on the most recent N finished tests; None: on every test finished since "
            "the tester was created (a running sum, as published), however long the run."
        ),
    )
    discount_convention: DiscountConvention = Field(
        "evidence",
        description=(
            "What the dynamic discount w multiplies at each flush. evidence: only the "
            "accumulated counts, alpha = a0 + w (alpha - a0) + s, so the prior stays whole; "
            "posterior (published): the whole posterior, alpha = w alpha + s, so the prior "
            "fades too."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> TesterConfig:
        lo, hi = self.clamp
        if not (0.0 <= lo < hi <= 1.0) or lo > 0.5 or hi < 0.5:
            raise ValueError(
                f"clamp={self.clamp}: need 0 <= lo <= 0.5 <= hi <= 1 and lo < hi, e.g. (0.15, 0.85)"
            )
        if self.prior[0] <= 0 or self.prior[1] <= 0:
            raise ValueError(f"prior={self.prior}: both pseudo-counts must be > 0, e.g. (1, 1)")
        m_lo, m_hi = self.m_grid
        if m_lo < 1 or m_hi < m_lo:
            raise ValueError(f"m_grid={self.m_grid}: need 1 <= lo <= hi, e.g. (1, 2000)")
        if self.m_fit_window is not None and self.m_fit_window > self.max_history_tests:
            raise ValueError(
                f"m_fit_window={self.m_fit_window} exceeds max_history_tests="
                f"{self.max_history_tests}: raise max_history_tests or shrink the window"
            )
        if self.m_fit_window is not None and self.m_fit_window < self.min_finished_tests:
            raise ValueError(
                f"m_fit_window={self.m_fit_window} < min_finished_tests="
                f"{self.min_finished_tests}: M could never be fitted"
            )
        return self

    @classmethod
    def published(cls, **overrides: object) -> TesterConfig:
        """The published tracker's settings (``weighting_strategy: dynamic``): predictive fit
        of M on all finished tests, the whole posterior discounted, posterior-mean rule.

        Defaults shared with the project (clamp, prior, grid, 5 steps, 50 episodes) are the
        published values already; ``overrides`` replace any field.
        """
        base: dict[str, object] = {
            "mode": "thompson",
            "discount": "dynamic",
            "m_fit": "predictive",
            "m_fit_window": None,
            "discount_convention": "posterior",
            "decision_rule": "posterior_mean",
        }
        return cls(**{**base, **overrides})
