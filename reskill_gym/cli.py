"""The ``reskill`` command line.

Sub-commands live next to the concept they drive and are attached here; each attach
imports its module lazily enough that ``reskill --help`` stays fast.

Errors: bad input (a bad skill folder or library, a tampered store, an invalid YAML file,
a path that is a file where a folder is needed, bytes that are not UTF-8, ...) ends any
command with one line ``error: ...`` on stderr and exit code 2, never a Python traceback
(``-v`` logs the traceback at debug level). Every log line passes through
``reskill_gym.redaction.RedactingFilter``, so credentials never reach the terminal or a
log file.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["app", "main", "user_errors"]


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is bad": reported as ``error: ...``, exit code 2.

    A function (not a constant) so that ``reskill --help`` does not import the skills
    package.
    """
    from reskill_gym.envs.registration import EnvPluginError, UnknownEnvError
    from reskill_gym.llm.errors import LLMConfigError
    from reskill_gym.runfolder import ConfigError
    from reskill_gym.safe_files import UnsafeFileError
    from reskill_gym.skills.errors import LibraryError, SkillError
    from reskill_gym.yaml_loading import YAMLLoadError

    return (
        ConfigError,
        LLMConfigError,
        UnknownEnvError,
        EnvPluginError,
        UnsafeFileError,
        SkillError,
        LibraryError,
        YAMLLoadError,
        UnicodeError,
        FileNotFoundError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )


def _one_line(exc: BaseException) -> str:
    """The error as one terminal-safe line: redacted, clipped, no control characters."""
    from reskill_gym.safe_text import error_line

    return error_line(exc)


class _ReskillGroup(TyperGroup):
    """The root group: bad input that escaped a command becomes one ``error:`` line, exit 2."""

    # ``ctx`` is typer's click Context: click's own in older typer releases, typer's vendored
    # copy of click in newer ones, so no single import names it for every supported typer.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, user_errors()):
                raise
            logging.getLogger(__name__).debug("%s", type(exc).__name__, exc_info=True)
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(code=2) from None


# OpenMP threads (torch, llama.cpp) spin while they wait by default; on a shared or loaded
# machine that made in-process scoring ~20x slower (benchmarks/perf/llm_server_turn.py:
# 54.7 vs 2.6 s per turn). Set before any command imports torch; an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = typer.Typer(
    name="reskill",
    help="Skill-policy co-evolution for agentic RL.",
    no_args_is_help=True,
    add_completion=False,
    cls=_ReskillGroup,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Debug logging, including one line per HTTP request."
    ),
) -> None:
    from reskill_gym.llm.httplog import set_http_logging
    from reskill_gym.redaction import install_log_redaction

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()
    set_http_logging(verbose)


@app.command()
def version() -> None:
    """Print the package version."""
    from reskill_gym import __version__

    typer.echo(__version__)


# --- sub-command groups (one line each; keep this section sorted) ---
from reskill_gym.creator.commands import creator_app  # noqa: E402
from reskill_gym.envs.commands import env_app  # noqa: E402
from reskill_gym.evaluation.commands import eval_command  # noqa: E402
from reskill_gym.evolve import evolve_command  # noqa: E402
from reskill_gym.report import report_command  # noqa: E402
from reskill_gym.run_export import export_command  # noqa: E402
from reskill_gym.skills.commands import skills_app  # noqa: E402

app.add_typer(creator_app, name="creator")
app.add_typer(env_app, name="env")
app.command("eval")(eval_command)
app.command("evolve")(evolve_command)
app.command("export")(export_command)
app.command("report")(report_command)
app.add_typer(skills_app, name="skills")


def _attach_plugins() -> None:
    """Attach commands that adapters register under the ``reskill_gym.cli`` entry points.

    The core never imports an adapter by name (adapters depend on the core, not the
    reverse): ``reskill verl ...`` (a command group) arrives this way from ``reskill_verl``
    and ``reskill train`` (a command) from ``reskill_local``.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="reskill_gym.cli"):
        try:
            target = ep.load()
            if isinstance(target, typer.Typer):
                app.add_typer(target, name=ep.name)
            else:
                app.command(ep.name)(target)
        except Exception as exc:  # a broken optional adapter must not break the core CLI
            logging.getLogger(__name__).warning("reskill %s unavailable: %s", ep.name, exc)


_attach_plugins()


def main() -> None:
    """Console-script entry point."""
    app()
