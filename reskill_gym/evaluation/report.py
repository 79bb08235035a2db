"""Summaries of an evaluation log: bootstrap CIs, paired differences, skill statistics, plots.

Exports ``RateCI``, ``ConditionStats``, ``PairedDiff``, ``TaskTypeStats``, ``SkillStats``,
``EvalSummary``, ``bootstrap_mean_ci``, ``cluster_bootstrap_ci``, ``episode_signature``,
``summarize``, ``render_table``, ``write_eval_report`` and ``ALL_SPLITS``.

Statistics (all from ``episodes.jsonl``, so a report can be rebuilt at any time):

- success rate per condition and split with a 95 % percentile-bootstrap CI;
- the paired difference of each library condition against the baseline (``no-skills``, else
  the first condition) over the units (split, task, seed) both ran without error, and the
  discordant counts (units only one side won);
- the unit of resampling is the *task* (``cluster_bootstrap_ci``): episodes of one task
  (several seeds) are not independent draws, so a CI over episodes would be too narrow;
- exact duplicates count once when the agent is deterministic (temperature 0): ALFWorld's
  reset ignores the seed and greedy decoding repeats itself, so ``seeds: [0, 1]`` plays every
  episode twice, identically, and counting both would halve the variance for free. Episodes
  of one condition, split and task with the same observations, actions and outcome
  (``episode_signature``) are collapsed into one (pairs: both sides identical). At
  temperature > 0 each seed is an independent draw of the policy, so equal episodes are kept
  (collapsing them would under-weight the policy's most likely behaviour);
- error episodes are counted and shown, and left out of rates (an API outage is not
  evidence about a skill library); a unit with an error on either side leaves the pairs;
- skills: per library condition, in how many episodes each skill fired, on how many turns,
  and the success rate of the episodes it fired in ("preceded success") vs the rest.

Resampling a discrete sample with replacement is a multinomial draw over its distinct
values, so the bootstrap is exact and vectorised (``10 000`` resamples cost microseconds).

>>> r = bootstrap_mean_ci([1, 1, 0, 1, 0, 1, 1, 1], n_boot=2000, seed=0)
>>> round(r.mean, 3), r.n, r.lo <= r.mean <= r.hi
(0.75, 8, True)
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from reskill_gym.atomic import atomic_path, atomic_write_text
from reskill_gym.evaluation.config import NO_SKILLS
from reskill_gym.evaluation.episode_log import EvalEpisode
from reskill_gym.redaction import redact

__all__ = [
    "RateCI",
    "ConditionStats",
    "PairedDiff",
    "TaskTypeStats",
    "SkillStats",
    "EvalSummary",
    "bootstrap_mean_ci",
    "cluster_bootstrap_ci",
    "episode_signature",
    "summarize",
    "render_table",
    "write_eval_report",
    "ALL_SPLITS",
]

log = logging.getLogger(__name__)

ALL_SPLITS = "all"


class RateCI(BaseModel):
    """A mean with its bootstrap confidence interval (``n`` values in ``clusters`` clusters)."""

    mean: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    n: int = 0
    clusters: int = 0


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> RateCI:
    """Percentile bootstrap CI of the mean (exact multinomial resampling of the values)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return RateCI(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0)
    rng = np.random.default_rng(seed)
    uniq, counts = np.unique(x, return_counts=True)
    draws = rng.multinomial(x.size, counts / x.size, size=n_boot)
    means = draws @ uniq / x.size
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return RateCI(
        mean=float(x.mean()), lo=float(lo), hi=float(hi), n=int(x.size), clusters=int(x.size)
    )


