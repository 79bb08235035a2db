"""``reskill verl ...``: prepare datasets, check a run before booking GPUs (``preflight``,
:mod:`reskill_verl.preflight`), launch veRL training with our configs, and turn a veRL
checkpoint into a policy folder (``policy``, :mod:`reskill_verl.checkpoint_policy`).

Exports ``verl_app``, ``config_dir``, ``compose_config``, ``train_command``,
``env_var_overrides``, ``job_runtime_env``, ``parse_env_args``, ``FORWARDED_ENV_VARS``,
``CREDENTIAL_ENV_VARS`` and ``RAY_JOB_CONFIG_ENV``.

Nothing here imports verl, ray or torch at module level (``reskill --help`` stays fast);
``train`` runs veRL's own entry point (``python -m verl.trainer.main_ppo``) in a child process
with our Hydra config folder, so every veRL option works as a Hydra override. Config names may
name a subfolder (``published/alfworld``: the published runs' presets).

The environment variables the envs read (:data:`FORWARDED_ENV_VARS`) reach every Ray worker
on every node only through the job's ``runtime_env``; veRL hands
``ray_kwargs.ray_init`` to ``ray.init`` unresolved, so a ``${oc.env:...}`` in the YAML would
arrive as literal text. ``train`` therefore adds each one that is set (non-empty) as a
literal override before the user's own (which win).

Credentials (:data:`CREDENTIAL_ENV_VARS`: the creator's LLM keys, AWS for Bedrock, wandb,
the Hugging Face token) must reach the co-evolution actor and the trainer on whichever node
Ray puts them, but never the Hydra config: veRL prints the config and hands it to every
logger (wandb's run config included). ``train`` passes them as Ray's own job-level
runtime_env (``RAY_JOB_CONFIG_JSON_ENV_VAR``, what ``ray job submit`` sets), which
``ray.init`` merges with the config's, so every worker of the job on every node sees them.

>>> cmd, env = train_command("alfworld", ["trainer.total_training_steps=2"], config_path="/cfg")
>>> cmd[1:7]
['-m', 'verl.trainer.main_ppo', '--config-path', '/cfg', '--config-name', 'alfworld']
>>> "reskill_verl.plugin" in env["VERL_USE_EXTERNAL_MODULES"]
True
>>> parse_env_args(["difficulty=tiny", "max_turns=30"])
{'difficulty': 'tiny', 'max_turns': 30}
>>> env_var_overrides({"ALFWORLD_DATA": "/data/alf world", "RESKILL_CACHE": ""})
["++ray_kwargs.ray_init.runtime_env.env_vars.ALFWORLD_DATA='/data/alf world'"]
>>> job_runtime_env({"WANDB_API_KEY": "k", "PATH": "/bin"})
'{"runtime_env": {"env_vars": {"WANDB_API_KEY": "k"}}}'
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import typer

from reskill_gym import safe_files

__all__ = [
    "verl_app",
    "config_dir",
    "compose_config",
    "train_command",
    "env_var_overrides",
    "job_runtime_env",
    "parse_env_args",
    "FORWARDED_ENV_VARS",
    "CREDENTIAL_ENV_VARS",
    "RAY_JOB_CONFIG_ENV",
]

PLUGIN_MODULE = "reskill_verl.plugin"
#: Read by the envs in the Ray workers: official ALFWorld data, the cache root (generated
#: ALFWorld games, search corpora), the seed skill folders.
FORWARDED_ENV_VARS: tuple[str, ...] = ("ALFWORLD_DATA", "RESKILL_CACHE", "RESKILL_SKILLS_DIR")
#: Read by the creator's LLM backends (Anthropic, OpenAI-compatible, Bedrock through boto3's
#: credential chain), wandb and the Hugging Face hub, in whichever Ray process runs them.
CREDENTIAL_ENV_VARS: tuple[str, ...] = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "WANDB_API_KEY",
    "WANDB_ENTITY",
    "WANDB_PROJECT",
    "WANDB_MODE",
    "WANDB_BASE_URL",
    "HF_TOKEN",
)
#: Ray's job-level runtime_env (JSON), merged into the driver's by ``ray.init``.
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
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


def job_runtime_env(
    environ: Mapping[str, str] | None = None, extra: Sequence[str] = ()
) -> str | None:
    """``RAY_JOB_CONFIG_JSON_ENV_VAR`` carrying every set :data:`CREDENTIAL_ENV_VARS` (and the
    ``extra`` names) to the job's workers, merged into a job config already in ``environ``
    (its values win); None when there is nothing to pass."""
    import json

    environ = os.environ if environ is None else environ
    job = json.loads(environ.get(RAY_JOB_CONFIG_ENV) or "{}")
    runtime_env = job.setdefault("runtime_env", {}) or {}
    job["runtime_env"] = runtime_env
    env_vars = runtime_env.setdefault("env_vars", {}) or {}
    runtime_env["env_vars"] = env_vars
    added = False
    for name in (*CREDENTIAL_ENV_VARS, *extra):
        value = environ.get(name, "")
        if value.strip() and name not in env_vars:
            env_vars[name] = value
            added = True
    if not added:
        return environ.get(RAY_JOB_CONFIG_ENV) or None
    return json.dumps(job)


def train_command(
    config_name: str,
    overrides: Sequence[str] = (),
    *,
    config_path: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
    forward: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that ``reskill verl train`` runs: veRL's main_ppo
    with our config folder, the set :data:`FORWARDED_ENV_VARS` as runtime_env overrides,
    then ``overrides``; credentials (:data:`CREDENTIAL_ENV_VARS` + ``forward``) in Ray's
    job-level runtime_env, outside the config. ``environ``: the environment to start from
    (default ``os.environ``)."""
    path = Path(config_path) if config_path is not None else config_dir()
    cmd = [
        python,
        "-m",
        "verl.trainer.main_ppo",
        "--config-path",
        str(path),
        "--config-name",
        config_name,
        *env_var_overrides(environ),
        *overrides,
    ]
    env = dict(os.environ if environ is None else environ)
    modules = [m for m in env.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m]
    if PLUGIN_MODULE not in modules:
        modules.append(PLUGIN_MODULE)
    env["VERL_USE_EXTERNAL_MODULES"] = ",".join(modules)
    job = job_runtime_env(env, forward)
    if job is not None:
        env[RAY_JOB_CONFIG_ENV] = job
        # a variable set both here and in the config's runtime_env: the config's wins
        env.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
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
    env: str = typer.Option(
        ...,
        "--env",
        help="A registered env (`reskill env list`), or a Gymnasium id: the gym adapter, "
        "--env-arg its options (task_key=..., actions_key=...).",
    ),
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
        help="Shuffle the training tasks (and the validation tasks of each data source / split "
        "for --val-per-source / --val-per-split) with this seed before the limits cut them "
        "(published: 42).",
    ),
    val_per_source: int | None = typer.Option(
        None,
        "--val-per-source",
        help="At most this many validation tasks per data source, e.g. per search benchmark "
        "(published: 300).",
    ),
    val_per_split: int | None = typer.Option(
        None,
        "--val-per-split",
        help="At most this many validation tasks per val split, drawn by the seeded shuffle "
        "(published ALFWorld: 32 seen + 32 unseen games).",
    ),
) -> None:
    """Write veRL dataset files: one row per task, env + task id + split in extra_info.

    The rows' system message is the turn contract's default for the env; the agent loop
    builds every prompt itself from ``reskill.rollout``.
    """
    from reskill_gym.envs.contract import resolve_env
    from reskill_verl.prepare import prepare_dataset

    # a Gymnasium id nobody registered with reskill-gym: the gym env with gym_id set
    env, env_kwargs = resolve_env(env, parse_env_args(env_arg))
    result = prepare_dataset(
        env,
        out,
        train_split=split,
        val_splits=[s for s in val_splits.split(",") if s.strip()],
        env_kwargs=env_kwargs,
        limit_train=limit_train,
        limit_val=limit_val,
        shuffle_seed=shuffle_seed,
        val_per_source=val_per_source,
        val_per_split=val_per_split,
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
    forward: list[str] = typer.Option(
        [],
        "--forward-env",
        help="Another environment variable to pass to every Ray worker (repeatable), e.g. "
        "the one a creator's api_key_env names. Credentials (ANTHROPIC_API_KEY, AWS_*, "
        "WANDB_API_KEY, HF_TOKEN, ...) are passed already.",
    ),
) -> None:
    """Run veRL's main_ppo with our config; extra arguments are Hydra overrides."""
    try:
        cmd, env = train_command(
            config_name, list(ctx.args), config_path=config_path, forward=forward
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(" ".join(cmd))
    if dry_run:
        return
    raise typer.Exit(subprocess.call(cmd, env=env))


def compose_config(
    config_name: str,
    overrides: Sequence[str] = (),
    *,
    config_path: str | os.PathLike[str] | None = None,
) -> object:
    """The config ``reskill verl train`` would run (Hydra composition on veRL's
    ``ppo_trainer``, the same folder, name and overrides)."""
    from hydra import compose, initialize_config_dir

    path = Path(config_path) if config_path is not None else config_dir()
    with initialize_config_dir(config_dir=str(path.resolve()), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


@verl_app.command(
    "preflight",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def preflight(
    ctx: typer.Context,
    config_name: str = typer.Option(
        "alfworld", "--config-name", help="As for `reskill verl train`."
    ),
    config_path: Path | None = typer.Option(
        None, "--config-path", help="Config folder (default: ours)."
    ),
    gpu_gib: float = typer.Option(
        80.0,
        "--gpu-gib",
        min=1.0,
        help="Memory of one GPU in GiB (an 80 GB H100/A100 shows 79.6 GiB in nvidia-smi).",
    ),
    model_config: Path | None = typer.Option(
        None, "--model-config", help="The model's config.json (default: from the model path)."
    ),
    memory_only: bool = typer.Option(
        False, "--memory-only", help="Only the memory plan; no data/env/credential checks."
    ),
    local: bool = typer.Option(
        False, "--local", help="Check this machine only, even if a Ray cluster is running."
    ),
    forward: list[str] = typer.Option([], "--forward-env", help="As for `reskill verl train`."),
) -> None:
    """Check a run before booking GPUs: the memory plan per GPU (from the model's
    config.json) against --gpu-gib, with the overrides that would fit, then data, env,
    Java, retriever and credentials on every node of the running Ray cluster (or here).
    Extra arguments are Hydra overrides, as for `train`. Exit 1 when something fails."""
    import json

    from reskill_verl import preflight as pf

    overrides = list(ctx.args)
    try:
        cmd, env = train_command(config_name, overrides, config_path=config_path, forward=forward)
        config = compose_config(
            config_name, [*env_var_overrides(), *overrides], config_path=config_path
        )
    except Exception as exc:  # Hydra: unknown config name, bad override, missing key
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(2) from None
    model_path = str(config.actor_rollout_ref.model.path)  # type: ignore[attr-defined]
    path = pf.find_model_config(model_path, model_config)
    try:
        shape = pf.ModelShape.from_config(json.loads(safe_files.read_text(path, follow_links=True)))
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    plan = pf.plan_memory(config, shape, gpu_gib)
    fixes = pf.fitting_overrides(config, shape, gpu_gib)
    fixed = pf.plan_memory(pf.with_overrides(config, fixes), shape, gpu_gib) if fixes else None
    checks: list[pf.Check] = []
    if not memory_only:
        job = env.get(RAY_JOB_CONFIG_ENV)
        if job is not None:
            os.environ[RAY_JOB_CONFIG_ENV] = job  # what the training job's workers will see
            os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
        runtime_env = config.ray_kwargs.ray_init.get("runtime_env", {})  # type: ignore[attr-defined]
        from omegaconf import OmegaConf

        checks = pf.run_node_checks(
            config,
            runtime_env=OmegaConf.to_container(runtime_env, resolve=True),  # type: ignore[arg-type]
            use_ray=False if local else None,
        )
    typer.echo(pf.render_report(config_name, model_path, shape, plan, fixes, fixed, checks))
    failed = [c for c in checks if not c.ok]
    if plan.verdict == "does not fit" or failed:
        typer.echo(
            f"preflight failed: memory {plan.verdict}, {len(failed)} of {len(checks)} checks failed",
            err=True,
        )
        raise typer.Exit(1)


@verl_app.command("policy")
def policy(
    actor_dir: Path = typer.Argument(
        ..., help="A veRL actor checkpoint: <checkpoints>/global_step_<k>/actor."
    ),
    dest: Path = typer.Argument(..., help="The policy folder to write (replaced if it exists)."),
    base: str | None = typer.Option(
        None,
        "--base",
        help="LoRA: the base model the adapter needs (default: the checkpoint's model path).",
    ),
) -> None:
    """Turn a veRL checkpoint into a policy folder (HF format, as `reskill train` writes)."""
    from reskill_gym.policy_folder import PolicyFolderError
    from reskill_gym.safe_text import error_line
    from reskill_verl.checkpoint_policy import policy_from_checkpoint

    try:
        out = policy_from_checkpoint(actor_dir, dest, base=base)
    except (PolicyFolderError, OSError, ValueError) as exc:
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"policy: {out} (evaluate: reskill eval --agent local:{out} ...)")
