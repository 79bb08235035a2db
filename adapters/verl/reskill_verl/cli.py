"""``reskill verl ...``: prepare datasets and launch veRL training with our configs.

Exports ``verl_app``, ``config_dir``, ``train_command`` and ``parse_env_args``.

Nothing here imports verl, ray or torch at module level (``reskill --help`` stays fast);
``train`` runs veRL's own entry point (``python -m verl.trainer.main_ppo``) in a child process
with our Hydra config folder, so every veRL option works as a Hydra override.

>>> cmd, env = train_command("alfworld", ["trainer.total_training_steps=2"], config_path="/cfg")
>>> cmd[1:7]
['-m', 'verl.trainer.main_ppo', '--config-path', '/cfg', '--config-name', 'alfworld']
>>> "reskill_verl.plugin" in env["VERL_USE_EXTERNAL_MODULES"]
True
>>> parse_env_args(["difficulty=tiny", "max_turns=30"])
{'difficulty': 'tiny', 'max_turns': 30}
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

__all__ = ["verl_app", "config_dir", "train_command", "parse_env_args"]

PLUGIN_MODULE = "reskill_verl.plugin"

verl_app = typer.Typer(
    help="Train with veRL (GPU clusters): prepare datasets, launch training.",
    no_args_is_help=True,
)


def config_dir() -> Path:
    """Our Hydra config folder: ``$RESKILL_VERL_CONFIG_DIR``, the checkout's ``configs/verl``,
    or the copy shipped in the package."""
    here = Path(__file__).resolve().parent
    candidates = []
    if os.environ.get("RESKILL_VERL_CONFIG_DIR"):
        candidates.append(Path(os.environ["RESKILL_VERL_CONFIG_DIR"]))
    candidates += [here.parent.parent.parent / "configs" / "verl", here / "configs"]
    for c in candidates:
        if (c / "alfworld.yaml").is_file():
            return c
    raise FileNotFoundError(
        "no reskill veRL config folder found; looked in: " + ", ".join(map(str, candidates))
    )


def train_command(
    config_name: str,
    overrides: Sequence[str] = (),
    *,
    config_path: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that ``reskill verl train`` runs."""
    path = Path(config_path) if config_path is not None else config_dir()
    cmd = [
        python,
        "-m",
        "verl.trainer.main_ppo",
        "--config-path",
        str(path),
        "--config-name",
        config_name,
        *overrides,
    ]
    env = dict(os.environ)
    modules = [m for m in env.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m]
    if PLUGIN_MODULE not in modules:
        modules.append(PLUGIN_MODULE)
    env["VERL_USE_EXTERNAL_MODULES"] = ",".join(modules)
    return cmd, env


def parse_env_args(items: Sequence[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs, values read as YAML scalars (``30`` -> int, ``true`` -> bool)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--env-arg {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


@verl_app.command("prepare")
def prepare(
    env: str = typer.Option(..., "--env", help="alfworld, scienceworld or search."),
    out: Path = typer.Option(..., "--out", help="Output folder (train.parquet, val.parquet)."),
    split: str = typer.Option("train", "--split", help="Split of the training file."),
    val_splits: str = typer.Option(
        "seen,unseen", "--val-splits", help="Comma-separated splits of val.parquet ('' for none)."
    ),
    env_arg: list[str] = typer.Option(
        [], "--env-arg", help="Env keyword KEY=VALUE (repeatable), e.g. difficulty=tiny."
    ),
    limit_train: int | None = typer.Option(None, help="At most this many training tasks."),
    limit_val: int | None = typer.Option(None, help="At most this many tasks per val split."),
) -> None:
    """Write veRL dataset files: one row per task, env + task id + split in extra_info.

    The rows' system message is the turn contract's default for the env; the agent loop
    builds every prompt itself from ``reskill.rollout``.
    """
    from reskill_verl.prepare import prepare_dataset

    result = prepare_dataset(
        env,
        out,
        train_split=split,
        val_splits=[s for s in val_splits.split(",") if s.strip()],
        env_kwargs=parse_env_args(env_arg),
        limit_train=limit_train,
        limit_val=limit_val,
    )
    for name, path in result.files.items():
        typer.echo(f"{name}: {result.counts[name]} rows -> {path}")


@verl_app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train(
    ctx: typer.Context,
    config_name: str = typer.Option(
        "alfworld", "--config-name", help="alfworld, scienceworld, search, or your own."
    ),
    config_path: Path | None = typer.Option(
        None, "--config-path", help="Config folder (default: ours)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command, run nothing."),
) -> None:
    """Run veRL's main_ppo with our config; extra arguments are Hydra overrides."""
    cmd, env = train_command(config_name, list(ctx.args), config_path=config_path)
    typer.echo(" ".join(cmd))
    if dry_run:
        return
    raise typer.Exit(subprocess.call(cmd, env=env))
