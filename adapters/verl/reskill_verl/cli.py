"""``reskill verl ...``: prepare datasets and launch veRL training with our configs.

Exports ``verl_app``, ``config_dir``, ``train_command``, ``env_var_overrides``,
``parse_env_args`` and ``FORWARDED_ENV_VARS``.

Nothing here imports verl, ray or torch at module level (``reskill --help`` stays fast);
``train`` runs veRL's own entry point (``python -m verl.trainer.main_ppo``) in a child process
with our Hydra config folder, so every veRL option works as a Hydra override. Config names may
name a subfolder (``published/alfworld``: the published runs' presets).

The environment variables the envs read (:data:`FORWARDED_ENV_VARS`) reach every Ray worker
on every node only through the job's ``runtime_env``; veRL hands
``ray_kwargs.ray_init`` to ``ray.init`` unresolved, so a ``${oc.env:...}`` in the YAML would
arrive as literal text. ``train`` therefore adds each one that is set (non-empty) as a
literal override before the user's own (which win).

>>> cmd, env = train_command("alfworld", ["trainer.total_training_steps=2"], config_path="/cfg")
>>> cmd[1:7]
['-m', 'verl.trainer.main_ppo', '--config-path', '/cfg', '--config-name', 'alfworld']
>>> "reskill_verl.plugin" in env["VERL_USE_EXTERNAL_MODULES"]
True
>>> parse_env_args(["difficulty=tiny", "max_turns=30"])
{'difficulty': 'tiny', 'max_turns': 30}
>>> env_var_overrides({"ALFWORLD_DATA": "/data/alf world", "RESKILL_CACHE": ""})
["++ray_kwargs.ray_init.runtime_env.env_vars.ALFWORLD_DATA='/data/alf world'"]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import typer

__all__ = [
    "verl_app",
    "config_dir",
    "train_command",
    "env_var_overrides",
    "parse_env_args",
    "FORWARDED_ENV_VARS",
]

PLUGIN_MODULE = "reskill_verl.plugin"
#: Read by the envs in the Ray workers: official ALFWorld data, the cache root (generated
#: ALFWorld games, search corpora), the seed skill folders.
FORWARDED_ENV_VARS: tuple[str, ...] = ("ALFWORLD_DATA", "RESKILL_CACHE", "RESKILL_SKILLS_DIR")
_RUNTIME_ENV_VARS = "ray_kwargs.ray_init.runtime_env.env_vars"

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


def _hydra_quoted(value: str) -> str:
    """``value`` as a single-quoted Hydra override value (escape quotes and the backslashes
    before them; Hydra keeps every other backslash)."""
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value).replace("'", "\\'")
    return f"'{escaped}'"


def env_var_overrides(environ: Mapping[str, str] | None = None) -> list[str]:
    """Hydra overrides that put every set (non-empty) :data:`FORWARDED_ENV_VARS` into the
    job's Ray ``runtime_env``. An empty value counts as unset (the envs read it so too)."""
    environ = os.environ if environ is None else environ
    out: list[str] = []
    for name in FORWARDED_ENV_VARS:
        value = environ.get(name, "")
        if not value.strip():
            continue
        if "${" in value:
            raise ValueError(
                f"${name}={value!r}: '${{' would be read as an interpolation; veRL passes the "
                "Ray runtime_env unresolved. Use a value without it."
            )
        out.append(f"++{_RUNTIME_ENV_VARS}.{name}={_hydra_quoted(value)}")
    return out


def train_command(
    config_name: str,
    overrides: Sequence[str] = (),
    *,
    config_path: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that ``reskill verl train`` runs: veRL's main_ppo
    with our config folder, the set :data:`FORWARDED_ENV_VARS` as runtime_env overrides,
    then ``overrides``."""
    path = Path(config_path) if config_path is not None else config_dir()
    cmd = [
        python,
        "-m",
        "verl.trainer.main_ppo",
        "--config-path",
        str(path),
        "--config-name",
        config_name,
        *env_var_overrides(),
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
    shuffle_seed: int | None = typer.Option(
        None,
        "--shuffle-seed",
        help="Shuffle the training tasks (and each data source's validation tasks) with this "
        "seed before the limits cut them (published search: 42).",
    ),
    val_per_source: int | None = typer.Option(
        None,
        "--val-per-source",
        help="At most this many validation tasks per data source, e.g. per search benchmark "
        "(published: 300).",
    ),
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
        shuffle_seed=shuffle_seed,
        val_per_source=val_per_source,
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
        "alfworld",
        "--config-name",
        help="alfworld, scienceworld, search (single node); published/alfworld, "
        "published/scienceworld, published/search (the published runs: 2x8 / 2x8 / 1x8 GPUs); "
        "or your own.",
    ),
    config_path: Path | None = typer.Option(
        None, "--config-path", help="Config folder (default: ours)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command, run nothing."),
) -> None:
    """Run veRL's main_ppo with our config; extra arguments are Hydra overrides."""
    try:
        cmd, env = train_command(config_name, list(ctx.args), config_path=config_path)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(" ".join(cmd))
    if dry_run:
        return
    raise typer.Exit(subprocess.call(cmd, env=env))
