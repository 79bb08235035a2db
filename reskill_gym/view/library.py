"""The Library page's data: the version graph, each skill's history with text diffs, trigger rates.

Exports ``library_payload``.

Read from the run's library (its history and stored versions through ``SkillLibrary``'s
read side: never the working copy, never a lock): every ``init``/``commit`` entry is a node with its
parent, step, reason, operations and the creator's record (assertions, verification); the
version-test decision logged for it (``event`` entries) adds the outcome and the posterior
evidence (Beta posteriors, counts, P(best) per step). Skill texts per version come from the
stored versions (content-addressed, so cached for the server's life); a pruned version keeps
its node and lineage but has no texts. Trigger rates are the share of a version's recorded
episodes whose turns showed the skill (from the episode index, no episode is read).
"""

from __future__ import annotations

import difflib
import logging
from collections import defaultdict
from typing import Any

from reskill_gym.view.episodes import EPISODE_COLUMNS, EpisodeSource
from reskill_gym.view.sources import RunFolder

__all__ = ["library_payload"]

logger = logging.getLogger(__name__)

_TEXTS: dict[tuple[str, str], dict[str, str] | None] = {}


def _version_texts(lib: Any, version: str) -> dict[str, str] | None:
    """name -> SKILL.md text of a stored version (None: pruned or unreadable); cached."""
    key = (str(lib), version)
    if key not in _TEXTS:
        from reskill_gym.skills import SkillLibrary

        try:
            view = SkillLibrary(lib).view(version)
            _TEXTS[key] = {s.name: view.text(s.name) for s in view.skills}
        except Exception as exc:
            logger.info("%s: version %s unreadable (%s)", lib, version, exc)
            _TEXTS[key] = None
    return _TEXTS[key]


def _trigger_rates(episodes: EpisodeSource | None) -> dict[str, dict[str, float]]:
    """version -> skill name -> share of that version's episodes that showed it."""
    if episodes is None:
        return {}
    data = episodes.rows()
    v_i, s_i = EPISODE_COLUMNS.index("version") + 1, EPISODE_COLUMNS.index("skills") + 1
    names = [s.split("@", 1)[0] for s in data["skills"]]
    total: dict[str, int] = defaultdict(int)
    fired: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in data["rows"]:
        version = row[v_i]
        if not isinstance(version, str):
            continue
        total[version] += 1
        for name in {names[i] for i in row[s_i]}:
            fired[version][name] += 1
    return {
        v: {name: n / total[v] for name, n in sorted(fired[v].items())} | {"_episodes": total[v]}
        for v in total
    }


def library_payload(run: RunFolder, episodes: EpisodeSource | None) -> dict[str, Any]:
    """Versions (graph nodes), HEAD moves, per-skill histories and trigger rates."""
    lib = run.library_dir
    if lib is None:
        return {"available": False}
    from reskill_gym.skills import SkillLibrary

    library = SkillLibrary(lib)  # the read side only: no lock, no recovery
    entries = library.history()
    stored = set(library.versions())
    head = library.head
    nodes: dict[str, dict[str, Any]] = {}
    moves: list[dict[str, Any]] = []
    for e in entries:
        if e.kind in ("init", "commit") and e.version is not None:
            extra = e.extra if isinstance(e.extra, dict) else {}
            nodes.setdefault(
                e.version,
                {
                    "version": e.version,
                    "parent": e.parent,
                    "step": e.step,
                    "time": e.time,
                    "reason": e.reason,
                    "proposed_by": e.proposed_by,
                    "operations": [f"{o.op} {o.name}" for o in e.operations],
                    "creator": extra.get("creator"),
                    "test": None,
                    "head_moved": e.head_moved,
                },
            )
        elif e.kind == "event" and isinstance(e.extra.get("version_test"), dict):
            decision = e.extra["version_test"]
            for cand in decision.get("candidates") or []:
                if isinstance(cand, str) and cand in nodes:
                    nodes[cand]["test"] = decision
        elif e.kind in ("checkout", "rollback") and e.version is not None:
            moves.append({"version": e.version, "step": e.step, "reason": e.reason, "time": e.time})
    for node in nodes.values():
        node["stored"] = node["version"] in stored
        test = node["test"]
        if node["version"] == head:
            node["status"] = "head"
        elif test is not None:
            node["status"] = "accepted" if test.get("accepted") == node["version"] else "rejected"
        else:
            node["status"] = "untested" if node["parent"] is not None else "initial"
    # per-skill history: walk versions in commit order, diff each change against the last text
    skills: dict[str, list[dict[str, Any]]] = defaultdict(list)
    last: dict[str, str] = {}
    for node in nodes.values():
        texts = _version_texts(lib, node["version"]) if node["stored"] else None
        if texts is None:
            continue
        parent_texts = (
            _version_texts(lib, node["parent"])
            if node["parent"] is not None and node["parent"] in stored
            else None
        )
        base = parent_texts if parent_texts is not None else last
        for name in sorted(set(texts) | set(base)):
            old, new = base.get(name), texts.get(name)
            if old == new:
                continue
            op = "add" if old is None else "delete" if new is None else "modify"
            diff = list(
                difflib.unified_diff(
                    (old or "").splitlines(),
                    (new or "").splitlines(),
                    fromfile=f"{node['parent'] or '-'}/{name}",
                    tofile=f"{node['version']}/{name}",
                    lineterm="",
                )
            )
            skills[name].append(
                {"version": node["version"], "step": node["step"], "op": op, "diff": diff}
            )
        last = texts
    head_texts = _version_texts(lib, head) if head is not None and head in stored else None
    return {
        "available": True,
        "head": head,
        "versions": list(nodes.values()),
        "moves": moves,
        "skills": dict(sorted(skills.items())),
        "head_texts": head_texts or {},
        "trigger_rates": _trigger_rates(episodes),
    }
