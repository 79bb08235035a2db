"""The skill-version tester: within-group Thompson assignment, discounted Beta posteriors,
accept/revert decisions.

Exports ``VersionTester``, ``GroupSpec``, ``Decision``, ``StepRecord``, ``ArmPosterior``,
``ArmCounts``, ``FinishedTest``, ``TesterBusyError`` and ``TesterInactiveError``.

Lifecycle of one test (K = 2 arms by default: the incumbent and one candidate; any number of
candidates can be tested at once, arm 0 is always the incumbent)::

    tester.start(incumbent, candidates, step)   # Decision at once for auto_accept / off
    per training step:
        plan = tester.assign(groups)            # versions for every rollout of every group
        tester.record(version, reward)          # buffered, once per rollout
        decision = tester.end_step(step)        # flush with discount; Decision or None

The published implementation used the global ``np.random`` (decisions could not be replayed),
drew 10,000 Monte-Carlo samples per rollout and looped over the M grid in Python. Here the
tester owns an ``np.random.Generator`` whose state is part of ``state_dict()``, the win
probability is computed exactly once per step, and the grid is one vectorised array op. The
published settings (predictive fit of M, whole posterior discounted) are
``TesterConfig.published()``.

>>> tester = VersionTester(TesterConfig(min_steps=1, min_episodes=4), rng=0)
>>> tester.start("lib-v1", "lib-v2", step=0)
>>> plan = tester.assign([GroupSpec(group_id="g0", task_id="t0", n=4)])
>>> sorted(set(plan[0]))
['lib-v1', 'lib-v2']
>>> for version in plan[0]:
...     _ = tester.record(version, 1.0 if version == "lib-v2" else 0.0)
>>> decision = tester.end_step(0)
>>> decision.outcome, decision.accepted, tester.head, tester.active
('accept', 'lib-v2', 'lib-v2', False)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_json
from reskill_gym.versioning.assignment import allocate_flat, clamp_probabilities
from reskill_gym.versioning.bayes import (
    MFit,
    argmax_m,
    best_m,
    finished_test_loglik,
    m_grid_values,
    prob_best,
)
from reskill_gym.versioning.config import (
    DecisionRule,
    Discount,
    DiscountConvention,
    Mode,
    TesterConfig,
)

__all__ = [
    "VersionTester",
    "GroupSpec",
    "Decision",
    "StepRecord",
    "ArmPosterior",
    "ArmCounts",
    "FinishedTest",
    "TesterBusyError",
    "TesterInactiveError",
]

logger = logging.getLogger(__name__)

STATE_FORMAT = "reskill-version-tester/1"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class TesterBusyError(RuntimeError):
    """``start()`` was called while a test is still running."""

    __test__ = False  # not a pytest test class despite the name


class TesterInactiveError(RuntimeError):
    """No test is active and no head version is known to assign."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class GroupSpec:
    """One GRPO group of a training step: ``n`` rollouts of task ``task_id``.

    >>> GroupSpec(group_id="step3-g0", task_id="pick_mug_1", n=8).n
    8
    """

    group_id: str
    task_id: str
    n: int

    def __post_init__(self) -> None:
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, bool) or self.n < 0:
            raise ValueError(f"GroupSpec {self.group_id!r}: n must be an int >= 0, got {self.n!r}")


class StepRecord(BaseModel):
    """One flushed training step of a test; lists are aligned with the test's versions."""

    model_config = ConfigDict(extra="forbid")

    step: int
    successes: list[int] = Field(description="Successes per arm this step (raw, undiscounted).")
    episodes: list[int] = Field(description="Episodes per arm this step.")
    weights: list[float] = Field(description="Discount applied to each arm's earlier evidence.")
    alpha: list[float] = Field(description="Posterior alpha per arm after the flush.")
    beta: list[float] = Field(description="Posterior beta per arm after the flush.")
    assign_probs: list[float] = Field(description="Assignment probabilities used during the step.")
    p_best: list[float] = Field(description="P(arm is best) after the flush (unclamped).")