def cluster_bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[Any],
    *,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> RateCI:
    """Percentile bootstrap CI of the mean that resamples whole clusters (tasks).

    Each resample draws as many clusters as there are, with replacement, and takes the mean
    over all values of the drawn clusters (a cluster drawn twice counts twice). With one value
    per cluster this is the ordinary bootstrap. Vectorised: per-cluster sums and counts times
    a multinomial matrix of draw counts.

    >>> r = cluster_bootstrap_ci([1, 1, 1, 0, 0, 0], ["a", "a", "a", "b", "b", "b"], seed=0)
    >>> r.mean, r.n, r.clusters, (r.lo, r.hi)
    (0.5, 6, 2, (0.0, 1.0))
    """
    x = np.asarray(values, dtype=np.float64)
    if len(clusters) != x.size:
        raise ValueError(f"{x.size} values but {len(clusters)} cluster labels")
    if x.size == 0:
        return RateCI(mean=float("nan"), lo=float("nan"), hi=float("nan"), n=0, clusters=0)
    _, inv = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    sums = np.bincount(inv, weights=x)
    counts = np.bincount(inv).astype(np.float64)
    k = sums.size
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)
    means = (draws @ sums) / (draws @ counts)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return RateCI(mean=float(x.mean()), lo=float(lo), hi=float(hi), n=int(x.size), clusters=int(k))


def episode_signature(rec: EvalEpisode) -> tuple[Any, ...]:
    """What makes two episodes of one condition, split and task exact duplicates: every
    observation and command, the outcome and the error."""
    return (
        tuple((t.observation, t.action, t.valid, t.reward) for t in rec.turns),
        rec.final_observation,
        rec.won,
        rec.error,
    )


def _distinct(recs: Iterable[EvalEpisode], collapse: bool) -> list[EvalEpisode]:
    """``recs`` with exact duplicates (same condition, split, task, signature) counted once."""
    out = []
    seen: set[tuple[Any, ...]] = set()
    for r in recs:
        if collapse:
            key = (r.condition, r.split, r.task_id, episode_signature(r))
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _task(r: EvalEpisode) -> str:
    return f"{r.split}|{r.task_id}"


class ConditionStats(BaseModel):
    """One condition on one split (or ``all``)."""

    condition: str
    split: str
    episodes: int
    errors: int
    distinct: int = Field(0, description="Episodes left after exact duplicates are collapsed.")
    success: RateCI
    avg_turns: float
    avg_reward: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    parse_counts: dict[str, int] = Field(default_factory=dict)
    valid_action_ratio: float = Field(
        float("nan"), description="Share of turns whose reply carried a valid action."
    )


class PairedDiff(BaseModel):
    """Success of ``condition`` minus ``baseline`` over matched units."""

    condition: str
    baseline: str
    split: str
    diff: RateCI
    wins: int = Field(description="Units only the condition won.")
    losses: int = Field(description="Units only the baseline won.")


class TaskTypeStats(BaseModel):
    condition: str
    task_type: str
    success: RateCI


class SkillStats(BaseModel):
    condition: str
    skill: str
    episodes_fired: int
    turns_fired: int
    fire_rate: float = Field(description="Share of the condition's episodes it fired in.")
    success_when_fired: float
    success_when_not_fired: float | None


class EvalSummary(BaseModel):
    """Everything the report shows."""

    conditions: list[str]
    baseline: str | None
    splits: list[str]
    stats: list[ConditionStats]
    paired: list[PairedDiff]
    task_types: list[TaskTypeStats]
    skills: list[SkillStats]
    meta: dict[str, Any] = Field(default_factory=dict)

    def stat(self, condition: str, split: str = ALL_SPLITS) -> ConditionStats:
        for s in self.stats:
            if s.condition == condition and s.split == split:
                return s
        raise KeyError(f"no stats for condition {condition!r} split {split!r}")

    def diff(self, condition: str, split: str = ALL_SPLITS) -> PairedDiff:
        for d in self.paired:
            if d.condition == condition and d.split == split:
                return d
        raise KeyError(f"no paired difference for {condition!r} split {split!r}")


def _condition_stats(
    name: str, split: str, recs: list[EvalEpisode], n_boot: int, seed: int, collapse: bool
) -> ConditionStats:
    ok = _distinct([r for r in recs if r.error is None], collapse)
    parse: dict[str, int] = defaultdict(int)
    for r in recs:
        for k, v in r.parse_counts.items():
            parse[k] += v
    turns = [t for r in ok for t in r.turns]
    return ConditionStats(
        condition=name,
        split=split,
        episodes=len(recs),
        errors=sum(r.error is not None for r in recs),
        distinct=len(ok),
        success=cluster_bootstrap_ci(
            [float(r.success) for r in ok], [_task(r) for r in ok], n_boot=n_boot, seed=seed
        ),
        avg_turns=float(np.mean([len(r.turns) for r in ok])) if ok else float("nan"),
        avg_reward=float(np.mean([r.reward for r in ok])) if ok else float("nan"),
        input_tokens=sum(r.input_tokens for r in recs),
        output_tokens=sum(r.output_tokens for r in recs),
        cost_usd=round(sum(r.cost_usd for r in recs), 6),
        parse_counts=dict(sorted(parse.items())),
        valid_action_ratio=sum(t.valid for t in turns) / len(turns) if turns else float("nan"),
    )


