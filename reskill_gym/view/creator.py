"""The Creator page's data: every creator pass, what it read, decided, proposed and why.

Exports ``creator_payload``.

A pass is pieced together from three records, whichever the run kept:

- ``events.jsonl``: ``creator_submitted`` (the step it started, reservoir size), then its
  outcome - ``candidate_committed`` (the proposal, its operations and cost),
  ``creator_result`` / ``creator_failed`` (why nothing came of it);
- the library history: the committed version's creator record (assertions with their
  pass/fail counts and example episodes, the verifier's verdict per skill, the rationale);
- the pass artifacts (``creator/step_<N>/``, written when ``creator.artifacts_dir`` is set:
  sampled reservoir groups, analyses, insight clusters, assertions before and after, the
  diagnosis, recommendations, each authoring try with the verifier's feedback, the result).
  Files are sent as text (JSON parsed), each cut at ``MAX_ARTIFACT_BYTES``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reskill_gym import safe_files
from reskill_gym.view.sources import RunFolder

__all__ = ["creator_payload"]

MAX_ARTIFACT_BYTES = 256 * 1024
_STEP_DIR = re.compile(r"^step_(\d{6,})$")
_ARTIFACT = re.compile(r"^[0-9A-Za-z_.-]{1,120}$")


def _artifacts(run: RunFolder) -> dict[int, list[dict[str, Any]]]:
    """step -> the pass folder's files (name, size, content or parsed JSON)."""
    root = run.creator_dir
    out: dict[int, list[dict[str, Any]]] = {}
    if root is None:
        return out
    # links and FIFOs in the creator folder are left out (never followed, never opened)
    for e in safe_files.list_folder(root, links="skip", special="skip"):
        m = _STEP_DIR.match(e.name)
        if not m or e.kind != "folder":
            continue
        files = []
        for fe in safe_files.list_folder(e.path, links="skip", special="skip"):
            f = fe.path
            if not _ARTIFACT.match(f.name) or fe.kind != "file":
                continue
            size = f.stat().st_size
            with safe_files.open_regular(f) as fh:
                raw = fh.read(MAX_ARTIFACT_BYTES)
            text = raw.decode("utf-8", "replace")
            item: dict[str, Any] = {"name": f.name, "size": size, "truncated": size > len(raw)}
            if f.suffix == ".json" and size <= MAX_ARTIFACT_BYTES:
                try:
                    item["json"] = json.loads(text)
                except ValueError:
                    item["text"] = text
            else:
                item["text"] = text
            files.append(item)
        out[int(m.group(1))] = files
    return out


def _creator_records(run: RunFolder) -> dict[str, dict[str, Any]]:
    """version -> the creator record its history entry carries."""
    lib = run.library_dir
    if lib is None:
        return {}
    from reskill_gym.skills import SkillLibrary

    out = {}
    for e in SkillLibrary(lib).history():
        creator = e.extra.get("creator") if isinstance(e.extra, dict) else None
        if e.kind == "commit" and e.version is not None and isinstance(creator, dict):
            out[e.version] = {"reason": e.reason, "proposed_by": e.proposed_by, **creator}
    return out


def creator_payload(run: RunFolder) -> dict[str, Any]:
    """Every pass in order: submitted step, outcome, proposal, assertions, verdicts, artifacts."""
    events = run.events.rows()
    records = _creator_records(run)
    artifacts = _artifacts(run)
    passes: list[dict[str, Any]] = []
    open_pass: dict[str, Any] | None = None
    outcomes = {"candidate_committed", "creator_result", "creator_failed"}
    for e in events:
        kind, step = e.get("kind"), e.get("step")
        raw = e.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind == "creator_submitted":
            open_pass = {"submitted": step, "message": str(e.get("message", ""))}
            passes.append(open_pass)
        elif kind in outcomes:
            if open_pass is None or "outcome" in open_pass:
                open_pass = {"submitted": None}
                passes.append(open_pass)
            open_pass.update(
                {
                    "outcome": kind,
                    "finished": step,
                    "result": str(e.get("message", "")),
                    "data": data,
                }
            )
            candidate = data.get("candidate")
            if isinstance(candidate, str):
                open_pass["candidate"] = candidate
                open_pass["record"] = records.get(candidate)
    for p in passes:
        step = p.get("submitted")
        p["artifacts"] = artifacts.pop(step, []) if isinstance(step, int) else []
    for step, files in sorted(artifacts.items()):  # passes the events do not mention
        passes.append({"submitted": step, "outcome": None, "artifacts": files})
    passes.sort(key=lambda p: (p.get("submitted") is None, p.get("submitted") or 0))
    return {"passes": passes}