class ArmPosterior(BaseModel):
    """Beta posterior of one arm at decision time."""

    alpha: float
    beta: float
    mean: float


class ArmCounts(BaseModel):
    """Raw outcome totals of one arm over the whole test."""

    successes: int
    episodes: int


class FinishedTest(BaseModel):
    """Per-step raw outcomes of a decided test, kept to fit the discount concentration M."""

    model_config = ConfigDict(extra="forbid")

    versions: list[str]
    started_step: int
    decided_step: int
    successes: list[list[int]] = Field(description="steps x arms")
    episodes: list[list[int]] = Field(description="steps x arms")


class Decision(BaseModel):
    """The end of a test, with everything needed to audit it; log it with ``to_dict()``.

    ``accepted`` is the version HEAD points to afterwards (the candidate on ``accept``, the
    incumbent on ``reject``); ``rejected`` lists every other tested version.
    """

    model_config = ConfigDict(extra="forbid")

    step: int
    started_step: int
    outcome: Literal["accept", "reject"]
    incumbent: str
    candidates: list[str]
    accepted: str
    rejected: list[str]
    mode: Mode
    discount: Discount
    decision_rule: DecisionRule
    m: float | None = Field(
        description="Discount concentration M used (None: no dynamic discount)."
    )
    m_fit: MFit = Field("pooled", description="Likelihood that fitted M.")
    discount_convention: DiscountConvention = Field(
        "evidence", description="What the dynamic discount multiplied."
    )
    posteriors: dict[str, ArmPosterior]
    counts: dict[str, ArmCounts]
    p_best: dict[str, float] = Field(description="P(version is best) at decision time.")
    steps: list[StepRecord]
    reason: str

    @property
    def head(self) -> str:
        """The version that is live after this decision."""
        return self.accepted

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict, the shape appended to the library history."""
        return self.model_dump(mode="json")


class _ActiveTest(BaseModel):
    """Mutable state of the running test (serialised as is by ``state_dict``)."""

    model_config = ConfigDict(extra="forbid")

    versions: list[str]
    started_step: int
    last_step: int
    alpha: list[float]
    beta: list[float]
    pending_s: list[int]
    pending_n: list[int]
    total_s: list[int]
    total_n: list[int]
    m: float | None
    p_best: list[float]
    assign_probs: list[float]
    steps: list[StepRecord] = Field(default_factory=list)


class _TesterState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["reskill-version-tester/1"]
    config: TesterConfig
    rng: dict[str, Any]
    head: str | None
    history: list[FinishedTest]
    active: _ActiveTest | None
    last_decision: Decision | None
    ignored_records: int = 0
    m_loglik: list[float] | None = Field(
        None,
        description=(
            "Summed log-likelihood over the M grid of every test finished so far (the fit "
            "when m_fit_window is None); None in states written before it existed: rebuilt "
            "from history."
        ),
    )
    m_tests_scored: int = Field(0, ge=0, description="Finished tests summed in m_loglik.")


def _jsonable(value: Any) -> Any:
    """Bit-generator states hold numpy arrays/ints for some generators; make them plain JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _restore_rng(state: dict[str, Any]) -> np.random.Generator:
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"rng.bit_generator must be one of {_BIT_GENERATORS}, got {name!r}")
    bit_gen = getattr(np.random, name)()
    if name == "MT19937":
        inner = dict(state["state"])
        inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
        state = {**state, "state": inner}
    bit_gen.state = state
    return np.random.Generator(bit_gen)


