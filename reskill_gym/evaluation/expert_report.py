"""Statistics and report of an expert-metric run: conditions side by side, paired differences
with task-level bootstrap CIs, per task type, per skill.

Exports ``ExpertFigure``, ``ExpertDiff``, ``SkillEffect``, ``ExpertSummary``, ``METRICS``,
``PAIRS``, ``summarize_expert``, ``render_expert_table`` and ``write_expert_report``.

Everything is computed from ``states.jsonl`` + ``scores.jsonl`` (the figures of a score line
are recomputed from its scores here, so a report never trusts a stored number):

- per condition and group (all, split, difficulty, difficulty/split, planner path vs off
  path): mean ``p_opt``, ``top1`` and ``expert_rank`` with a 95 % CI;
- paired differences ``library - none``, ``library - placebo``, ``library - shuffled`` (and
  ``placebo - none``, ``shuffled - none``) over the states both conditions scored;
- per task type, and per skill: the ``library - none`` difference on the states where the
  skill fired vs the states where it did not.

Every CI is a cluster bootstrap that resamples *tasks* (states of one task share the room,
the goal and most of the prefix, so they are not independent): each resample draws tasks
with replacement and takes the state-weighted mean over the drawn tasks' states
(:func:`reskill_gym.evaluation.report.cluster_bootstrap_ci`).

>>> METRICS
('p_opt', 'top1', 'expert_rank')
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from reskill_gym.evaluation.config import CONDITIONS
from reskill_gym.evaluation.expert import ExpertScore, score_figures
from reskill_gym.evaluation.report import RateCI, cluster_bootstrap_ci
from reskill_gym.evaluation.states import ExpertState

__all__ = [
    "ExpertFigure",
    "ExpertDiff",
    "SkillEffect",
    "ExpertSummary",
    "METRICS",
    "PAIRS",
    "summarize_expert",
    "render_expert_table",
    "write_expert_report",
]

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("p_opt", "top1", "expert_rank")
#: (condition, baseline) pairs reported, the headline ones first.
PAIRS: tuple[tuple[str, str], ...] = (
    ("library", "none"),
    ("library", "placebo"),
    ("library", "shuffled"),
    ("placebo", "none"),
    ("shuffled", "none"),
)


class ExpertFigure(BaseModel):
    """One condition on one group of states."""

    condition: str
    group: str
    states: int
    tasks: int
    p_opt: RateCI
    top1: RateCI
    expert_rank: RateCI
    bundle_chars: float = Field(description="Mean characters of the skill block.")
    skills_shown: float = Field(description="Share of states with a non-empty skill block.")


class ExpertDiff(BaseModel):
    """``condition - baseline`` of one metric over the states both scored."""

    metric: str
    condition: str
    baseline: str
    group: str
    diff: RateCI


class SkillEffect(BaseModel):
    """``library - none`` (and ``library - placebo``) of ``p_opt`` where a skill fired vs not."""

    skill: str
    states_fired: int
    tasks_fired: int
    fired: RateCI = Field(description="library - none on the states where the skill fired.")
    not_fired: RateCI = Field(description="library - none on the other states.")
    vs_placebo_fired: RateCI = Field(description="library - placebo where the skill fired.")


class ExpertSummary(BaseModel):
    """Everything the expert report shows."""

    conditions: list[str]
    groups: list[str]
    figures: list[ExpertFigure]
    diffs: list[ExpertDiff]
    task_types: list[ExpertDiff] = Field(description="Diffs with group = task type.")
    task_type_figures: list[ExpertFigure] = Field(default_factory=list)
    skills: list[SkillEffect]
    labels: dict[str, Any] = Field(default_factory=dict, description="About the state labels.")
    meta: dict[str, Any] = Field(default_factory=dict)

    def figure(self, condition: str, group: str = "all") -> ExpertFigure:
        for f in self.figures:
            if f.condition == condition and f.group == group:
                return f
        raise KeyError(f"no figure for {condition!r} on {group!r}")

    def diff(
        self, condition: str, baseline: str, group: str = "all", metric: str = "p_opt"
    ) -> ExpertDiff:
        for d in self.diffs:
            if (d.condition, d.baseline, d.group, d.metric) == (condition, baseline, group, metric):
                return d
        raise KeyError(f"no {metric} difference {condition} - {baseline} on {group!r}")


def _groups_of(state: ExpertState, multi_difficulty: bool) -> list[str]:
    g = ["all", state.split]
    if multi_difficulty and state.difficulty:
        g += [state.difficulty, f"{state.difficulty}/{state.split}"]
    g.append("off-path" if state.off_path else "on-path")
    return g


def _group_order(groups: Iterable[str]) -> list[str]:
    def key(g: str) -> tuple[int, str]:
        if g == "all":
            return (0, g)
        if g in ("train", "seen", "unseen"):
            return (1, str(["train", "seen", "unseen"].index(g)))
        if g.endswith("-path"):
            return (4, "0" if g == "on-path" else "1")
        return (2 if "/" not in g else 3, g)

    return sorted(set(groups), key=key)


def summarize_expert(
    states: Iterable[ExpertState],
    scores: Iterable[ExpertScore],
    *,
    temperature: float | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> ExpertSummary:
    """Statistics of an expert run (``temperature``: recompute ``p_opt`` at another
    temperature than the one recorded; ``None`` keeps each record's own).

    ``pairs``: the ``(condition, baseline)`` differences to compute (default ``PAIRS``).
    Condition names are free, so two libraries scored on the same ``states.jsonl`` compare
    paired, state by state: rename one run's records (``r.model_copy(update={"condition":
    "revised"})``) and ask for ``("revised", "library")``.
    """
    by_key = {s.key: s for s in states}
    multi = len({s.difficulty for s in by_key.values()}) > 1
    # (state, condition) -> figures, recomputed from the scores
    vals: dict[tuple[str, str], dict[str, float]] = {}
    rec: dict[tuple[str, str], ExpertScore] = {}
    for r in scores:
        st = by_key.get(r.state_key)
        if st is None:
            continue
        t = r.temperature if temperature is None else temperature
        f = score_figures(
            r.scores, r.candidates, optimal=st.optimal, expert=st.expert_action, temperature=t
        )
        vals[(r.state_key, r.condition)] = {k: float(v) for k, v in f.items()}
        rec[(r.state_key, r.condition)] = r
    present = {c for _, c in vals}
    conditions = [c for c in CONDITIONS if c in present] + sorted(present - set(CONDITIONS))
    groups_of = {k: _groups_of(s, multi) for k, s in by_key.items()}
    groups = _group_order(g for gs in groups_of.values() for g in gs)

    def ci(values: list[float], clusters: list[str]) -> RateCI:
        return cluster_bootstrap_ci(values, clusters, n_boot=n_boot, seed=seed)

    figures = []
    for group in groups:
        for c in conditions:
            keys = [k for k in by_key if (k, c) in vals and group in groups_of[k]]
            if not keys:
                continue
            cl = [by_key[k].cluster for k in keys]
            figures.append(
                ExpertFigure(
                    condition=c,
                    group=group,
                    states=len(keys),
                    tasks=len(set(cl)),
                    bundle_chars=float(np.mean([rec[(k, c)].bundle_chars for k in keys])),
                    skills_shown=float(np.mean([rec[(k, c)].bundle_chars > 0 for k in keys])),
                    **{m: ci([vals[(k, c)][m] for k in keys], cl) for m in METRICS},
                )
            )

    def paired(c: str, b: str, keys: Iterable[str], metric: str) -> tuple[list[float], list[str]]:
        d, cl = [], []
        for k in keys:
            if (k, c) in vals and (k, b) in vals:
                d.append(vals[(k, c)][metric] - vals[(k, b)][metric])
                cl.append(by_key[k].cluster)
        return d, cl

    wanted = PAIRS if pairs is None else tuple((str(c), str(b)) for c, b in pairs)
    use = [(c, b) for c, b in wanted if c in conditions and b in conditions]
    diffs = []
    for group in groups:
        keys = [k for k in by_key if group in groups_of[k]]
        for c, b in use:
            for m in METRICS:
                d, cl = paired(c, b, keys, m)
                if d:
                    diffs.append(
                        ExpertDiff(metric=m, condition=c, baseline=b, group=group, diff=ci(d, cl))
                    )
    task_types = []
    tt_figures = []
    for tt in sorted({s.task_type for s in by_key.values()}):
        keys = [k for k, s in by_key.items() if s.task_type == tt]
        for c in conditions:
            ks = [k for k in keys if (k, c) in vals]
            if ks:
                cl = [by_key[k].cluster for k in ks]
                tt_figures.append(
                    ExpertFigure(
                        condition=c,
                        group=tt,
                        states=len(ks),
                        tasks=len(set(cl)),
                        bundle_chars=float(np.mean([rec[(k, c)].bundle_chars for k in ks])),
                        skills_shown=float(np.mean([rec[(k, c)].bundle_chars > 0 for k in ks])),
                        **{m: ci([vals[(k, c)][m] for k in ks], cl) for m in METRICS},
                    )
                )
        for c, b in use:
            d, cl = paired(c, b, keys, "p_opt")
            if d:
                task_types.append(
                    ExpertDiff(metric="p_opt", condition=c, baseline=b, group=tt, diff=ci(d, cl))
                )
    skills = []
    if "library" in conditions and "none" in conditions:
        fired_at: dict[str, set[str]] = defaultdict(set)
        for (k, c), r in rec.items():
            if c == "library":
                for sid in r.skill_ids:
                    fired_at[sid.rpartition("@")[0] or sid].add(k)
        for name in sorted(fired_at, key=lambda n: (-len(fired_at[n]), n)):
            on = fired_at[name]
            d_on, cl_on = paired("library", "none", sorted(on), "p_opt")
            rest = [k for k in by_key if k not in on]
            d_off, cl_off = paired("library", "none", rest, "p_opt")
            if "placebo" in conditions:
                p_on, pcl_on = paired("library", "placebo", sorted(on), "p_opt")
            else:
                p_on, pcl_on = [], []
            skills.append(
                SkillEffect(
                    skill=name,
                    states_fired=len(d_on),
                    tasks_fired=len(set(cl_on)),
                    fired=ci(d_on, cl_on),
                    not_fired=ci(d_off, cl_off),
                    vs_placebo_fired=ci(p_on, pcl_on),
                )
            )
    sts = list(by_key.values())
    labels = {
        "states": len(sts),
        "tasks": len({s.cluster for s in sts}),
        "on_path": sum(not s.off_path for s in sts),
        "off_path": sum(bool(s.off_path) for s in sts),
        "mean_admissible": float(np.mean([len(s.admissible) for s in sts])) if sts else 0.0,
        "mean_optimal": float(np.mean([len(s.optimal) for s in sts])) if sts else 0.0,
        "uniform_p_opt": float(np.mean([len(s.optimal) / len(s.admissible) for s in sts]))
        if sts
        else 0.0,
        "inconsistent_plans": sum(s.inconsistent for s in sts),
        "label_s_per_state": float(np.mean([s.label_s for s in sts])) if sts else 0.0,
        "expert_not_optimal": sum(s.expert_action not in s.optimal for s in sts),
    }
    return ExpertSummary(
        conditions=conditions,
        groups=groups,
        figures=figures,
        diffs=diffs,
        task_types=task_types,
        task_type_figures=tt_figures,
        skills=skills,
        labels=labels,
        meta=dict(meta or {}),
    )


# ----- rendering ---------------------------------------------------------------------------
def _num(r: RateCI, digits: int = 3) -> str:
    if r.n == 0:
        return "n/a"
    return f"{r.mean:.{digits}f} [{r.lo:.{digits}f}, {r.hi:.{digits}f}]"


def _signed(r: RateCI, digits: int = 3) -> str:
    if r.n == 0:
        return "n/a"
    return f"{r.mean:+.{digits}f} [{r.lo:+.{digits}f}, {r.hi:+.{digits}f}]"


def render_expert_table(summary: ExpertSummary) -> Any:
    """A ``rich`` table: ``p_opt`` per condition and the headline paired differences."""
    from rich.table import Table

    table = Table(title="reskill eval --metric expert: p_opt [95% CI, tasks resampled]")
    pairs = [(c, b) for c, b in PAIRS[:3] if c in summary.conditions and b in summary.conditions]
    for col in ["group", "states", *summary.conditions, *(f"{c}-{b}" for c, b in pairs)]:
        table.add_column(col, justify="left" if col == "group" else "right")
    for g in summary.groups:
        try:
            n = summary.figure("library", g).states
        except KeyError:
            continue
        cells = []
        for c in summary.conditions:
            try:
                cells.append(_num(summary.figure(c, g).p_opt))
            except KeyError:
                cells.append("-")
        for c, b in pairs:
            try:
                cells.append(_signed(summary.diff(c, b, g).diff))
            except KeyError:
                cells.append("-")
        table.add_row(g, str(n), *cells)
    return table


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(s: ExpertSummary, plots: Sequence[str]) -> str:
    m = s.meta
    lab = s.labels
    out = [f"# Skill efficacy, expert-action metric: {m.get('env', '?')}", ""]
    info = [
        (
            "agent",
            f"`{m.get('agent', '?')}` (score mode, score_norm "
            f"{m.get('score_norm', '?')}, temperature {m.get('temperature', '?')})",
        ),
        ("library", f"`{(m.get('library') or {}).get('source', '?')}`"),
        ("placebo skills", ", ".join(f"`{p}`" for p in m.get("placebo_skills", [])) or "-"),
        ("difficulty", m.get("difficulty") or "-"),
        (
            "states",
            f"{lab.get('states')} in {lab.get('tasks')} tasks ({lab.get('on_path')} on "
            f"the planner's path, {lab.get('off_path')} after random detours)",
        ),
        (
            "labels",
            f"{lab.get('mean_optimal', 0):.2f} optimal of {lab.get('mean_admissible', 0):.1f} "
            f"admissible commands on average (uniform p_opt {lab.get('uniform_p_opt', 0):.3f}); "
            f"{lab.get('inconsistent_plans')} states where the planner's plan was longer than the "
            f"look-ahead proves; planner command not optimal in {lab.get('expert_not_optimal')}; "
            f"look-ahead {lab.get('label_s_per_state', 0):.2f} s a state",
        ),
    ]
    if m.get("wall_s") is not None:
        info.append(("wall time", f"{m['wall_s']:.0f} s (states {m.get('collect_s', 0):.0f} s)"))
    if m.get("load"):
        info.append(("machine load", m["load"]))
    out += [f"- **{k}**: {v}" for k, v in info]
    out += [
        "",
        "Conditions: `none` (no skills), `library` (the library), `placebo` (other-domain "
        "skills cut to the library block's length, state by state), `shuffled` (the library, "
        "its triggers reading another task type's goal). `p_opt`: probability the agent's "
        "choice rule puts on the optimal commands (one-step look-ahead with the planner); "
        "`top1`: its best-scored command is optimal; `rank`: rank of the planner's command "
        "(1 = best). 95 % CIs resample tasks.",
        "",
        "## Conditions side by side",
        "",
    ]
    rows = []
    for g in s.groups:
        for c in s.conditions:
            try:
                f = s.figure(c, g)
            except KeyError:
                continue
            rows.append(
                [
                    g,
                    f"`{c}`",
                    f.states,
                    f.tasks,
                    _num(f.p_opt),
                    _num(f.top1, 2),
                    _num(f.expert_rank, 2),
                    f"{f.bundle_chars:.0f}",
                ]
            )
    out.append(
        _md_table(
            [
                "group",
                "condition",
                "states",
                "tasks",
                "p_opt",
                "top-1",
                "expert rank",
                "skill chars",
            ],
            rows,
        )
    )
    out += ["", "## Paired differences (p_opt, top-1)", ""]
    rows = []
    for g in s.groups:
        for c, b in PAIRS if g == "all" else PAIRS[:3]:
            try:
                d = s.diff(c, b, g)
                t = s.diff(c, b, g, "top1")
            except KeyError:
                continue
            rows.append(
                [g, f"{c} - {b}", d.diff.n, d.diff.clusters, _signed(d.diff), _signed(t.diff, 2)]
            )
    out.append(_md_table(["group", "difference", "states", "tasks", "p_opt", "top-1"], rows))
    out += ["", "## By task type (p_opt)", ""]
    rows = []
    types = list(dict.fromkeys(d.group for d in s.task_types))
    for tt in types:
        cells = []
        for c in s.conditions:
            fig = next((x for x in s.task_type_figures if x.group == tt and x.condition == c), None)
            cells.append(_num(fig.p_opt) if fig else "-")
        diffs = []
        for c, b in PAIRS[:3]:
            dif = next(
                (x for x in s.task_types if (x.group, x.condition, x.baseline) == (tt, c, b)), None
            )
            diffs.append(_signed(dif.diff) if dif else "-")
        n = next((x.states for x in s.task_type_figures if x.group == tt), 0)
        rows.append([tt, n, *cells, *diffs])
    out.append(
        _md_table(
            ["task type", "states", *s.conditions, *(f"{c} - {b}" for c, b in PAIRS[:3])], rows
        )
    )
    out += [
        "",
        "## Per skill (library - none in p_opt, where the skill fired vs not)",
        "",
    ]
    if s.skills:
        out.append(
            _md_table(
                [
                    "skill",
                    "states fired",
                    "tasks",
                    "fired",
                    "not fired",
                    "library - placebo, fired",
                ],
                [
                    [
                        k.skill,
                        k.states_fired,
                        k.tasks_fired,
                        _signed(k.fired),
                        _signed(k.not_fired),
                        _signed(k.vs_placebo_fired),
                    ]
                    for k in s.skills
                ],
            )
        )
    else:
        out.append("No library skill fired.")
    out += ["", "## Plots", ""]
    out += [f"![{p}]({p})" for p in plots]
    return "\n".join(out) + "\n"


def _plot_conditions(s: ExpertSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    groups = [g for g in s.groups if any(f.group == g for f in s.figures)]
    conds = s.conditions
    width = 0.8 / max(1, len(conds))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(groups) * 2 + 3), 4.2))
    x = np.arange(len(groups))
    for ax, metric, label in zip(axes, ("p_opt", "top1"), ("p_opt", "top-1 accuracy")):
        for i, c in enumerate(conds):
            means, lo, hi = [], [], []
            for g in groups:
                try:
                    r = getattr(s.figure(c, g), metric)
                except KeyError:
                    r = RateCI(mean=float("nan"), lo=float("nan"), hi=float("nan"))
                means.append(r.mean)
                lo.append(max(0.0, r.mean - r.lo))
                hi.append(max(0.0, r.hi - r.mean))
            ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=[lo, hi], capsize=3, label=c)
        ax.set_xticks(x, groups, fontsize=7, rotation=30)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{label} (95% CI, tasks resampled)")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Conditions side by side - {s.meta.get('agent', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_diffs(s: ExpertSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    items = [d for d in s.diffs if d.metric == "p_opt" and (d.condition, d.baseline) in PAIRS[:3]]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * max(1, len(items)) + 1.5))
    if not items:
        ax.text(0.5, 0.5, "no paired comparison", ha="center", va="center")
        ax.axis("off")
    else:
        y = np.arange(len(items))[::-1]
        colors = {p: f"C{i}" for i, p in enumerate(PAIRS[:3])}
        for yi, d in zip(y, items):
            r = d.diff
            ax.errorbar(
                r.mean,
                yi,
                xerr=[[max(0.0, r.mean - r.lo)], [max(0.0, r.hi - r.mean)]],
                fmt="o",
                capsize=3,
                color=colors[(d.condition, d.baseline)],
            )
        ax.axvline(0, color="grey", lw=1, ls="--")
        ax.set_yticks(y, [f"{d.condition} - {d.baseline} ({d.group})" for d in items], fontsize=7)
        ax.set_xlabel("difference in p_opt (95% CI, tasks resampled)")
        ax.set_title("Paired differences")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_skills(s: ExpertSummary, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.45 * max(1, len(s.skills)) + 1.5))
    if not s.skills:
        ax.text(0.5, 0.5, "no library skill fired", ha="center", va="center")
        ax.axis("off")
    else:
        y = np.arange(len(s.skills))[::-1]
        for yi, k in zip(y, s.skills):
            for r, off, color, lab in (
                (k.fired, 0.12, "C0", "library - none, fired"),
                (k.vs_placebo_fired, -0.12, "C1", "library - placebo, fired"),
            ):
                if r.n:
                    ax.errorbar(
                        r.mean,
                        yi + off,
                        xerr=[[max(0.0, r.mean - r.lo)], [max(0.0, r.hi - r.mean)]],
                        fmt="o",
                        capsize=3,
                        color=color,
                        label=lab if yi == y[0] else None,
                    )
        ax.axvline(0, color="grey", lw=1, ls="--")
        ax.set_yticks(y, [f"{k.skill} (n={k.states_fired})" for k in s.skills], fontsize=8)
        ax.set_xlabel("difference in p_opt where the skill fired (95% CI)")
        ax.legend(fontsize=7)
        ax.set_title("Per skill")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


EXPERT_PLOTS = {
    "expert_conditions.png": _plot_conditions,
    "expert_paired.png": _plot_diffs,
    "expert_skills.png": _plot_skills,
}


def write_expert_report(summary: ExpertSummary, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.md``, ``summary.json`` and the PNG plots (matplotlib, Agg backend)."""
    from reskill_gym.evaluation.report import write_report_files

    return write_report_files(summary, out_dir, EXPERT_PLOTS, _markdown)
