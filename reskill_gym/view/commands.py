"""``reskill view RUN [RUN ...]``: serve the viewer on a loopback port, or ``--export`` a file.

Exports ``view_command``.

Attached to ``reskill`` by the ``reskill_gym.cli`` entry point, so the core command line never
imports this package: Starlette, uvicorn and Jinja2 (the ``view`` extra) load only when the
command runs. The server binds 127.0.0.1 unless ``--host`` names another address *and*
``--allow-remote`` says so (the run's episodes, prompts and skills would be readable by
anyone who can reach the port); it prints the URL and serves until Ctrl-C.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

import typer

__all__ = ["view_command"]

logger = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def view_command(
    runs: list[Path] = typer.Argument(
        ...,
        help="Run folders: `reskill train`/`evolve` runs, a veRL run's "
        "<default_local_dir>/reskill, `reskill eval --out` folders (success or expert).",
    ),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0: any free one)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (loopback unless --allow-remote)."
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a non-loopback --host (anyone who reaches it reads the runs).",
    ),
    export: Path | None = typer.Option(
        None, "--export", dir_okay=False, help="Write one self-contained HTML file and exit."
    ),
    export_episodes: int = typer.Option(
        200, "--export-episodes", min=0, help="Newest episodes per run put in an --export file."
    ),
) -> None:
    """Browse runs in a local web app: curves, episodes turn by turn, library, creator, eval."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise _fail(
            f"reskill view needs the view extra: pip install 'reskill-gym[view]' ({exc})"
        ) from None
    from reskill_gym.view.sources import ViewerInputError, open_runs

    try:
        folders = open_runs(runs)
    except ViewerInputError as exc:
        raise _fail(str(exc)) from None
    if export is not None:
        from reskill_gym.view.export import export_html

        path = export_html(folders, export, max_episodes=export_episodes)
        typer.echo(f"view: wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opens offline)")
        return
    if not _is_loopback(host) and not allow_remote:
        raise _fail(
            f"--host {host} is not a loopback address; the runs would be readable from the "
            "network. Add --allow-remote if that is what you want."
        )
    from reskill_gym.view.app import ViewerState, create_app

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _fail(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (try --port 0)"
        ) from None
    bound = sock.getsockname()[1]
    hosts = ["*"] if allow_remote else ["127.0.0.1", "localhost", "::1", host]
    app = create_app(ViewerState(folders), allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"view: {len(folders)} run(s) at http://{shown}:{bound}/  (Ctrl-C to stop)", err=False
    )
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
