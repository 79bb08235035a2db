"""Reproducible efficacy runs of frozen skill libraries: ``reskill eval`` driven by a config.

Run: ``python benchmarks/eval_frozen.py --config benchmarks/configs/eval_alfworld.yaml``
with optional overrides ``--agent SPEC``, ``--out DIR``, ``--tasks N``, ``--skills PATH[@V]``
(repeatable, replaces the config's list) and ``--workers K``.

A config file holds the fields of ``reskill_gym.evaluation.EvalConfig`` (env, splits,
skills, agent, tasks, seeds, max_turns, difficulty, temperature, the ``rollout:`` block of
the turn contract - action mode and format, score_norm, history - ...) plus ``out``.
Seeds and task selection are fixed and the default temperature is 0, so a rerun with the
same agent gives the same episodes (API models may still vary). Interrupt and rerun to
resume; the report lands in ``<out>/report.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from reskill_gym.evaluation import EvalAbortedError, EvalConfig, run_and_report
from reskill_gym.evaluation.config import load_eval_config
from reskill_gym.runfolder import ConfigError
from reskill_gym.safe_text import error_line


def load_config(path: Path, flags: dict[str, object]) -> tuple[EvalConfig, Path]:
    """The config (``reskill eval --config``'s loader: bounded YAML, keys checked) and ``out``."""
    try:
        config, extra = load_eval_config(path, flags=flags)
    except ConfigError as e:
        raise SystemExit(f"error: {error_line(e)}") from None
    return config, Path(str(extra.get("out", f"runs/eval-{path.stem}")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--agent")
    ap.add_argument("--out")
    ap.add_argument("--tasks", type=int)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--skills", action="append")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config, out = load_config(
        args.config,
        {
            "agent": args.agent,
            "out": args.out,
            "tasks": args.tasks,
            "workers": args.workers,
            "skills": args.skills,
        },
    )
    from rich.console import Console

    try:
        run = run_and_report(config, out, console=Console(width=160))
    except EvalAbortedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{run.ran} episodes run, {run.skipped} resumed, {run.errors} errors -> {out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
