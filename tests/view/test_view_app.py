"""The viewer's server over real run folders: every page's JSON, live following, security, and
that nothing in a run folder is ever written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from reskill_gym.runfolder import append_jsonl  # noqa: E402
from reskill_gym.step_episodes import StepEpisodes, write_step_episodes  # noqa: E402
from reskill_gym.view import ViewerState, create_app, export_html, open_runs  # noqa: E402


def _client(*runs: Path) -> TestClient:
    return TestClient(create_app(ViewerState(open_runs(runs))), base_url="http://127.0.0.1")


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` with its size and content hash (and every folder)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = (
            (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            if p.is_file()
            else (-1, "")
        )
    return out


def test_pages_of_an_evolve_run(evolve_run: Path) -> None:
    c = _client(evolve_run)
    (desc,) = c.get("/api/runs").json()
    assert desc == {"index": 0, "name": "evolve", "kind": "evolve", "env": "alfworld"}
    ov = c.get("/api/run/0/overview").json()
    assert ov["metrics"]["step"] == [0, 1, 2]
    assert ov["metrics"]["columns"]["episode/success_rate"][0] is not None
    assert "arms/candidate/success_rate" in ov["metrics"]["columns"]
    (test,) = [t for t in ov["tests"] if t["decided"] is not None]
    assert test["started"] == 0 and test["outcome"] in ("accepted", "rejected")

    idx = c.get("/api/run/0/episodes").json()
    log = StepEpisodes(evolve_run)
    assert idx["total"] == len(log.entries()) == 24
    cols = idx["columns"]
    row = idx["rows"][5]
    assert row[0] == 5 and row[1 + cols.index("step")] == log.entries()[5].step
    # paging
    page = c.get("/api/run/0/episodes?offset=20&limit=3").json()
    assert [r[0] for r in page["rows"]] == [20, 21, 22] and page["total"] == 24

    # an episode of the live test: its skills' texts at the version it saw, its other-arm pairs
    arm_i = 1 + cols.index("arm")
    n = next(r[0] for r in idx["rows"] if r[arm_i] == "candidate")
    ep = c.get(f"/api/run/0/episode/{n}").json()
    assert ep["record"]["arm"] == "candidate" and ep["record"]["turns"]
    fired = {s for t in ep["record"]["turns"] for s in t["skill_ids"]}
    assert fired and set(ep["skills"]) == fired
    assert all(v["source"] == "recorded" and "name:" in v["text"] for v in ep["skills"].values())
    assert ep["pairs"] and all(p["arm"] == "incumbent" for p in ep["pairs"])
    d = c.get(f"/api/run/0/diff/{n}/{ep['pairs'][0]['index']}").json()
    assert d["opcodes"] and (d["first_divergence"] is None or d["first_divergence"] >= 0)

    lib = c.get("/api/run/0/library").json()
    statuses = {v["version"]: v["status"] for v in lib["versions"]}
    assert statuses[lib["head"]] == "head"
    decided = [v for v in lib["versions"] if v["test"] is not None]
    assert decided and decided[0]["test"]["posteriors"] and decided[0]["creator"]["assertions"]
    assert any(c["op"] == "add" for changes in lib["skills"].values() for c in changes)
    assert lib["trigger_rates"][lib["head"]]["_episodes"] > 0

    creator = c.get("/api/run/0/creator").json()["passes"]
    assert creator[0]["submitted"] == 0 and creator[0]["outcome"] == "candidate_committed"
    assert creator[0]["record"]["verification"]
    assert [a["name"] for a in creator[0]["artifacts"]] == ["09_result.json"]
    assert c.get("/api/run/0/eval").json() == {"metric": None}


def test_eval_run_page(eval_run: Path) -> None:
    c = _client(eval_run)
    assert c.get("/api/runs").json()[0]["kind"] == "eval"
    page = c.get("/api/run/0/eval").json()
    assert page["metric"] == "success" and page["episodes"] == 12
    s = page["summary"]
    assert len(s["conditions"]) == 2 and s["baseline"] == "no-skills"
    assert s["paired"] and 0 <= s["stats"][0]["success"]["mean"] <= 1
    rows = c.get("/api/run/0/episodes").json()
    assert rows["total"] == 12
    ep = c.get("/api/run/0/episode/0").json()
    assert ep["pairs"] and ep["pairs"][0]["index"] == 1  # the other condition of the same unit


def test_live_run_is_followed(tmp_path: Path, evolve_run: Path) -> None:
    import shutil

    run = tmp_path / "live"
    shutil.copytree(evolve_run, run)
    c = _client(run)
    assert len(c.get("/api/run/0/overview").json()["metrics"]["step"]) == 3
    assert c.get("/api/run/0/episodes").json()["total"] == 24
    log = StepEpisodes(run)
    new = [log.read(e).model_copy(update={"step": 3}) for e in log.entries()[:8]]
    write_step_episodes(run, 3, new)
    append_jsonl(run / "metrics.jsonl", [{"step": 3, "episode/success_rate": 1.0}])
    assert c.get("/api/run/0/overview").json()["metrics"]["step"] == [0, 1, 2, 3]
    assert c.get("/api/run/0/episodes").json()["total"] == 32
    assert c.get("/api/run/0/episode/31").json()["record"]["step"] == 3
    # a resume truncates the logs: the viewer reads them again
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    assert c.get("/api/run/0/overview").json()["metrics"]["step"] == [0]


def test_serves_only_its_own_data(evolve_run: Path) -> None:
    c = _client(evolve_run)
    for path in (
        "/static/../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/app.py",
        "/api/run/0/../../config.yaml",
        "/api/run/1/overview",
        "/api/run/0/episode/999999",
        "/api/run/0/episode/-1",
        "/api/run/0/library/1",
        "/skills/.reskill/HEAD",
        "/config.yaml",
    ):
        r = c.get(path)
        assert r.status_code == 404, path
        assert "passwd" not in r.text and "root:" not in r.text
    assert c.get("/api/run/0/episodes?offset=x").status_code == 400
    assert c.post("/api/run/0/overview").status_code == 405
    assert c.delete("/").status_code == 405
    # DNS rebinding: another Host name is refused
    assert c.get("/api/runs", headers={"host": "evil.example:8765"}).status_code == 400
    r = c.get("/")
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_untrusted_strings_stay_data(hostile_run: Path, xss: tuple[str, ...]) -> None:
    c = _client(hostile_run)
    for path in (
        "/api/run/0/overview",
        "/api/run/0/episode/0",
        "/api/run/0/library",
        "/api/run/0/creator",
    ):
        body = c.get(path).text
        assert "<script" not in body and "<img" not in body, path  # escaped even inside JSON
        payload = json.loads(body)
        assert xss[0] in json.dumps(payload, ensure_ascii=False)  # ... and intact as data
    ep = c.get("/api/run/0/episode/0").json()
    assert ep["record"]["turns"][0]["reply"].startswith("<think><script>")
    (text,) = [v["text"] for v in ep["skills"].values()]
    assert xss[0] in text and xss[1] in text


def test_reads_never_write(
    evolve_run: Path, hostile_run: Path, eval_run: Path, tmp_path: Path
) -> None:
    before = {r: _tree(r) for r in (evolve_run, hostile_run, eval_run)}
    c = _client(evolve_run, hostile_run, eval_run)
    for i in range(3):
        for what in ("overview", "episodes", "library", "creator", "eval", "episode/0", "diff/0/1"):
            c.get(f"/api/run/{i}/{what}")
    export_html(open_runs([evolve_run, hostile_run, eval_run]), tmp_path / "x.html")
    assert {r: _tree(r) for r in before} == before


def test_the_page_script_has_no_markup_sinks() -> None:
    """Untrusted text can only become DOM text nodes: the script never parses strings as HTML
    or code (its first comment names them; the check skips comments)."""
    from reskill_gym.view.app import asset_text

    code = "\n".join(
        line for line in asset_text("app.js").splitlines() if not line.lstrip().startswith("//")
    )
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
    ):
        assert sink not in code, sink
