"""``reskill view RUN --export FILE.html``: one self-contained HTML file for sharing.

Exports ``export_html``.

The file is the viewer's own page with every asset inlined (the app script, uPlot, the
styles) and the answers of the API calls its pages make embedded as one JSON island
(``<``, ``>`` and ``&`` escaped, so no record can close the element). It loads nothing: its
Content-Security-Policy allows only the inlined script and styles by hash and no
connections, so it opens from a ``file://`` URL, offline, and untrusted text in it stays
text exactly as on the server.

Episodes are the heavy part (a 50-turn ALFWorld episode is tens of KB of JSON), so an
export carries the newest ``max_episodes`` of each run (every episode when there are
fewer) with their paired diffs; the page says how many of how many are included.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reskill_gym.atomic import atomic_write_text
from reskill_gym.view.app import ViewerState, render_shell
from reskill_gym.view.sources import RunFolder

__all__ = ["export_html"]

logger = logging.getLogger(__name__)


def _run_api(state: ViewerState, i: int, max_episodes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for what in ("overview", "library", "creator", "eval"):
        out[f"/api/run/{i}/{what}"] = state.api(f"/api/run/{i}/{what}")
    episodes = state.runs[i].episodes
    if episodes is None:
        return out
    index = episodes.rows()
    keep = index["rows"][-max_episodes:] if max_episodes > 0 else []
    kept = {row[0] for row in keep}
    out[f"/api/run/{i}/episodes"] = {
        **index,
        "rows": keep,
        "total": len(keep),
        "all": index["total"],
    }
    for row in keep:
        ep = episodes.episode(row[0])
        ep["pairs"] = [p for p in ep["pairs"] if p["index"] in kept]
        out[f"/api/run/{i}/episode/{row[0]}"] = ep
        for p in ep["pairs"]:
            out[f"/api/run/{i}/diff/{row[0]}/{p['index']}"] = episodes.diff(row[0], p["index"])
    return out


def export_html(
    runs: Sequence[RunFolder], dest: str | os.PathLike[str], *, max_episodes: int = 200
) -> Path:
    """Write the self-contained page of ``runs`` to ``dest`` (atomically); returns the path."""
    state = ViewerState(runs)
    api: dict[str, Any] = {"/api/runs": state.api("/api/runs")}
    for i in range(len(state.runs)):
        api.update(_run_api(state, i, max_episodes))
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    title = ", ".join(r.name for r in runs)
    html = render_shell(
        mode="export", title=title, inline=True, data={"api": api, "created": created}
    )
    return atomic_write_text(Path(dest), html)
