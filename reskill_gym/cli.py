"""The ``reskill`` command line.

Sub-commands live next to the concept they drive and are attached here; each attach
imports its module lazily enough that ``reskill --help`` stays fast.
"""

from __future__ import annotations

import logging

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="reskill",
    help="Skill-policy co-evolution for agentic RL.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def version() -> None:
    """Print the package version."""
    from reskill_gym import __version__

    typer.echo(__version__)


# --- sub-command groups (one line each; keep this section sorted) ---
from reskill_gym.creator.commands import creator_app  # noqa: E402
from reskill_gym.evaluation.commands import eval_command  # noqa: E402
from reskill_gym.skills.commands import skills_app  # noqa: E402
from reskill_gym.training import report_command, train_command  # noqa: E402

app.add_typer(creator_app, name="creator")
app.command("eval")(eval_command)
app.command("report")(report_command)
app.add_typer(skills_app, name="skills")
app.command("train")(train_command)


def _attach_plugins() -> None:
    """Attach sub-commands that adapters register under the ``reskill_gym.cli`` entry points.

    The core never imports an adapter by name (adapters depend on the core, not the
    reverse); ``reskill verl ...`` arrives this way from ``reskill_verl``.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="reskill_gym.cli"):
        try:
            app.add_typer(ep.load(), name=ep.name)
        except Exception as exc:  # a broken optional adapter must not break the core CLI
            logging.getLogger(__name__).warning("reskill %s unavailable: %s", ep.name, exc)


_attach_plugins()


def main() -> None:
    """Console-script entry point."""
    app()