class VersionTester:
    """Tests candidate library versions against the incumbent inside GRPO groups.

    Arguments: ``config`` (defaults to ``TesterConfig()``) and ``rng`` (a Generator, a seed,
    or None for fresh entropy); all randomness goes through that generator, so a seeded or
    restored tester replays exactly.

    Conventions: ``start()`` returns None when a test begins and a :class:`Decision` at once
    in modes ``auto_accept`` (candidate adopted untested; with several candidates the first)
    and ``off`` (candidates rejected; the library stays frozen); ``end_step()`` returns
    decisions of running tests only, so an immediate decision is never reported twice. With
    no test running, ``assign()`` gives every rollout ``head`` (argument) or else the
    tester's own head (the incumbent of the last test or the version its last decision left
    live) and raises :class:`TesterInactiveError` when neither is known.

    >>> t = VersionTester(TesterConfig(mode="auto_accept"), rng=1)
    >>> t.start("v1", ["v2"], step=7).outcome
    'accept'
    >>> t.assign([GroupSpec("g", "task", 3)])
    [['v2', 'v2', 'v2']]
    """

    def __init__(
        self, config: TesterConfig | None = None, rng: np.random.Generator | int | None = None
    ) -> None:
        self.config = config if config is not None else TesterConfig()
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self._head: str | None = None
        self._history: list[FinishedTest] = []
        self._curves: list[np.ndarray | None] = []  # M-grid log-likelihood per kept test
        self._ll_total = np.zeros(m_grid_values(self.config.m_grid).size)  # every finished test
        self._n_scored = 0
        self._active: _ActiveTest | None = None
        self._index: dict[str, int] = {}
        self.last_decision: Decision | None = None
        self.ignored_records = 0

    # ------------------------------------------------------------------ properties
    @property
    def active(self) -> bool:
        """True while a test is running."""
        return self._active is not None

    @property
    def head(self) -> str | None:
        """The live version as far as the tester knows (None before the first test)."""
        return self._head

    @property
    def versions(self) -> list[str]:
        """Arms of the running test, incumbent first ([] when idle)."""
        return list(self._active.versions) if self._active else []

    @property
    def p_candidate(self) -> float | None:
        """Current (clamped) probability that a rollout gets a candidate; None when idle.

        With K = 2 this is the candidate's assignment probability; with K > 2 the candidates'
        total.
        """
        if self._active is None:
            return None
        return 1.0 - self._active.assign_probs[0]

    @property
    def probabilities(self) -> dict[str, float]:
        """Current assignment probability per version ({} when idle)."""
        if self._active is None:
            return {}
        return dict(zip(self._active.versions, self._active.assign_probs))

    @property
    def steps(self) -> list[StepRecord]:
        """Flushed per-step records of the running test ([] when idle)."""
        return list(self._active.steps) if self._active else []

    @property
    def history(self) -> list[FinishedTest]:
        """Finished tests kept for the M fit (most recent last)."""
        return list(self._history)

    @property
    def m(self) -> float | None:
        """Discount concentration M of the running test (None: no dynamic discount)."""
        return self._active.m if self._active else None

    # ------------------------------------------------------------------ lifecycle
    def _test_curve(self, test: FinishedTest) -> np.ndarray:
        cfg = self.config
        return finished_test_loglik(test.successes, test.episodes, cfg.m_grid, cfg.prior, cfg.m_fit)

    def fit_m(self) -> int | None:
        """Fit M on finished tests' per-step records; None before ``min_finished_tests``.

        ``m_fit_window`` None: every test finished so far, whose curves (log-likelihood over
        the grid, ``m_fit`` model) were added to a running total when each was decided, so a
        refit is one argmax. ``m_fit_window`` N: the last N kept tests, each curve computed
        once and cached. Both sum curves in decision order, as ``fit_concentration`` does.
        """
        cfg = self.config
        if not self.fit_m_ready:
            return None
        if cfg.m_fit_window is None:
            return argmax_m(self._ll_total, cfg.m_grid)
        first = len(self._history) - cfg.m_fit_window
        for i in range(max(0, first), len(self._history)):
            if self._curves[i] is None:
                self._curves[i] = self._test_curve(self._history[i])
        return best_m([c for c in self._curves[max(0, first) :] if c is not None], cfg.m_grid)

    @property
    def tests_in_fit(self) -> int:
        """How many finished tests the next fit of M reads."""
        window = self.config.m_fit_window
        return self._n_scored if window is None else min(window, len(self._history))

    def start(self, incumbent: str, candidates: Sequence[str] | str, step: int) -> Decision | None:
        """Begin testing ``candidates`` against ``incumbent`` from training step ``step`` on.

        Returns None when a test starts, or the immediate Decision in modes
        ``auto_accept``/``off``. Raises :class:`TesterBusyError` if a test is running.
        """
        if self._active is not None:
            raise TesterBusyError(
                f"a test of {self._active.versions} is still running (started at step "
                f"{self._active.started_step}); wait for its decision or call abort()"
            )
        cands = [candidates] if isinstance(candidates, str) else list(candidates)
        versions = [incumbent, *cands]
        if not cands:
            raise ValueError("start(): candidates is empty")
        for v in versions:
            if not isinstance(v, str) or not v:
                raise ValueError(f"start(): versions must be non-empty strings, got {v!r}")
        if len(set(versions)) != len(versions):
            raise ValueError(f"start(): incumbent and candidates must be distinct, got {versions}")
        step = int(step)
        cfg = self.config
        if cfg.mode in ("auto_accept", "off"):
            accept = cfg.mode == "auto_accept"
            accepted = cands[0] if accept else incumbent
            k = len(versions)
            a0, b0 = cfg.prior
            decision = Decision(
                step=step,
                started_step=step,
                outcome="accept" if accept else "reject",
                incumbent=incumbent,
                candidates=cands,
                accepted=accepted,
                rejected=[v for v in versions if v != accepted],
                mode=cfg.mode,
                discount=cfg.discount,
                decision_rule=cfg.decision_rule,
                m=None,
                posteriors={
                    v: ArmPosterior(alpha=a0, beta=b0, mean=a0 / (a0 + b0)) for v in versions
                },
                counts={v: ArmCounts(successes=0, episodes=0) for v in versions},
                p_best={v: 1.0 / k for v in versions},
                steps=[],
                reason=(
                    "mode=auto_accept: candidate adopted without a test"
                    if accept
                    else "mode=off: candidates are never adopted"
                ),
            )
            self._head = accepted
            self.last_decision = decision
            logger.info("version test skipped (%s): %s -> %s", cfg.mode, versions, accepted)
            return decision
        k = len(versions)
        fitted = self.fit_m() if cfg.discount == "dynamic" else None  # None until ready
        m = float(fitted) if fitted is not None else None
        a0, b0 = cfg.prior
        p = prob_best([a0] * k, [b0] * k)
        self._active = _ActiveTest(
            versions=versions,
            started_step=step,
            last_step=step - 1,
            alpha=[float(a0)] * k,
            beta=[float(b0)] * k,
            pending_s=[0] * k,
            pending_n=[0] * k,
            total_s=[0] * k,
            total_n=[0] * k,
            m=m,
            p_best=p.tolist(),
            assign_probs=self._assignment_probs(p, k).tolist(),
        )
        self._index = {v: i for i, v in enumerate(versions)}
        self._head = incumbent
        logger.info("version test started at step %d: %s vs %s (M=%s)", step, incumbent, cands, m)
        return None

    @property
    def fit_m_ready(self) -> bool:
        """Whether enough finished tests exist for the dynamic discount."""
        return self.tests_in_fit >= self.config.min_finished_tests

    def abort(self, reason: str = "") -> None:
        """Drop the running test without a decision (HEAD stays the incumbent, no history)."""
        if self._active is not None:
            logger.info(
                "version test of %s aborted: %s", self._active.versions, reason or "no reason"
            )
        self._active = None
        self._index = {}

    def _assignment_probs(self, p_best: np.ndarray, k: int) -> np.ndarray:
        if self.config.mode == "uniform":
            return np.full(k, 1.0 / k)
        return clamp_probabilities(p_best, self.config.clamp)

    # ------------------------------------------------------------------ per step
    def assign(self, groups: Sequence[GroupSpec | int], head: str | None = None) -> list[list[str]]:
        """Version for every rollout of every group (``groups[i].n`` entries for group i).

        Accepts :class:`GroupSpec` (or anything with an int ``n``) or plain ints. While a test
        runs, every group of n >= 2 contains the incumbent and a candidate, and candidate
        counts match the current assignment probabilities in expectation.
        """
        sizes = [self._group_size(g, i) for i, g in enumerate(groups)]
        if self._active is None:
            version = head if head is not None else self._head
            if version is None:
                raise TesterInactiveError(
                    "assign(): no test is active and no head version is known; pass head=<version>"
                )
            return [[version] * n for n in sizes]
        flat, offsets = allocate_flat(sizes, np.asarray(self._active.assign_probs), self.rng)
        names = self._active.versions
        labels = [names[i] for i in flat.tolist()]
        return [labels[a:b] for a, b in zip(offsets[:-1], offsets[1:])]

    @staticmethod
    def _group_size(group: GroupSpec | int | Any, i: int) -> int:
        n = group if isinstance(group, (int, np.integer)) else getattr(group, "n", None)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"assign(): group {i} needs an int size n >= 0, got {group!r}")
        return int(n)

    def _to_success(self, outcome: bool | float | np.bool_ | np.number) -> bool:
        kind = type(outcome)
        if kind is bool or kind is np.bool_:
            return bool(outcome)
        if kind is float or isinstance(outcome, (int, float, np.integer, np.floating)):
            value = float(outcome)
            if not math.isfinite(value):
                raise ValueError(f"record(): reward must be finite, got {outcome!r}")
            return value > self.config.success_threshold
        raise TypeError(f"record(): outcome must be a bool or a number, got {kind.__name__}")

    def record(self, version: str, outcome: bool | float) -> bool:
        """Buffer one rollout outcome (a bool success, or a reward compared with
        ``success_threshold``). Returns False, and counts the rollout as ignored, when no test
        is running or ``version`` is not one of its arms (e.g. a late rollout from before the
        test started)."""
        success = self._to_success(outcome)
        test = self._active
        idx = self._index.get(version) if test is not None else None
        if test is None or idx is None:
            self.ignored_records += 1
            return False
        test.pending_n[idx] += 1
        test.pending_s[idx] += success
        return True

    def record_many(
        self, versions: Iterable[str], outcomes: Iterable[bool | float] | np.ndarray
    ) -> int:
        """``record`` for aligned sequences, vectorised; returns how many were counted.

        ``outcomes`` may be a bool array (successes) or numbers (rewards); the same rules as
        ``record`` apply to each element.
        """
        vs = list(versions)
        if isinstance(outcomes, np.ndarray):
            arr = outcomes
        else:
            items = list(outcomes)
            n_bool = sum(type(o) is bool or type(o) is np.bool_ for o in items)
            if len(items) != len(vs):
                raise ValueError(f"record_many(): {len(vs)} versions but {len(items)} outcomes")
            if 0 < n_bool < len(items):  # bools and rewards mixed: numpy would coerce bools
                return sum(self.record(v, o) for v, o in zip(vs, items))
            arr = np.asarray(items)
        if arr.ndim != 1 or arr.size != len(vs):
            raise ValueError(f"record_many(): {len(vs)} versions but {arr.size} outcomes")
        if arr.size == 0:
            return 0
        if arr.dtype == bool:
            success = arr
        elif arr.dtype.kind in "iuf":
            if not np.isfinite(arr).all():
                raise ValueError("record_many(): rewards must be finite")
            success = arr > self.config.success_threshold
        else:  # mixed bools and numbers, or bad types: element by element
            return sum(self.record(v, o) for v, o in zip(vs, arr.tolist()))
        test = self._active
        if test is None:
            self.ignored_records += len(vs)
            return 0
        idx = np.fromiter((self._index.get(v, -1) for v in vs), dtype=np.int64, count=len(vs))
        known = idx >= 0
        k = len(test.versions)
        n_add = np.bincount(idx[known], minlength=k)
        s_add = np.bincount(idx[known], weights=success[known], minlength=k)
        test.pending_n = [a + int(b) for a, b in zip(test.pending_n, n_add)]
        test.pending_s = [a + int(b) for a, b in zip(test.pending_s, s_add)]
        counted = int(known.sum())
        self.ignored_records += len(vs) - counted
        return counted

    def _weights(self, n: np.ndarray, m: float | None) -> np.ndarray:
        """Discount per arm: M / (M + n) (1 for an arm without episodes), 1 or last-step 0."""
        d = self.config.discount
        if d == "dynamic" and m is not None:
            return m / (m + n)
        if d == "last_step":
            return np.where(n > 0, 0.0, 1.0)
        return np.ones_like(n, dtype=float)

    def end_step(self, step: int) -> Decision | None:
        """Flush the step's buffered outcomes and decide when the test is old enough.

        Discount: each arm's evidence above the prior is multiplied by ``w`` before the step's
        counts are added, ``alpha = a0 + w * (alpha - a0) + s`` (same for beta), with
        ``w = M / (M + n)`` (dynamic; ``n`` = the arm's episodes this step; ``w = 1`` until M
        can be fitted), ``1`` (none) or ``0`` (last_step; an arm without episodes this step
        keeps its evidence). Discounting the evidence, not the prior, keeps the posterior
        from fading below the prior. With ``discount_convention: posterior`` the dynamic
        discount multiplies the whole posterior as published, ``alpha = w * alpha + s``.
        A second call for an already flushed step is ignored with a warning, and a
        step without outcomes neither counts towards ``min_steps`` nor changes anything.
        """
        test = self._active
        if test is None:
            return None
        step = int(step)
        if step <= test.last_step:
            logger.warning(
                "end_step(%d) ignored: step %d already flushed (hook fired twice?)",
                step,
                test.last_step,
            )
            return None
        n = np.asarray(test.pending_n, dtype=float)
        if n.sum() == 0:
            logger.debug("end_step(%d): no outcomes recorded for the running test", step)
            return None
        s = np.asarray(test.pending_s, dtype=float)
        a0, b0 = self.config.prior
        w = self._weights(n, test.m)
        if self.config.discount_convention == "posterior" and self.config.discount == "dynamic":
            alpha = w * np.asarray(test.alpha) + s
            beta = w * np.asarray(test.beta) + (n - s)
        else:
            alpha = a0 + w * (np.asarray(test.alpha) - a0) + s
            beta = b0 + w * (np.asarray(test.beta) - b0) + (n - s)
        p = prob_best(alpha, beta)
        k = len(test.versions)
        test.steps.append(
            StepRecord(
                step=step,
                successes=[int(x) for x in test.pending_s],
                episodes=[int(x) for x in test.pending_n],
                weights=w.tolist(),
                alpha=alpha.tolist(),
                beta=beta.tolist(),
                assign_probs=list(test.assign_probs),
                p_best=p.tolist(),
            )
        )
        test.total_s = [a + b for a, b in zip(test.total_s, test.pending_s)]
        test.total_n = [a + b for a, b in zip(test.total_n, test.pending_n)]
        test.pending_s = [0] * k
        test.pending_n = [0] * k
        test.alpha = alpha.tolist()
        test.beta = beta.tolist()
        test.p_best = p.tolist()
        test.assign_probs = self._assignment_probs(p, k).tolist()
        test.last_step = step
        if len(test.steps) < self.config.min_steps or sum(test.total_n) < self.config.min_episodes:
            return None
        return self._decide(step)

    def _decide(self, step: int) -> Decision:
        test = self._active
        assert test is not None
        cfg = self.config
        alpha = np.asarray(test.alpha)
        beta = np.asarray(test.beta)
        means = alpha / (alpha + beta)
        p = np.asarray(test.p_best)
        if cfg.decision_rule == "posterior_mean":
            best = 1 + int(np.argmax(means[1:]))
            accept = bool(means[best] > means[0])
            reason = (
                f"posterior mean {means[best]:.4f} ({test.versions[best]}) vs incumbent "
                f"{means[0]:.4f}"
            )
        else:
            best = 1 + int(np.argmax(p[1:]))
            accept = bool(p[best] >= cfg.probability_threshold)
            reason = (
                f"P({test.versions[best]} is best) = {p[best]:.4f} vs threshold "
                f"{cfg.probability_threshold}"
            )
        accepted = test.versions[best] if accept else test.versions[0]
        decision = Decision(
            step=step,
            started_step=test.started_step,
            outcome="accept" if accept else "reject",
            incumbent=test.versions[0],
            candidates=test.versions[1:],
            accepted=accepted,
            rejected=[v for v in test.versions if v != accepted],
            mode=cfg.mode,
            discount=cfg.discount,
            decision_rule=cfg.decision_rule,
            m=test.m,
            m_fit=cfg.m_fit,
            discount_convention=cfg.discount_convention,
            posteriors={
                v: ArmPosterior(alpha=float(a), beta=float(b), mean=float(mu))
                for v, a, b, mu in zip(test.versions, alpha, beta, means)
            },
            counts={
                v: ArmCounts(successes=s_, episodes=n_)
                for v, s_, n_ in zip(test.versions, test.total_s, test.total_n)
            },
            p_best={v: float(x) for v, x in zip(test.versions, p)},
            steps=list(test.steps),
            reason=f"{reason} after {len(test.steps)} steps / {sum(test.total_n)} episodes",
        )
        finished = FinishedTest(
            versions=list(test.versions),
            started_step=test.started_step,
            decided_step=step,
            successes=[r.successes for r in test.steps],
            episodes=[r.episodes for r in test.steps],
        )
        curve = self._test_curve(finished)  # one curve per test, ~1-3 ms
        self._history.append(finished)
        self._curves.append(curve)
        self._ll_total += curve
        self._n_scored += 1
        excess = max(0, len(self._history) - cfg.max_history_tests)
        del self._history[:excess]
        del self._curves[:excess]
        self._active = None
        self._index = {}
        self._head = accepted
        self.last_decision = decision
        logger.info(
            "version test decided at step %d: %s (%s)", step, decision.outcome, decision.reason
        )
        return decision

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically, as plain JSON-serialisable data."""
        state = _TesterState(
            format=STATE_FORMAT,
            config=self.config,
            rng=_jsonable(self.rng.bit_generator.state),
            head=self._head,
            history=self._history,
            active=self._active,
            last_decision=self.last_decision,
            ignored_records=self.ignored_records,
            m_loglik=self._ll_total.tolist(),
            m_tests_scored=self._n_scored,
        )
        return state.model_dump(mode="json")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict()`` output (config, RNG, running test, history)."""
        try:
            parsed = _TesterState.model_validate(state)
        except ValidationError as exc:
            raise ValueError(f"invalid version-tester state: {exc}") from exc
        rng = _restore_rng(parsed.rng)
        self.config = parsed.config
        self.rng = rng
        self._head = parsed.head
        self._history = list(parsed.history)
        self._curves = [None] * len(self._history)
        grid_size = m_grid_values(parsed.config.m_grid).size
        if parsed.m_loglik is None:  # older state: the kept history is all we know
            self._ll_total = np.zeros(grid_size)
            for test in self._history:
                self._ll_total += self._test_curve(test)
            self._n_scored = len(self._history)
        else:
            if len(parsed.m_loglik) != grid_size:
                raise ValueError(
                    f"invalid version-tester state: m_loglik has {len(parsed.m_loglik)} values, "
                    f"the M grid {parsed.config.m_grid} has {grid_size}"
                )
            self._ll_total = np.asarray(parsed.m_loglik, dtype=float)
            self._n_scored = parsed.m_tests_scored
        self._active = parsed.active
        self._index = {v: i for i, v in enumerate(parsed.active.versions)} if parsed.active else {}
        self.last_decision = parsed.last_decision
        self.ignored_records = parsed.ignored_records

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``state_dict()`` as JSON atomically (temp file + fsync + rename)."""
        target = Path(path)
        atomic_write_json(target, self.state_dict(), indent=1, sort_keys=True)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VersionTester:
        """A tester restored from ``save()``; errors name the file."""
        source = Path(path)
        try:
            state = json.loads(safe_files.read_text(source))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{source}: cannot read version-tester state: {exc}") from exc
        tester = cls()
        try:
            tester.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc
        return tester