def summarize(
    records: Iterable[EvalEpisode],
    *,
    conditions: Sequence[str] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    collapse_duplicates: bool | None = None,
) -> EvalSummary:
    """Statistics of the records (``conditions`` fixes the order; default: as first seen).

    ``collapse_duplicates``: count exact duplicate episodes once (see the module docstring);
    ``None``: when ``meta['temperature']`` is 0 or absent (a deterministic agent).
    """
    recs = list(records)
    meta = dict(meta or {})
    if collapse_duplicates is None:
        collapse_duplicates = float(meta.get("temperature") or 0.0) == 0.0
    meta["collapse_duplicates"] = collapse_duplicates
    order = list(conditions) if conditions else list(dict.fromkeys(r.condition for r in recs))
    splits = list(dict.fromkeys(r.split for r in recs))
    by_cond: dict[str, list[EvalEpisode]] = {c: [] for c in order}
    for r in recs:
        by_cond.setdefault(r.condition, []).append(r)
    order = list(by_cond)
    stats = []
    for c in order:
        for split in [*splits, ALL_SPLITS]:
            sel = [r for r in by_cond[c] if split == ALL_SPLITS or r.split == split]
            if sel:
                stats.append(_condition_stats(c, split, sel, n_boot, seed, collapse_duplicates))

    baseline = NO_SKILLS if NO_SKILLS in by_cond else (order[0] if order else None)
    paired = []
    if baseline is not None:
        base = {(r.split, r.task_id, r.seed): r for r in by_cond[baseline]}
        for c in order:
            if c == baseline:
                continue
            for split in [*splits, ALL_SPLITS]:
                diffs, tasks, wins, losses = [], [], 0, 0
                seen_pairs: set[tuple[Any, ...]] = set()
                for r in by_cond[c]:
                    if split != ALL_SPLITS and r.split != split:
                        continue
                    b = base.get((r.split, r.task_id, r.seed))
                    if b is None or b.error is not None or r.error is not None:
                        continue
                    if collapse_duplicates:
                        key = (r.split, r.task_id, episode_signature(r), episode_signature(b))
                        if key in seen_pairs:
                            continue
                        seen_pairs.add(key)
                    d = float(r.success) - float(b.success)
                    diffs.append(d)
                    tasks.append(_task(r))
                    wins += d > 0
                    losses += d < 0
                if diffs:
                    paired.append(
                        PairedDiff(
                            condition=c,
                            baseline=baseline,
                            split=split,
                            diff=cluster_bootstrap_ci(diffs, tasks, n_boot=n_boot, seed=seed),
                            wins=wins,
                            losses=losses,
                        )
                    )

    task_types = []
    for c in order:
        groups: dict[str, list[EvalEpisode]] = defaultdict(list)
        for r in _distinct([r for r in by_cond[c] if r.error is None], collapse_duplicates):
            groups[r.task_type or "?"].append(r)
        for tt in sorted(groups):
            g = groups[tt]
            task_types.append(
                TaskTypeStats(
                    condition=c,
                    task_type=tt,
                    success=cluster_bootstrap_ci(
                        [float(r.success) for r in g],
                        [_task(r) for r in g],
                        n_boot=n_boot,
                        seed=seed,
                    ),
                )
            )

    skills = []
    for c in order:
        ok = _distinct([r for r in by_cond[c] if r.error is None], collapse_duplicates)
        fired_eps: dict[str, list[bool]] = defaultdict(list)
        turns: dict[str, int] = defaultdict(int)
        for r in ok:
            for s in r.skills_fired:
                fired_eps[s].append(r.success)
            for t in r.turns:
                for s in t.skill_ids:
                    turns[s] += 1
        for s in sorted(fired_eps, key=lambda k: (-len(fired_eps[k]), k)):
            rest = [r.success for r in ok if s not in r.skills_fired]
            skills.append(
                SkillStats(
                    condition=c,
                    skill=s,
                    episodes_fired=len(fired_eps[s]),
                    turns_fired=turns[s],
                    fire_rate=len(fired_eps[s]) / len(ok),
                    success_when_fired=float(np.mean(fired_eps[s])),
                    success_when_not_fired=float(np.mean(rest)) if rest else None,
                )
            )
    return EvalSummary(
        conditions=order,
        baseline=baseline,
        splits=splits,
        stats=stats,
        paired=paired,
        task_types=task_types,
        skills=skills,
        meta=meta,
    )


