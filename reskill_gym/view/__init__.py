"""``reskill view``: a read-only web app over run folders, and a self-contained HTML export.

Exports ``create_app``, ``ViewerState``, ``export_html``, ``open_runs`` and ``RunFolder``.

Nothing else in the project imports this package (``reskill view`` arrives through the
``reskill_gym.cli`` entry point), so the core stays free of its dependencies (the ``view``
extra: Starlette, uvicorn, Jinja2). Modules, one page or concern each: ``sources`` (which
folders, what kind, files followed live), ``overview`` (Run page), ``episodes`` (Episodes
page and the episode view), ``library``, ``creator``, ``evaluation`` (their pages), ``app``
(routes, security headers, the page shell), ``export`` (the single-file export), ``commands``
(the CLI). The browser side is ``static/app.js`` (plain JavaScript, DOM text nodes only) with
uPlot (``static/vendor``, MIT) for the charts; nothing is fetched from a network.
"""

from __future__ import annotations

from reskill_gym.view.app import ViewerState, create_app
from reskill_gym.view.export import export_html
from reskill_gym.view.sources import RunFolder, open_runs

__all__ = ["create_app", "ViewerState", "export_html", "open_runs", "RunFolder"]
