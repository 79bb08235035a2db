"""Skill efficacy benchmark: does a skill library help a fixed agent choose the expert's action?

Run: ``python benchmarks/efficacy.py --config benchmarks/configs/efficacy_smollm2.yaml``
(optional ``--out DIR``, ``--agent SPEC``, ``--tasks N``, ``--states-per-task N``;
``--report-only`` rebuilds the combined report from the files already there).

A config holds the fields of ``reskill_gym.evaluation.EvalConfig`` plus ``difficulties`` (one
``reskill eval --metric expert`` run per ALFWorld difficulty, in ``<out>/<difficulty>``) and
``out``. Each run draws planner and perturbed states, labels the optimal commands by one-step
look-ahead and scores every state under ``none``, ``library``, ``placebo`` and ``shuffled``
skills (see ``reskill_gym.evaluation.expert``). The combined report (``<out>/report.md``,
``summary.json``, plots) pools the runs with per-difficulty and per-split groups, and
``<out>/efficacy_table.md`` is the table of docs/evaluation.md: ``p_opt`` per condition and the paired
differences library - none / - placebo / - shuffled with 95 % CIs that resample tasks.
Interrupt and rerun to resume.

Two libraries on the same states (an evolved library against the one it started from):
``--reference DIR`` names an earlier output of this script. Its states are reused (only the
splits of ``--splits``, e.g. ``unseen``), its ``none`` scores are copied (the no-skill prompt
does not depend on the library), and its ``library`` scores join the report as the condition
``--reference-name`` (default ``reference``), so ``library - <name>`` is paired state by state.
``--skills`` names the library under test (``PATH`` or ``PATH@VERSION``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from reskill_gym.evaluation import EvalAbortedError, EvalConfig, run_and_report
from reskill_gym.evaluation.config import merge_eval_config, validate_eval_config
from reskill_gym.runfolder import ConfigError
from reskill_gym.safe_text import error_line

ROOT = Path(__file__).resolve().parents[1]  # relative paths in a config may name repo files

log = logging.getLogger("efficacy")

#: Groups of the efficacy table (docs/evaluation.md), in order (present ones only).
TABLE_GROUPS = (
    "tiny/seen",
    "tiny/unseen",
    "small/seen",
    "small/unseen",
    "std/seen",
    "std/unseen",
    "seen",
    "unseen",
    "all",
)


def _resolve(path: str) -> str:
    """A relative path that does not exist here is taken relative to the repository."""
    p = Path(path)
    if p.is_absolute() or p.exists() or not (ROOT / p).exists():
        return path
    return str(ROOT / p)


def load_config(path: Path, flags: dict[str, Any]) -> tuple[list[EvalConfig], Path]:
    """One ``EvalConfig`` per difficulty, and the output folder.

    The file is read by ``reskill eval --config``'s loader (bounded YAML, keys checked);
    ``flags`` (None: not given) replace its values.
    """
    try:
        data, extra, source = merge_eval_config(
            path, flags=flags, extra_keys=("out", "difficulties")
        )
    except ConfigError as e:
        raise SystemExit(f"error: {error_line(e)}") from None
    out = Path(str(extra.get("out", f"runs/{path.stem}")))
    difficulties = extra.get("difficulties") or [data.pop("difficulty", None)]
    data["skills"] = [_resolve(s) for s in data.get("skills", [])]
    expert = dict(data.pop("expert", None) or {})
    expert["placebo_skills"] = [_resolve(s) for s in expert.get("placebo_skills", [])]
    data["metric"] = "expert"
    configs = []
    for d in difficulties:
        try:
            configs.append(validate_eval_config(data | {"difficulty": d, "expert": expert}, source))
        except ConfigError as e:
            raise SystemExit(f"error: {error_line(e)}") from None
    return configs, out


def seed_from_reference(sub: Path, ref: Path, splits: list[str]) -> None:
    """Start ``sub`` with ``ref``'s states of ``splits`` and their ``none`` scores."""
    from reskill_gym.atomic import atomic_write_text
    from reskill_gym.evaluation.episode_log import EpisodeLog
    from reskill_gym.evaluation.expert import SCORES_FILE, STATES_FILE, ExpertScore, _read_states

    if (sub / STATES_FILE).exists():
        return
    if not (ref / STATES_FILE).exists():
        raise SystemExit(f"--reference: {ref} has no {STATES_FILE}")
    states = [s for s in _read_states(ref / STATES_FILE) if s.split in splits]
    keys = {s.key for s in states}
    none = [
        r
        for r in EpisodeLog(ref / SCORES_FILE, record_type=ExpertScore).records()
        if r.condition == "none" and r.state_key in keys
    ]
    sub.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sub / SCORES_FILE, "".join(r.model_dump_json() + "\n" for r in none))
    atomic_write_text(sub / STATES_FILE, "".join(s.model_dump_json() + "\n" for s in states))
    log.info("efficacy: %s: %d states, %d none scores from %s", sub, len(states), len(none), ref)


