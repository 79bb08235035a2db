"""``reskill eval``: evaluate frozen skill libraries with any agent, paired with a no-skills run.

Exports ``eval_command`` (attached to the ``reskill`` Typer app as ``eval``) and
``run_and_report`` (the same pipeline for scripts such as ``benchmarks/eval_frozen.py``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from reskill_gym.evaluation.config import EvalAbortedError, EvalConfig
from reskill_gym.evaluation.runner import EvalRun, run_eval

__all__ = ["eval_command", "run_and_report"]

log = logging.getLogger(__name__)


def run_and_report(config: EvalConfig, out: Path, *, console: Any = None, **kw: Any) -> Any:
    """Run (or resume) ``config`` into ``out``, then write report.md, summary.json and plots.

    Returns the ``EvalRun`` (metric success) or the ``ExpertRun`` (metric expert).
    """
    if config.metric == "expert":
        return _run_expert_and_report(config, out, console=console, **kw)
    from reskill_gym.evaluation.report import render_table, summarize, write_eval_report

    eta = _Eta()

    def progress(rec: Any, n: int, total: int) -> None:
        status = (
            "error: " + str(rec.error_type) if rec.error else ("won" if rec.success else "lost")
        )
        log.info(
            "eval [%d/%d, %s] %s %s seed %d: %s in %d turns (%.1fs)",
            n,
            total,
            eta.text(n, total),
            rec.condition,
            rec.task_id,
            rec.seed,
            status,
            len(rec.turns),
            rec.wall_s,
        )

    run = run_eval(config, out, progress=progress, **kw)
    meta = config.model_dump(mode="json") | {
        "conditions": [
            {"name": c.name, "source": c.source, "version": c.version} for c in run.conditions
        ],
        "wall_s": round(run.wall_s, 1),
    }
    names = [c.name for c in run.conditions]
    summary = summarize(
        [r for r in run.records if r.condition in names], conditions=names, meta=meta
    )
    write_eval_report(summary, out)
    if console is not None:
        console.print(render_table(summary))
    return run


class _Eta:
    """Time left at this process's pace: items resumed from an earlier run (the first ``n``
    this process reports) do not count towards the rate."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.first: int | None = None

    def text(self, n: int, total: int) -> str:
        from reskill_gym.runfolder import eta_text

        if self.first is None:
            self.first = n - 1
        done_here = n - self.first
        rate = (time.monotonic() - self.t0) / max(1, done_here)
        return eta_text(rate * max(0, total - n))


def _load_text() -> str:
    try:
        a, b, c = os.getloadavg()
    except OSError:  # pragma: no cover - not on this platform
        return "unknown"
    return f"load average {a:.2f} / {b:.2f} / {c:.2f} on {os.cpu_count()} CPUs"


def _run_expert_and_report(config: EvalConfig, out: Path, *, console: Any = None, **kw: Any) -> Any:
    from reskill_gym.evaluation.expert import STATES_FILE, run_expert
    from reskill_gym.evaluation.expert_report import (
        render_expert_table,
        summarize_expert,
        write_expert_report,
    )

    load_before = _load_text()
    eta = _Eta()

    def progress(rec: Any, n: int, total: int) -> None:
        log.info(
            "eval expert [%d/%d, %s] %s %s: p_opt %.3f, top1 %s, rank %d (%.1fs%s)",
            n,
            total,
            eta.text(n, total),
            rec.condition,
            rec.state_key,
            rec.p_opt,
            rec.top1,
            rec.expert_rank,
            rec.wall_s,
            f", same prompt as {rec.reused}" if rec.reused else "",
        )

    run = run_expert(config, out, progress=progress, **kw)
    meta = run.meta | {
        "score_norm": config.rollout.score_norm,
        "wall_s": round(run.wall_s, 1),
        "collect_s": round(run.collect_s, 1),
        "load": f"{load_before} at the start, {_load_text()} at the end",
        "states_file": STATES_FILE,
    }
    summary = summarize_expert(run.states, run.scores, meta=meta)
    write_expert_report(summary, out)
    if console is not None:
        console.print(render_expert_table(summary))
    return run


def _default(name: str) -> Any:
    """An ``EvalConfig`` field's default, for help texts (the model holds the one value)."""
    field = EvalConfig.model_fields[name]
    return field.get_default(call_default_factory=True)


