"""``reskill train``: the command-line face of the local trainer.

Exports ``train_command``.

Attached to the ``reskill`` CLI through the ``reskill_gym.cli`` entry-point group (the core
never imports an adapter by name). Stays light at import: torch, transformers and the
trainer are imported inside the command, after the config has been validated, so
``reskill --help`` and a config typo answer in a second.

    reskill train --config configs/demo.yaml [key=value ...]
    reskill train --resume runs/<name> [run.steps=20]
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from reskill_gym.runfolder import set_console_log_level
from reskill_gym.runloop import StepFailedError
from reskill_gym.safe_text import error_line

__all__ = ["train_command"]

logger = logging.getLogger(__name__)


def train_command(
    overrides: list[str] = typer.Argument(
        None, help="Config overrides as key=value (e.g. run.steps=4 trainer.temperature=3)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Run config YAML (configs/demo.yaml, ...)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this folder from its newest checkpoint."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No rich progress display."),
) -> None:
    """Train a policy with GRPO while its skill library co-evolves (single machine)."""
    if (config is None) == (resume is None):
        raise typer.BadParameter("give exactly one of --config FILE or --resume RUN_DIR")
    try:
        from reskill_local.train import ConfigError, TrainingRun, load_config
    except ImportError as exc:  # the adapter ships with the repo; torch is the usual gap
        typer.echo(f"reskill train needs the local trainer (torch, transformers): {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        if resume is not None:
            run = TrainingRun.resume(resume, overrides or [])
        else:
            cfg = load_config(config, overrides or [])
            set_console_log_level(cfg.run.log_level)
            run = TrainingRun.create(cfg)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from exc
    set_console_log_level(run.config.run.log_level)
    typer.echo(f"run folder: {run.run_dir}")
    try:
        summary = run.train(progress=False if no_progress else None)
    except StepFailedError as exc:  # every rollout of a step failed: the env is broken
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"done: {summary.steps_done} steps, {summary.tests_started} version test(s) started and "
        f"{summary.tests_decided} decided in this session, library HEAD {summary.head}; "
        f"wall {summary.wall_s:.0f} s, CPU {summary.cpu_s:.0f} s"
    )
    if summary.report is not None:
        typer.echo(f"report: {summary.report}")
