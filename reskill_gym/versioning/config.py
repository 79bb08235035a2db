"""Configuration of the skill-version tester.

Exports ``TesterConfig`` (plus the ``Mode``, ``Discount`` and ``DecisionRule`` literals).
Every field carries its help text (one source of truth for CLI help and docs); cross-field
checks run at construction with messages that say what to change.

>>> TesterConfig().clamp
(0.15, 0.85)
>>> TesterConfig(mode="uniform", discount="none").mode
'uniform'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["TesterConfig", "Mode", "Discount", "DecisionRule"]

Mode = Literal["thompson", "uniform", "auto_accept", "off"]
Discount = Literal["dynamic", "none", "last_step"]
DecisionRule = Literal["posterior_mean", "probability"]


class TesterConfig(BaseModel):
    """How candidates are tested against the live library version."""

    model_config = ConfigDict(extra="forbid", frozen=True)
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
        description="Most recent finished tests kept for fitting M (bounds memory and fit time).",
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
        return self
