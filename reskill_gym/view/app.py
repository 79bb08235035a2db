"""The viewer's web app: one page shell, its static assets, and a read-only JSON API per run.

Exports ``ViewerState``, ``create_app``, ``render_shell``, ``ASSETS`` and ``to_json``.

Built on Starlette (a small ASGI framework; served by uvicorn) and Jinja2 (the page shell,
autoescaped). The browser side (``static/app.js``) renders every page from the JSON below
with DOM text nodes only (never ``innerHTML``), and charts with the vendored uPlot.

Routes (GET/HEAD only; anything else is 405, an unknown path 404)::

    /                                   the page shell
    /static/<name>                      one of ASSETS (a fixed list read from the package)
    /api/runs                           the runs given on the command line
    /api/run/<i>/overview               curves, version tests, config
    /api/run/<i>/episodes?offset&limit  index rows (step, arm, task, success, skills, ...)
    /api/run/<i>/episode/<n>            one episode with its skill texts and paired episodes
    /api/run/<i>/diff/<a>/<b>           two episodes' actions aligned
    /api/run/<i>/library                version graph, skill histories, trigger rates
    /api/run/<i>/creator                creator passes
    /api/run/<i>/eval                   evaluation conditions

Runs are addressed by their position on the command line and episodes by their index, so no
URL carries a path: nothing outside the given folders can be named, let alone served. Every
response carries a Content-Security-Policy that allows only the app's own script (an injected
``<script>`` would not run even if one slipped through), and a Host check refuses requests
for other names (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from reskill_gym.view.creator import creator_payload
from reskill_gym.view.episodes import EpisodeSource, episode_source
from reskill_gym.view.evaluation import eval_payload
from reskill_gym.view.library import library_payload
from reskill_gym.view.overview import run_overview
from reskill_gym.view.sources import RunFolder

__all__ = ["ViewerState", "create_app", "render_shell", "ASSETS", "to_json"]

#: name -> (package path, content type): the only files the server sends besides JSON.
ASSETS: dict[str, tuple[str, str]] = {
    "app.js": ("static/app.js", "text/javascript; charset=utf-8"),
    "app.css": ("static/app.css", "text/css; charset=utf-8"),
    "uPlot.iife.min.js": ("static/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "uPlot.min.css": ("static/vendor/uPlot.min.css", "text/css; charset=utf-8"),
}
SCRIPTS = ("uPlot.iife.min.js", "app.js")
STYLES = ("uPlot.min.css", "app.css")
#: Rows per ``/episodes`` request at most (the browser pages through the index).
MAX_PAGE = 20_000

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def asset_text(name: str) -> str:
    """The text of asset ``name`` (read from the installed package)."""
    rel, _ = ASSETS[name]
    return resources.files("reskill_gym.view").joinpath(rel).read_text(encoding="utf-8")


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, tuples -> lists, unknown objects -> str."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def to_json(obj: Any) -> str:
    """Strict JSON (no NaN) with ``<``, ``>`` and ``&`` escaped, safe inside a ``<script>``."""
    text = json.dumps(_clean(obj), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass
class _Run:
    folder: RunFolder
    episodes: EpisodeSource | None
    lock: threading.Lock = field(default_factory=threading.Lock)


class ViewerState:
    """The runs a viewer serves and the JSON of every API path (shared by server and export)."""

    def __init__(self, runs: Sequence[RunFolder]) -> None:
        self.runs = [_Run(r, episode_source(r)) for r in runs]

    def api(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """The payload of API ``path`` (``KeyError``: no such run, episode or route)."""
        query = query or {}
        parts = path.strip("/").split("/")
        if parts == ["api", "runs"]:
            return [r.folder.describe() for r in self.runs]
        if len(parts) < 4 or parts[:2] != ["api", "run"] or not parts[2].isdigit():
            raise KeyError(path)
        i = int(parts[2])
        if i >= len(self.runs):
            raise KeyError(path)
        run = self.runs[i]
        what, args = parts[3], parts[4:]
        if not all(a.isdigit() for a in args):
            raise KeyError(path)
        nums = [int(a) for a in args]
        with run.lock:
            if what == "overview" and not nums:
                return run_overview(run.folder)
            if what == "library" and not nums:
                return library_payload(run.folder, run.episodes)
            if what == "creator" and not nums:
                return creator_payload(run.folder)
            if what == "eval" and not nums:
                return eval_payload(run.folder)
            if run.episodes is None:
                raise KeyError(path)
            if what == "episodes" and not nums:
                offset = _int_arg(query, "offset", 0)
                limit = min(_int_arg(query, "limit", MAX_PAGE), MAX_PAGE)
                return run.episodes.rows(offset, limit)
            if what == "episode" and len(nums) == 1:
                return run.episodes.episode(nums[0])
            if what == "diff" and len(nums) == 2:
                return run.episodes.diff(nums[0], nums[1])
        raise KeyError(path)


def _int_arg(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a non-negative integer")
    return int(raw)


def render_shell(
    *,
    mode: str,
    title: str,
    inline: bool = False,
    data: Mapping[str, Any] | None = None,
) -> str:
    """The page shell: links to ``/static`` assets (server) or every asset inlined with the
    API answers embedded as a JSON island and a CSP of hashes (``inline``: the export)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reskill_gym.view", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("index.html.j2")
    scripts = [asset_text(n) for n in SCRIPTS] if inline else []
    styles = [asset_text(n) for n in STYLES] if inline else []
    csp = None
    if inline:

        def digest(text: str) -> str:
            import base64

            return (
                "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
            )

        csp = (
            "default-src 'none'; img-src data:; base-uri 'none'; form-action 'none'; "
            f"script-src {' '.join(digest(s) for s in scripts)}; "
            f"style-src {' '.join(digest(s) for s in styles)}"
        )
    return template.render(
        mode=mode,
        title=title,
        inline=inline,
        scripts=[jinja2.utils.markupsafe.Markup(s) for s in scripts],
        styles=[jinja2.utils.markupsafe.Markup(s) for s in styles],
        script_names=SCRIPTS,
        style_names=STYLES,
        csp=csp,
        data=jinja2.utils.markupsafe.Markup(to_json(data)) if data is not None else None,
    )