# ----- rendering --------------------------------------------------------------------------
def _pct(r: RateCI) -> str:
    if r.n == 0:
        return "n/a"
    return f"{100 * r.mean:.1f} [{100 * r.lo:.1f}, {100 * r.hi:.1f}]"


def _signed(r: RateCI) -> str:
    return f"{100 * r.mean:+.1f} [{100 * r.lo:+.1f}, {100 * r.hi:+.1f}]"


def render_table(summary: EvalSummary) -> Any:
    """A ``rich`` table: success with CIs, paired difference, turns, errors, tokens, cost."""
    from rich.table import Table

    table = Table(title="reskill eval: success % [95% CI]", show_lines=False)
    for col in (
        "condition",
        "split",
        "n",
        "err",
        "success %",
        "vs baseline (pp)",
        "turns",
        "tokens in/out",
        "cost $",
    ):
        table.add_column(col, justify="left" if col in ("condition", "split") else "right")
    for s in summary.stats:
        try:
            d = summary.diff(s.condition, s.split)
            diff = f"{_signed(d.diff)} (+{d.wins}/-{d.losses})"
        except KeyError:
            diff = "baseline" if s.condition == summary.baseline else "-"
        table.add_row(
            s.condition,
            s.split,
            str(s.episodes),
            str(s.errors),
            _pct(s.success),
            diff,
            f"{s.avg_turns:.1f}",
            f"{s.input_tokens}/{s.output_tokens}",
            f"{s.cost_usd:.4f}",
        )
    return table


