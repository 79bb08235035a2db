"""``reskill env ...``: the registered environments and their contract.

Exports ``env_app`` (a Typer app attached to ``reskill`` as ``env``) and ``parse_env_kwargs``.

``reskill env list`` prints every registered env (built-ins and ``reskill_gym.envs`` plugins)
with its Gymnasium id; a plugin that failed to load is listed with its one-line error.
``reskill env check NAME|GYM_ID`` runs :func:`~reskill_gym.envs.contract.check_env_contract`
and prints one line per piece (exit 1 when a required piece is missing).
"""

from __future__ import annotations

import json
from typing import Any

import typer

__all__ = ["env_app", "parse_env_kwargs"]

env_app = typer.Typer(
    help="Environments: list the registered ones, check one against the contract.",
    no_args_is_help=True,
    add_completion=False,
)


@env_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every registered env: name, Gymnasium id, what it is."""
    from reskill_gym.envs.registration import plugin_errors, specs
    from reskill_gym.safe_text import terminal_text

    rows = [{"name": s.name, "gym_id": s.gym_id, "description": s.description} for s in specs()]
    broken = plugin_errors()
    if as_json:
        typer.echo(json.dumps({"envs": rows, "failed_plugins": broken}, indent=2))
        return
    for r in rows:
        typer.echo(terminal_text(f"{r['name']:<14} {r['gym_id']:<28} {r['description']}"))
    for name, msg in broken.items():
        typer.echo(terminal_text(f"{name:<14} (failed) {msg}"))


def parse_env_kwargs(text: str | None, option: str = "--env-kwargs") -> dict[str, Any]:
    """A JSON object of env keyword arguments; a ``typer.BadParameter`` otherwise.

    >>> parse_env_kwargs('{"max_turns": 5}')
    {'max_turns': 5}
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise typer.BadParameter(f"not JSON ({e})", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("give a JSON object", param_hint=option)
    return value


@env_app.command("check")
def check_cmd(
    env: str = typer.Argument(..., help="A registered env name, or any Gymnasium id."),
    env_kwargs: str = typer.Option(
        None,
        "--env-kwargs",
        help="Env keyword arguments as JSON, e.g. '{\"max_turns\": 10}'; for a Gymnasium id the "
        "adapter's options: task_key, actions_key, won_key, obs_key, env_kwargs, ...",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check an env against what train, evolve, eval and veRL read; one line per piece."""
    from reskill_gym.envs.contract import check_env_contract
    from reskill_gym.safe_text import terminal_text

    lines = check_env_contract(env, parse_env_kwargs(env_kwargs))
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"piece": c.piece, "ok": c.ok, "required": c.required, "message": c.message}
                    for c in lines
                ],
                indent=2,
            )
        )
    else:
        for c in lines:
            typer.echo(terminal_text(c.render(), one_line=True))
    if any(c.required and not c.ok for c in lines):
        raise typer.Exit(code=1)
