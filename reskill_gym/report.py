"""The report of a training run: ``report.md`` and PNG plots, from the run folder's files.

Exports ``write_run_report``, ``load_run``, ``RunRecord``, ``VersionLife``, ``version_lives`` and
``report_command`` (``reskill report``).

Inputs are what every trainer writes into a run folder (the local trainer into its run
folder, the veRL adapter into ``<trainer.default_local_dir>/reskill``): ``metrics.jsonl``
(one row per step in the shared namespace: ``episode/...``, ``arms/<arm>/...``,
``versions/...``, see ``reskill_gym.rollout.episode_metrics`` and
``reskill_gym.coevolve.coevolution_metrics``), ``events.jsonl`` (co-evolution events),
``config.yaml``, the skill library with its history in ``skills/`` and, when the trainer
validates (the veRL adapter), ``validation.jsonl`` (one row per validation pass: success per
split, task type and topic, see ``reskill_gym.rollout.validation_metrics``). Outputs::

    report.md
    plots/reward_per_arm.png      reward and success per step, one line per arm
    plots/skill_lifecycle.png     created / tested / accepted / rejected library versions

matplotlib is imported inside :func:`write_run_report` with the Agg backend (no display).

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> _ = (run / "metrics.jsonl").write_text('{"step": 0, "episode/reward_mean": 0.5}\\n')
>>> load_run(run).metrics[0]["episode/reward_mean"]
0.5
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from reskill_gym.atomic import atomic_path, atomic_write_text
from reskill_gym.jsonl_files import read_jsonl_objects
from reskill_gym.safe_text import clip_text

__all__ = [
    "write_run_report",
    "load_run",
    "RunRecord",
    "VersionLife",
    "version_lives",
    "report_command",
]

logger = logging.getLogger(__name__)

_ARMS = ("head", "incumbent", "candidate")
_COLORS = {"head": "tab:blue", "incumbent": "tab:blue", "candidate": "tab:orange"}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a run file; bad lines are skipped with a warning naming them."""
    return [row for _n, row in read_jsonl_objects(path)]


@dataclass
class VersionLife:
    """One candidate library version's life in the run."""

    version: str
    base: str | None = None
    created: int | None = None
    operations: str = ""
    test_started: int | None = None
    decided: int | None = None
    outcome: str | None = None
    reason: str = ""
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Everything the report reads from a run folder."""

    run_dir: Path
    metrics: list[dict[str, Any]]
    events: list[dict[str, Any]]
    config: dict[str, Any]
    lives: list[VersionLife]
    head: str | None
    skills: list[tuple[str, str]]
    history_len: int
    validation: list[dict[str, Any]] = field(default_factory=list)
    """Validation passes, one per step (a pass repeated on resume: the last one)."""

    @property
    def decided(self) -> list[VersionLife]:
        return [v for v in self.lives if v.outcome is not None]


def version_lives(events: list[dict[str, Any]]) -> list[VersionLife]:
    """Each candidate version's life (created, tested, decided) from ``events.jsonl`` rows.

    >>> [(v.version, v.test_started, v.outcome) for v in version_lives([
    ...     {"kind": "test_started", "step": 2, "data": {"candidate": "b"}},
    ...     {"kind": "test_decided", "step": 5, "data": {"candidates": ["b"], "accepted": "a"}}])]
    [('b', 2, 'rejected')]
    """
    lives: dict[str, VersionLife] = {}
    for e in events:
        data = _mapping(e.get("data"))
        kind = e.get("kind")
        step = _int(e.get("step"))
        if kind == "candidate_committed" and isinstance(data.get("candidate"), str):
            life = lives.setdefault(_id(data["candidate"]), VersionLife(_id(data["candidate"])))
            life.base, life.created = _id(str(data.get("base"))), step
            life.operations = clip_text(str(data.get("operations", "")), 400)
        elif kind == "test_started" and isinstance(data.get("candidate"), str):
            life = lives.setdefault(_id(data["candidate"]), VersionLife(_id(data["candidate"])))
            life.test_started = step
        elif kind == "test_decided":
            cands = data.get("candidates")
            for cand in cands if isinstance(cands, list) else []:
                if not isinstance(cand, str):
                    continue
                life = lives.setdefault(_id(cand), VersionLife(_id(cand)))
                life.decided = step
                life.outcome = "accepted" if data.get("accepted") == cand else "rejected"
                life.reason = clip_text(str(data.get("reason", "")), 400)
                counts = data.get("counts")
                life.counts = {
                    str(k): v
                    for k, v in (counts.items() if isinstance(counts, dict) else ())
                    if isinstance(v, dict)
                }
                if life.test_started is None:
                    life.test_started = _int(data.get("started_step"))
    return list(lives.values())


def load_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Read ``metrics.jsonl``, ``events.jsonl``, ``config.yaml`` and the library of a run."""
    run = Path(run_dir)
    metrics = [r for r in _read_jsonl(run / "metrics.jsonl") if _int(r.get("step")) is not None]
    events = _read_jsonl(run / "events.jsonl")
    config: dict[str, Any] = {}
    if (run / "config.yaml").is_file():
        from reskill_gym.yaml_loading import YAMLLoadError, load_yaml_file

        config = load_yaml_file(run / "config.yaml") or {}
        if not isinstance(config, dict):
            raise YAMLLoadError("the top level must be a mapping", path=str(run / "config.yaml"))
    lives = version_lives(events)
    from reskill_gym.skills import SkillLibrary
    from reskill_gym.skills.source import is_library

    head, skills, history_len = None, [], 0
    # local runs keep the library in skills/, the veRL adapter in library/
    folder = next((run / d for d in ("skills", "library") if is_library(run / d)), None)
    if folder is not None:
        lib = SkillLibrary(folder)
        head = lib.head
        skills = [(s.name, s.description) for s in lib.view().skills]
        history_len = len(lib.history())
    passes: dict[int, dict[str, Any]] = {}
    for r in _read_jsonl(run / "validation.jsonl"):
        step = _int(r.get("step"))
        if step is not None:
            passes[step] = r
    validation = [passes[k] for k in sorted(passes)]
    return RunRecord(run, metrics, events, config, lives, head, skills, history_len, validation)