def combine(
    out: Path,
    configs: list[EvalConfig],
    wall_s: float | None = None,
    *,
    reference: Path | None = None,
    reference_name: str = "reference",
) -> Any:
    """Pool the per-difficulty runs into ``out``: report.md, summary.json, plots, table.

    ``reference``: an earlier output on the same states; its ``library`` scores join as the
    condition ``reference_name``."""
    from reskill_gym.evaluation.episode_log import EpisodeLog
    from reskill_gym.evaluation.expert import SCORES_FILE, STATES_FILE, ExpertScore, _read_states
    from reskill_gym.evaluation.expert_report import summarize_expert, write_expert_report

    states, scores = [], []
    collect_s = 0.0
    for cfg in configs:
        sub = out / str(cfg.difficulty)
        if not (sub / STATES_FILE).exists():
            raise SystemExit(f"{sub}: no {STATES_FILE} (run without --report-only first)")
        sub_states = _read_states(sub / STATES_FILE)
        states += sub_states
        scores += EpisodeLog(sub / SCORES_FILE, record_type=ExpertScore).records()
        if reference is not None:
            keys = {s.key for s in sub_states}
            scores += [
                r.model_copy(update={"condition": reference_name})
                for r in EpisodeLog(
                    reference / str(cfg.difficulty) / SCORES_FILE, record_type=ExpertScore
                ).records()
                if r.condition == "library" and r.state_key in keys
            ]
        if (sub / "summary.json").exists():
            sub_meta = json.loads((sub / "summary.json").read_text(encoding="utf-8"))["meta"]
            collect_s += float(sub_meta.get("collect_s") or 0.0)
    c0 = configs[0]
    meta = c0.model_dump(mode="json") | {
        "difficulty": ", ".join(str(c.difficulty) for c in configs),
        "library": {"source": c0.skills[0], "version": ""},
        "reference": None
        if reference is None
        else {"name": reference_name, "from": str(reference)},
        "placebo_skills": c0.expert.placebo_skills,
        "score_norm": c0.rollout.score_norm,
        "collect_s": round(collect_s, 1),
    }
    if wall_s is not None:
        meta["wall_s"] = round(wall_s, 1)
        a, b, c = os.getloadavg()
        meta["load"] = f"load average {a:.2f} / {b:.2f} / {c:.2f} on {os.cpu_count()} CPUs"
    from reskill_gym.evaluation.expert_report import PAIRS

    pairs = list(PAIRS)
    if reference is not None:
        pairs += [("library", reference_name), (reference_name, "none")]
    summary = summarize_expert(states, scores, meta=meta, pairs=pairs)
    write_expert_report(summary, out)
    table = readme_table(summary, reference_name if reference is not None else None)
    (out / "efficacy_table.md").write_text(table, encoding="utf-8")
    return summary, table


def readme_table(summary: Any, reference: str | None = None) -> str:
    """The efficacy table of docs/evaluation.md (Markdown); with ``reference``, also library - it."""
    from reskill_gym.evaluation.expert_report import PAIRS

    def f(r: Any) -> str:
        return f"{r.mean:.3f}" if r.n else "-"

    def d(r: Any) -> str:
        return f"{r.mean:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]" if r.n else "-"

    conds = summary.conditions
    wanted = list(PAIRS[:3]) + ([("library", reference)] if reference else [])
    pairs = [(c, b) for c, b in wanted if c in conds and b in conds]
    head = ["tasks", "states", *conds, *(f"{c} - {b}" for c, b in pairs)]
    lines = [
        "| group | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for g in TABLE_GROUPS:
        try:
            lib = summary.figure("library", g)
        except KeyError:
            continue
        cells = [str(lib.tasks), str(lib.states)]
        for c in conds:
            try:
                cells.append(f(summary.figure(c, g).p_opt))
            except KeyError:
                cells.append("-")
        for c, b in pairs:
            try:
                cells.append(d(summary.diff(c, b, g).diff))
            except KeyError:
                cells.append("-")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--agent")
    ap.add_argument("--out")
    ap.add_argument("--tasks", type=int)
    ap.add_argument("--states-per-task", type=int)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--skills", help="the library under test (PATH or PATH@VERSION)")
    ap.add_argument("--splits", nargs="+", help="only these splits (e.g. unseen)")
    ap.add_argument(
        "--reference", type=Path, help="an earlier output on the same states (see the docstring)"
    )
    ap.add_argument("--reference-name", default="reference")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    configs, out = load_config(
        args.config,
        {
            "agent": args.agent,
            "out": args.out,
            "tasks": args.tasks,
            "expert": {"states_per_task": args.states_per_task},
            "skills": [args.skills] if args.skills else None,
            "splits": args.splits,
        },
    )
    from rich.console import Console

    console = Console(width=200)
    t0 = time.monotonic()
    if not args.report_only:
        for cfg in configs:
            log.info("efficacy: difficulty %s -> %s", cfg.difficulty, out / str(cfg.difficulty))
            if args.reference is not None:
                seed_from_reference(
                    out / str(cfg.difficulty), args.reference / str(cfg.difficulty), cfg.splits
                )
            try:
                run_and_report(cfg, out / str(cfg.difficulty), console=console)
            except EvalAbortedError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
    from reskill_gym.evaluation.expert_report import render_expert_table

    summary, table = combine(
        out,
        configs,
        None if args.report_only else time.monotonic() - t0,
        reference=args.reference,
        reference_name=args.reference_name,
    )
    console.print(render_expert_table(summary))
    print(table)
    print(f"-> {out}/report.md, {out}/efficacy_table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