def _plot_success_by_split(summary: EvalSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    splits = [*summary.splits, ALL_SPLITS] if len(summary.splits) > 1 else summary.splits
    conds = summary.conditions
    width = 0.8 / max(1, len(conds))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(splits) * max(1, len(conds)) / 2 + 3), 4))
    x = np.arange(len(splits))
    for i, c in enumerate(conds):
        means, lo, hi = [], [], []
        for sp in splits:
            try:
                r = summary.stat(c, sp).success
            except KeyError:
                r = RateCI(mean=float("nan"), lo=float("nan"), hi=float("nan"))
            means.append(100 * r.mean)
            lo.append(max(0.0, 100 * (r.mean - r.lo)))
            hi.append(max(0.0, 100 * (r.hi - r.mean)))
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, means, width, yerr=[lo, hi], capsize=4, label=c)
        for p, m in zip(pos, means):
            if np.isfinite(m):
                ax.text(p, m + 1, f"{m:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, splits)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success % (95% bootstrap CI)")
    ax.set_title(
        f"Success by split - {summary.meta.get('env', '')} / {summary.meta.get('agent', '')}"
    )
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_task_types(summary: EvalSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    types = sorted({t.task_type for t in summary.task_types})
    conds = summary.conditions
    width = 0.8 / max(1, len(conds))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(types) + 2), 4.5))
    x = np.arange(len(types))
    table = {(t.condition, t.task_type): t.success for t in summary.task_types}
    for i, c in enumerate(conds):
        rs = [
            table.get((c, tt), RateCI(mean=float("nan"), lo=float("nan"), hi=float("nan")))
            for tt in types
        ]
        means = [100 * r.mean for r in rs]
        err = [
            [max(0.0, 100 * (r.mean - r.lo)) for r in rs],
            [max(0.0, 100 * (r.hi - r.mean)) for r in rs],
        ]
        ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=err, capsize=3, label=c)
    ax.set_xticks(x, [t.replace("_", "\n", 2) for t in types], fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success %")
    ax.set_title("Success by task type (all splits)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_skills(summary: EvalSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    conds = [c for c in summary.conditions if any(s.condition == c for s in summary.skills)]
    if not conds:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no skill fired in any episode", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    rows = max(len([s for s in summary.skills if s.condition == c]) for c in conds)
    fig, axes = plt.subplots(
        1, len(conds), figsize=(6 * len(conds), 0.45 * rows + 1.8), squeeze=False
    )
    cmap = plt.get_cmap("RdYlGn")
    for ax, c in zip(axes[0], conds):
        sk = [s for s in summary.skills if s.condition == c][::-1]
        y = np.arange(len(sk))
        ax.barh(y, [100 * s.fire_rate for s in sk], color=[cmap(s.success_when_fired) for s in sk])
        for yi, s in zip(y, sk):
            ax.text(
                100 * s.fire_rate + 1,
                yi,
                f"{100 * s.success_when_fired:.0f}% won",
                va="center",
                fontsize=7,
            )
        ax.set_yticks(y, [s.skill for s in sk], fontsize=8)
        ax.set_xlim(0, 125)
        ax.set_xlabel("% of episodes the skill fired in (colour: success when fired)")
        ax.set_title(c, fontsize=9)
    fig.suptitle("Skill usage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_paired(summary: EvalSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    items = summary.paired
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * max(1, len(items)) + 1.5))
    if not items:
        ax.text(0.5, 0.5, "no paired comparison (one condition only)", ha="center", va="center")
        ax.axis("off")
    else:
        y = np.arange(len(items))[::-1]
        for yi, d in zip(y, items):
            r = d.diff
            ax.errorbar(
                100 * r.mean,
                yi,
                xerr=[[max(0.0, 100 * (r.mean - r.lo))], [max(0.0, 100 * (r.hi - r.mean))]],
                fmt="o",
                capsize=4,
                color="C0" if d.split != ALL_SPLITS else "C3",
            )
        ax.axvline(0, color="grey", lw=1, ls="--")
        ax.set_yticks(
            y,
            [f"{d.condition} - {d.baseline} ({d.split}, n={d.diff.n})" for d in items],
            fontsize=7,
        )
        ax.set_xlabel("success difference, percentage points (95% CI over paired units)")
        ax.set_title("Paired difference vs baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTS = {
    "success_by_split.png": _plot_success_by_split,
    "paired_difference.png": _plot_paired,
    "success_by_task_type.png": _plot_task_types,
    "skill_usage.png": _plot_skills,
}


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(summary: EvalSummary, plots: Sequence[str]) -> str:
    m = summary.meta
    out = [f"# Frozen skill library evaluation: {m.get('env', '?')}", ""]
    info = [
        (
            "agent",
            f"`{m.get('agent', '?')}` (mode {m.get('mode', '?')}, temperature {m.get('temperature', '?')})",
        ),
        ("splits", ", ".join(summary.splits)),
        ("tasks per split", m.get("tasks") or "all"),
        ("seeds", m.get("seeds")),
        ("max turns", m.get("max_turns") or "env default"),
        ("difficulty", m.get("difficulty") or "env default"),
        ("conditions", ", ".join(f"`{c}`" for c in summary.conditions)),
        ("baseline", f"`{summary.baseline}`"),
    ]
    for cond in m.get("conditions", []):
        if cond.get("source"):
            info.append((f"`{cond['name']}`", f"{cond['source']} at version {cond['version']}"))
    out += [f"- **{k}**: {v}" for k, v in info]
    out += [
        "",
        "## Success",
        "",
        "Success % with 95 % bootstrap CI that resamples tasks (seeds of one task are not "
        "independent); error episodes are counted but left out of the rates. "
        + (
            "The agent is deterministic (temperature 0): exact duplicate episodes (same "
            "condition, task, observations, actions and outcome; ALFWorld ignores the seed) "
            "count once (*distinct*). "
            if m.get("collapse_duplicates")
            else "Temperature > 0: every seed is an independent draw, duplicates are kept. "
        )
        + "*vs baseline*: paired difference in percentage points over units (task, seed) "
        "both conditions finished, with units won only by the condition / only by the "
        "baseline.",
        "",
    ]
    rows = []
    for s in summary.stats:
        try:
            d = summary.diff(s.condition, s.split)
            diff = (
                f"{_signed(d.diff)} (n={d.diff.n} in {d.diff.clusters} tasks, "
                f"+{d.wins}/-{d.losses})"
            )
        except KeyError:
            diff = "baseline" if s.condition == summary.baseline else "-"
        rows.append(
            [
                f"`{s.condition}`",
                s.split,
                s.episodes,
                s.errors,
                s.distinct,
                s.success.clusters,
                _pct(s.success),
                diff,
                f"{s.avg_turns:.1f}",
                f"{s.avg_reward:.2f}",
            ]
        )
    out.append(
        _md_table(
            [
                "condition",
                "split",
                "episodes",
                "errors",
                "distinct",
                "tasks",
                "success %",
                "vs baseline (pp)",
                "avg turns",
                "avg reward",
            ],
            rows,
        )
    )
    out += ["", "## Cost and parsing", ""]
    out.append(
        _md_table(
            [
                "condition",
                "input tokens",
                "output tokens",
                "cost USD",
                "valid actions",
                "parse outcomes (turns)",
            ],
            [
                [
                    f"`{s.condition}`",
                    s.input_tokens,
                    s.output_tokens,
                    f"{s.cost_usd:.4f}",
                    "-" if np.isnan(s.valid_action_ratio) else f"{100 * s.valid_action_ratio:.0f}%",
                    ", ".join(f"{k} {v}" for k, v in s.parse_counts.items()) or "-",
                ]
                for s in summary.stats
                if s.split == ALL_SPLITS
            ],
        )
    )
    out += ["", "## By task type", ""]
    out.append(
        _md_table(
            ["condition", "task type", "n", "success %"],
            [
                [f"`{t.condition}`", t.task_type, t.success.n, _pct(t.success)]
                for t in summary.task_types
            ],
        )
    )
    out += [
        "",
        "## Skills",
        "",
        "Episodes a skill fired in, turns it was shown on, and the success rate of the "
        "episodes it fired in vs the others of the same condition.",
        "",
    ]
    if summary.skills:
        out.append(
            _md_table(
                [
                    "condition",
                    "skill",
                    "episodes",
                    "turns",
                    "fire rate",
                    "success when fired",
                    "success otherwise",
                ],
                [
                    [
                        f"`{s.condition}`",
                        s.skill,
                        s.episodes_fired,
                        s.turns_fired,
                        f"{100 * s.fire_rate:.0f}%",
                        f"{100 * s.success_when_fired:.0f}%",
                        "-"
                        if s.success_when_not_fired is None
                        else f"{100 * s.success_when_not_fired:.0f}%",
                    ]
                    for s in summary.skills
                ],
            )
        )
    else:
        out.append("No skill fired.")
    out += ["", "## Plots", ""]
    out += [f"![{p}]({p})" for p in plots]
    return "\n".join(out) + "\n"


def write_eval_report(summary: EvalSummary, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.md``, ``summary.json`` and the PNG plots (matplotlib, Agg backend)."""
    return write_report_files(summary, out_dir, PLOTS, _markdown)


def write_report_files(
    summary: Any,
    out_dir: str | os.PathLike[str],
    plots: Mapping[str, Callable[[Any, Path], None]],
    markdown: Callable[[Any, list[str]], str],
) -> dict[str, Path]:
    """The files of an evaluation report (success or expert metric), each written atomically:
    the PNG ``plots`` (name -> ``plot(summary, path)``), ``summary.json`` and ``report.md``.

    Error texts and summaries may quote an endpoint's reply, headers included, so both text
    files go through credential redaction.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, fn in plots.items():
        with atomic_path(out / name, suffix=".png") as tmp:
            fn(summary, tmp)
        written[name] = out / name
    atomic_write_text(out / "summary.json", redact(summary.model_dump_json(indent=2)))
    written["summary.json"] = out / "summary.json"
    atomic_write_text(out / "report.md", redact(markdown(summary, list(plots))))
    written["report.md"] = out / "report.md"
    return written