def _mapping(v: Any) -> dict[str, Any]:
    """``v`` if it is a mapping, else an empty one: run files are read defensively."""
    return v if isinstance(v, dict) else {}


#: Steps and counts beyond this are not ones a run wrote (and overflow a float or a plot).
_MAX_INT = 10**12


def _int(v: Any) -> int | None:
    """``v`` if it is a plausible integer (not a bool, at most ``_MAX_INT`` in size), else
    None: run files are read defensively."""
    ok = isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _MAX_INT
    return v if ok else None


def _number(v: Any) -> float | None:
    """``v`` as a finite float if it is a plausible number, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, int):
        return float(v) if abs(v) <= _MAX_INT else None
    return v if math.isfinite(v) else None


def _id(v: str) -> str:
    """A version id from a run file, clipped: an id is 12 hex digits, not a megabyte."""
    return clip_text(v, 40)


def _series(metrics: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Every step with ``key`` or NaN, so an arm's line breaks where the arm was absent."""
    xs, ys = [], []
    for row in metrics:
        v = _number(row.get(key))
        xs.append(int(row["step"]))
        ys.append(math.nan if v is None else v)
    if all(math.isnan(y) for y in ys):
        return [], []
    return xs, ys


def _plot_rewards(rec: RunRecord, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for ax, metric, title in (
        (axes[0], "reward_mean", "reward per step"),
        (axes[1], "success_rate", "success per step"),
    ):
        for arm in _ARMS:
            xs, ys = _series(rec.metrics, f"arms/{arm}/{metric}")
            if xs:
                style = "--" if arm == "incumbent" else "-"
                ax.plot(xs, ys, style, marker="o", ms=3, label=arm, color=_COLORS[arm])
        xs, ys = _series(rec.metrics, f"episode/{metric}")
        if xs:
            ax.plot(xs, ys, ":", color="gray", label="all")
        last = int(rec.metrics[-1]["step"])
        for life in rec.lives:
            if life.test_started is not None:
                end = life.decided if life.decided is not None else last
                ax.axvspan(life.test_started + 0.5, end + 0.5, color="tab:orange", alpha=0.08)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_lifecycle(rec: RunRecord, path: Path) -> None:
    import matplotlib.pyplot as plt

    last = max((int(r["step"]) for r in rec.metrics), default=0)
    lives = rec.lives
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * max(len(lives), 1)))
    colors = {"accepted": "tab:green", "rejected": "tab:red", None: "tab:orange"}
    for y, life in enumerate(lives):
        start = life.test_started if life.test_started is not None else life.created
        end = life.decided if life.decided is not None else last
        if start is not None:
            ax.plot([start, end], [y, y], color=colors[life.outcome], lw=6, alpha=0.5)
        if life.created is not None:
            ax.plot(life.created, y, "o", color="black", ms=5)
        if life.decided is not None:
            ax.plot(life.decided, y, "s", color=colors[life.outcome], ms=8)
        label = life.outcome or ("testing" if life.test_started is not None else "created")
        ax.text(end + 0.15, y, label, va="center", fontsize=8)
    ax.set_yticks(range(len(lives)))
    ax.set_yticklabels([life.version for life in lives], fontsize=8)
    ax.set_xlim(-0.5, last + 1.5)
    ax.set_xlabel("step  (o created, bar tested, square decided)")
    ax.set_title("library versions" if lives else "library versions (none proposed)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: Any, spec: str = ".2f") -> str:
    n = _number(v)
    return "-" if n is None else format(n, spec)


def _markdown(rec: RunRecord) -> str:
    cfg_run = _mapping(rec.config.get("run"))
    env = _mapping(rec.config.get("env"))
    last = rec.metrics[-1] if rec.metrics else {}
    lines = [
        f"# Run report: {rec.run_dir.name}",
        "",
        f"- env: `{env.get('name', '?')}` {env.get('kwargs', {})}, skills mode "
        f"`{cfg_run.get('skills_mode', '?')}`",
        f"- steps: {len(rec.metrics)} of {cfg_run.get('steps', '?')}; wall "
        f"{_fmt(last.get('run/wall_s'), '.0f')} s, CPU {_fmt(last.get('run/cpu_s'), '.0f')} s",
        f"- library HEAD: `{rec.head}` ({len(rec.skills)} skills, {rec.history_len} history entries)",
        f"- version tests: {sum(v.test_started is not None for v in rec.lives)} started, "
        f"{len(rec.decided)} decided "
        f"({sum(v.outcome == 'accepted' for v in rec.lives)} accepted, "
        f"{sum(v.outcome == 'rejected' for v in rec.lives)} rejected)",
        "",
        "![reward and success per arm](plots/reward_per_arm.png)",
        "",
        "![skill lifecycle](plots/skill_lifecycle.png)",
        "",
        "## Steps",
        "",
        "| step | reward | success | head arm | incumbent | candidate | p_new | dropped | step s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rec.metrics:
        lines.append(
            f"| {r['step']} | {_fmt(r.get('episode/reward_mean'))} | "
            f"{_fmt(r.get('episode/success_rate'))} | {_fmt(r.get('arms/head/success_rate'))} | "
            f"{_fmt(r.get('arms/incumbent/success_rate'))} | "
            f"{_fmt(r.get('arms/candidate/success_rate'))} | "
            f"{_fmt(r.get('versions/p_candidate'))} | {_fmt(r.get('episode/dropped'), '.0f')} | "
            f"{_fmt(r.get('time/step_s', r.get('timing_s/step')), '.0f')} |"
        )
    lines += _validation_markdown(rec.validation)
    lines += ["", "## Library versions", ""]
    if not rec.lives:
        lines.append("No candidate version was proposed.")
    for life in rec.lives:
        lines.append(
            f"- `{life.version}` from `{life.base}` (step {life.created}): {life.operations}; "
            f"tested from step {life.test_started}; "
            + (
                f"**{life.outcome}** at step {life.decided} ({life.reason}); episodes "
                + ", ".join(
                    f"{v}: {c.get('successes', '?')}/{c.get('episodes', '?')}"
                    for v, c in life.counts.items()
                )
                if life.outcome
                else "undecided"
            )
        )
    notes = [
        e
        for e in rec.events
        if e.get("kind") in {"creator_failed", "creator_result", "episode_dropped"}
    ]
    if notes:
        lines += ["", "## Creator and rollout notes", ""]
        for e in notes[-20:]:
            msg = clip_text(str(e.get("message", "")), 200)
            lines.append(f"- step {_int(e.get('step'))}: {e.get('kind')}: {msg}")
    lines += ["", "## Final skills", ""]
    lines += [f"- **{name}**: {clip_text(desc, 400)}" for name, desc in rec.skills] or [
        "(empty library)"
    ]
    return "\n".join(lines) + "\n"


def _validation_markdown(passes: list[dict[str, Any]]) -> list[str]:
    """The validation section: success per split at every pass, then the last pass per task
    type and topic (rows) and split (columns).

    >>> rows = [{"step": 0, "val/all/success_rate": 0.5, "val/seen/success_rate": 0.5,
    ...          "val/all/task_type/heat/success_rate": 1.0,
    ...          "val/seen/task_type/heat/success_rate": 1.0}]
    >>> print("\\n".join(_validation_markdown(rows)[5:]))
    | step | all | seen |
    |---:|---:|---:|
    | 0 | 0.50 | 0.50 |
    <BLANKLINE>
    Last pass (step 0), success per group:
    <BLANKLINE>
    | group | all | seen |
    |---|---:|---:|
    | task_type `heat` | 1.00 | 1.00 |
    """
    if not passes:
        return []
    splits: list[str] = []
    for r in passes:
        for key in r:
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "val" and parts[2] == "success_rate":
                if parts[1] not in splits:
                    splits.append(parts[1])
    splits.sort(key=lambda s: (s != "all", s))
    lines = [
        "",
        "## Validation",
        "",
        "Success of the validation episodes (dropped ones count as failures).",
        "",
        "| step | " + " | ".join(splits) + " |",
        "|---:|" + "---:|" * len(splits),
    ]
    for r in passes:
        cells = [_fmt(r.get(f"val/{s}/success_rate")) for s in splits]
        lines.append(f"| {_int(r.get('step'))} | " + " | ".join(cells) + " |")
    last = passes[-1]
    groups: list[tuple[str, str]] = []
    for key in last:
        parts = key.split("/")
        if len(parts) == 5 and parts[0] == "val" and parts[2] in ("task_type", "topic"):
            if (parts[2], parts[3]) not in groups:
                groups.append((parts[2], parts[3]))
    if groups:
        lines += [
            "",
            f"Last pass (step {_int(last.get('step'))}), success per group:",
            "",
            "| group | " + " | ".join(splits) + " |",
            "|---|" + "---:|" * len(splits),
        ]
        for kind, name in sorted(groups):
            cells = [_fmt(last.get(f"val/{s}/{kind}/{name}/success_rate")) for s in splits]
            lines.append(f"| {kind} `{clip_text(name, 80)}` | " + " | ".join(cells) + " |")
    return lines


def write_run_report(run_dir: str | os.PathLike[str]) -> Path:
    """(Re)write ``report.md`` and ``plots/*.png`` of a run folder; returns the report path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    rec = load_run(run_dir)
    if not rec.metrics:
        raise FileNotFoundError(f"{rec.run_dir}: no metrics.jsonl rows (did any step finish?)")
    plots = rec.run_dir / "plots"
    if plots.is_symlink() or (plots.exists() and not plots.is_dir()):
        raise FileExistsError(f"{plots}: is a link or a file; the report writes its plots there")
    plots.mkdir(exist_ok=True)
    for name, draw in (
        ("reward_per_arm.png", _plot_rewards),
        ("skill_lifecycle.png", _plot_lifecycle),
    ):
        with atomic_path(plots / name, suffix=".png") as tmp:  # a link there is replaced
            draw(rec, tmp)
    from reskill_gym.redaction import redact

    return atomic_write_text(rec.run_dir / "report.md", redact(_markdown(rec)))


def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder (runs/<name>)."),
) -> None:
    """(Re)write report.md and the plots of a run folder."""
    from reskill_gym.skills.errors import LibraryError, SkillError
    from reskill_gym.yaml_loading import YAMLLoadError

    try:
        path = write_run_report(run_dir)
    except (FileNotFoundError, YAMLLoadError, LibraryError, SkillError) as exc:
        typer.echo(f"report: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"report: {path}")