def create_app(
    state: ViewerState, *, allowed_hosts: Iterable[str] = ("127.0.0.1", "localhost")
) -> Any:
    """The Starlette app serving ``state`` (see the module docstring for the routes)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, Response
    from starlette.routing import Route

    title = ", ".join(r.folder.name for r in state.runs)
    shell = render_shell(mode="server", title=title)
    assets = {name: (asset_text(name), ctype) for name, (_, ctype) in ASSETS.items()}

    def page(request: Request) -> Response:
        return HTMLResponse(shell, headers=_HEADERS)

    def static(request: Request) -> Response:
        item = assets.get(request.path_params["name"])
        if item is None:
            return PlainTextResponse("not found", status_code=404, headers=_HEADERS)
        return Response(item[0], media_type=item[1], headers=_HEADERS)

    def api(request: Request) -> Response:
        try:
            payload = state.api(request.url.path, dict(request.query_params))
        except KeyError:
            return PlainTextResponse("not found", status_code=404, headers=_HEADERS)
        except ValueError as exc:
            return PlainTextResponse(f"bad request: {exc}", status_code=400, headers=_HEADERS)
        return Response(to_json(payload), media_type="application/json", headers=_HEADERS)

    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/static/{name}", static, methods=["GET", "HEAD"]),
        Route("/api/{rest:path}", api, methods=["GET", "HEAD"]),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        Middleware(GZipMiddleware, minimum_size=2048),
    ]
    return Starlette(routes=routes, middleware=middleware)