def eval_command(
    overrides: list[str] = typer.Argument(
        None,
        help="Config overrides as key=value with dotted paths (e.g. rollout.score_norm=sum "
        "expert.conditions=[none,library]); they replace the --config file's values.",
    ),
    config_file: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Eval config YAML: EvalConfig fields plus out (benchmarks/configs/eval_*.yaml). "
        "The flags below are shorthands; a flag given wins over the file and the overrides.",
    ),
    env: str = typer.Option(
        None, "--env", help="A registered env (`reskill env list`): alfworld, scienceworld, ..."
    ),
    split: list[str] = typer.Option(
        [],
        "--split",
        help=f"Split(s): train, seen, unseen (repeatable; default {_default('splits')}).",
    ),
    skills: list[str] = typer.Option(
        [], "--skills", help="Library PATH[@VERSION] (repeatable; VERSION: id, prefix, HEAD~N)."
    ),
    agent: str = typer.Option(
        None,
        "--agent",
        help="anthropic:<model> | openai:<base_url>#<model> | local:<path|default> | run:<run folder> (its trained policy) | python:<module>:<function>.",
    ),
    baseline: bool = typer.Option(
        None,
        "--skills-baseline/--no-skills-baseline",
        help="Also run every task without skills (paired baseline; on by default).",
    ),
    tasks: int = typer.Option(
        None, "--tasks", min=1, help="Tasks per split, evenly spread (default: all)."
    ),
    seeds: list[str] = typer.Option(
        [],
        "--seeds",
        help=f"Seeds per task: --seeds 0,1,2 or repeat --seeds (default {_default('seeds')}).",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        min=1,
        help=f"Episodes in parallel (threads; default {_default('workers')}).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Output folder (episodes.jsonl, report.md, PNGs); rerun to resume. Required "
        "here or as out: in --config.",
    ),
    mode: str = typer.Option(
        None,
        "--mode",
        help="score (local: over admissible actions) or generate; default score for local:, else generate.",
    ),
    max_turns: int = typer.Option(
        None,
        "--max-turns",
        min=1,
        help="Episode horizon (default: the env's; 20 for local: agents on alfworld).",
    ),
    difficulty: str = typer.Option(
        None,
        "--difficulty",
        help="Env difficulty, e.g. ALFWorld or TextWorld tiny, small or std (default: the env's; "
        "tiny for local: agents on alfworld).",
    ),
    temperature: float = typer.Option(
        None,
        "--temperature",
        min=0.0,
        help="0 = greedy (deterministic); default 0 for --metric success, 1 (the training "
        "sampling temperature) for --metric expert.",
    ),
    max_tokens: int = typer.Option(
        None,
        "--max-tokens",
        min=1,
        help=f"Max tokens per generated reply (default {_default('max_tokens')}).",
    ),
    history: int = typer.Option(
        None, "--history", min=0, help="per_turn layout: earlier turns shown (rollout default 3)."
    ),
    action_format: str = typer.Option(
        None,
        "--action-format",
        help="generate mode: tagged (<think>..</think><action>..</action>), lenient or "
        "passthrough; default tagged, passthrough for search.",
    ),
    score_norm: str = typer.Option(
        None,
        "--score-norm",
        help="score mode: mean (default, as training) or sum of token log-probs.",
    ),
    retry_errors: bool = typer.Option(
        None, "--retry-errors", help="On resume, re-run the error episodes."
    ),
    max_retries: int = typer.Option(
        None,
        "--max-retries",
        min=0,
        help="Transport retries per request (429/5xx/timeouts; llm.max_retries, default "
        "the LLM config's).",
    ),
    timeout_s: float = typer.Option(
        None, "--timeout", help="Per-request timeout, seconds (llm.timeout_s)."
    ),
    metric: str = typer.Option(
        None,
        "--metric",
        help="success (play episodes; default) or expert (score planner-labelled states under "
        "none/library/placebo/shuffled skills; envs with an expert planner such as alfworld "
        "and textworld, local: agents).",
    ),
    perturb_share: float = typer.Option(
        None,
        "--perturb-share",
        min=0.0,
        max=1.0,
        help="expert: share of random admissible commands in perturbed trajectories (0.3).",
    ),
    perturbed: int = typer.Option(
        None, "--perturbed", min=0, help="expert: perturbed trajectories per task (1)."
    ),
    states_per_task: int = typer.Option(
        None, "--states-per-task", min=1, help="expert: states kept per task (5)."
    ),
    placebo_skills: list[str] = typer.Option(
        [],
        "--placebo-skills",
        help="expert: other-domain skill folder for the placebo (repeatable; default: the "
        "library's sibling folders).",
    ),
    label_method: str = typer.Option(
        None,
        "--label",
        help="expert: look-ahead labelling, snapshot (default, engine state restored) or "
        "replay (reset + prefix per command, slow reference).",
    ),
    env_kwargs: str = typer.Option(
        None,
        "--env-kwargs",
        help='Env keyword arguments as a JSON object, e.g. \'{"games": {"unseen": 50}}\'; with '
        "a Gymnasium id as --env, the gym adapter's options (task_key, actions_key, ...).",
    ),
) -> None:
    """Evaluate frozen skill libraries with an agent; write episodes.jsonl, report.md and plots.

    The run is an ``EvalConfig``: a ``--config`` YAML file, then ``key=value`` overrides,
    then the flags given (each flag is a shorthand for one key).
    """
    from rich.console import Console

    from reskill_gym.evaluation.config import merge_eval_config, validate_eval_config
    from reskill_gym.runfolder import ConfigError
    from reskill_gym.safe_text import error_line

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(code=2)

    try:
        seed_list = [int(x) for s in seeds for x in s.replace(",", " ").split()]
    except ValueError:
        raise fail(f"--seeds takes integers, got {seeds}") from None
    from reskill_gym.envs.commands import parse_env_kwargs
    from reskill_gym.envs.contract import resolve_env
    from reskill_gym.envs.registration import EnvPluginError, UnknownEnvError, get_spec

    flag_env_kwargs = parse_env_kwargs(env_kwargs) if env_kwargs is not None else None
    flags: dict[str, Any] = {
        "env": env,
        "splits": split or None,
        "skills": skills or None,
        "agent": agent,
        "baseline": baseline,
        "tasks": tasks,
        "seeds": seed_list or None,
        "workers": workers,
        "max_turns": max_turns,
        "difficulty": difficulty,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "retry_errors": retry_errors,
        "metric": metric,
        "out": str(out) if out is not None else None,
        "rollout": {
            "action_mode": mode,
            "history_turns": history,
            "action_format": action_format,
            "score_norm": score_norm,
        },
        "llm": {"max_retries": max_retries, "timeout_s": timeout_s},
        "expert": {
            "perturb_share": perturb_share,
            "perturbed": perturbed,
            "states_per_task": states_per_task,
            "placebo_skills": placebo_skills or None,
            "label": label_method,
        },
    }
    try:
        data, extra, source = merge_eval_config(config_file, overrides or [], flags=flags)
    except ConfigError as e:
        raise fail(error_line(e)) from None
    if extra.get("out") is None:
        raise fail("--out is required (or out: in the --config file)")
    out = Path(str(extra["out"]))
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out}: is a file; give a folder (it is created if missing)")
    if data.get("env") is None:
        raise fail("--env is required (or env: in the --config file)")
    if data.get("agent") is None:
        raise fail("--agent is required (or agent: in the --config file)")
    try:
        # a Gymnasium id as env: the adapter's options move into env_kwargs
        given_kwargs = data.get("env_kwargs") if flag_env_kwargs is None else flag_env_kwargs
        data["env"], data["env_kwargs"] = resolve_env(str(data["env"]), given_kwargs or {})
        env_spec = get_spec(data["env"])
    except (UnknownEnvError, EnvPluginError) as e:
        raise fail(f"--env: {e}") from None
    if str(data["agent"]).split(":", 1)[0].lower() == "local":
        # The env's defaults for a small CPU model (ALFWorld: small rooms and a short
        # horizon), for what neither the file nor a flag set; the report records the values.
        for key, value in env_spec.local_agent_defaults.items():
            if key in ("difficulty", "max_turns") and data.get(key) is None:
                data[key] = value
                log.info("eval: local agent on %s: %s %s (its default)", env_spec.name, key, value)
    if data.get("metric", "success") != "expert" and data.get("expert"):
        names = ", ".join(f"expert.{k}" for k in data["expert"])
        raise fail(f"{names}: only with --metric expert (or metric: expert in the config)")
    try:
        config = validate_eval_config(data, source)
    except ConfigError as e:
        raise fail(error_line(e)) from None
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    t0 = time.monotonic()
    try:
        run = run_and_report(config, out, console=console)
    except EvalAbortedError as e:
        typer.echo(f"error: {error_line(e)}", err=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted; rerun the same command to resume from {out}/episodes.jsonl", err=True
        )
        raise typer.Exit(code=130) from None
    if config.metric == "expert":
        console.print(
            f"{len(run.states)} states, {run.ran} scores run, {run.skipped} resumed in "
            f"{time.monotonic() - t0:.0f}s -> {out}/report.md"
        )
        return
    console.print(
        f"{run.ran} episodes run, {run.skipped} resumed, {run.errors} errors in "
        f"{time.monotonic() - t0:.0f}s -> {out}/report.md"
    )
    failed = _all_errored(run)
    if failed:
        # nothing was measured: a script or CI job must not read the report as a result
        typer.echo(
            f"error: all {failed} episodes errored ({run.episodes_path}: its error field "
            "says why per episode); nothing was measured",
            err=True,
        )
        raise typer.Exit(code=1)


def _all_errored(run: EvalRun) -> int:
    """The number of episodes of ``run`` when every one is an error
    episode, else 0: the newest record of each episode counts, resumed ones included."""
    newest = {r.key: r for r in run.records}
    results = [newest[j.key] for j in run.jobs if j.key in newest]
    if results and all(r.error is not None for r in results):
        return len(results)
    return 0
