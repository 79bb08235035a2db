"""`reskill view` in a real browser: Debian's headless Chromium driven by Playwright against the
real command (`reskill view --port 0`, uvicorn on a loopback port) and against an export
opened from a file:// URL.

Checked: every page renders without a console error or a CSP violation, the episode filters
narrow the table, the episode view shows the fired skill's text at the version the episode
saw, XSS payloads render as text and never run, and the export works offline.
``RESKILL_VIEW_SCREENSHOTS=<folder>`` also saves a PNG of each page there (how the docs'
images are made).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

RESKILL = str(Path(sys.executable).parent / "reskill")

playwright_api = pytest.importorskip("playwright.sync_api")
from reskill_gym.testing.browser import CHROMIUM, launch_chromium  # noqa: E402

pytest.importorskip("starlette")
if not CHROMIUM.is_file():
    pytest.skip(
        "Debian's chromium is not installed (make setup installs it)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(evolve_run: Path, hostile_run: Path, eval_run: Path) -> Iterator[str]:
    """`reskill view` as a user starts it; yields its URL."""
    proc = subprocess.Popen(
        [RESKILL, "view", str(evolve_run), str(hostile_run), str(eval_run), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Page:
    """A page that records console errors, page errors and dialogs (alert = an XSS ran)."""

    def __init__(self, browser: object) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))

    def open(self, url: str, shot: str | None = None) -> object:
        self.page.goto("about:blank")  # a hash-only change would not reload the app
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready='1'][data-rendered='1']")
        folder = os.environ.get("RESKILL_VIEW_SCREENSHOTS")
        if shot and folder:
            self.page.screenshot(path=str(Path(folder) / f"view-{shot}.png"))
        return self.page

    def close(self) -> None:
        self.page.close()


def test_every_page_loads_clean(browser: object, server: str) -> None:
    p = Page(browser)
    try:
        page = p.open(server + "#/run", "run")
        assert page.locator("canvas").count() >= 4  # the curves (uPlot draws on canvas)
        assert "Version tests: evolve" in page.inner_text("main")
        page = p.open(server + "#/episodes/0", "episodes")
        assert page.locator("table.episodes tbody tr").count() == 24
        page = p.open(server + "#/library/0", "library")
        assert page.locator("svg.graph circle").count() >= 2
        page = p.open(server + "#/creator/0", "creator")
        assert "pass at step 0" in page.inner_text("main")
        page = p.open(server + "#/eval/2", "eval")
        assert "Paired difference vs no-skills" in page.inner_text("main")
        assert p.errors == []
    finally:
        p.close()


def test_filters_narrow_the_table(browser: object, server: str) -> None:
    p = Page(browser)
    try:
        page = p.open(server + "#/episodes/0")
        rows = page.locator("table.episodes tbody tr")
        assert rows.count() == 24
        page.select_option("select[name=arm]", "candidate")
        n_candidate = rows.count()
        assert 0 < n_candidate < 24
        assert all(t == "candidate" for t in rows.locator("td:nth-child(3)").all_inner_texts())
        page.select_option("select[name=success]", "won")
        assert all(t == "won" for t in rows.locator("td:nth-child(7)").all_inner_texts())
        assert rows.count() <= n_candidate
        page.fill("input[name=step_min]", "2")
        page.press("input[name=step_min]", "Enter")
        page.locator("input[name=step_min]").dispatch_event("change")
        assert all(t == "2" for t in rows.locator("td:nth-child(2)").all_inner_texts())
        assert "arm=candidate" in page.url  # the filter is in the URL: a link reproduces it
        page.click("text=clear")
        assert rows.count() == 24
        assert p.errors == []
    finally:
        p.close()


def test_episode_view_shows_fired_skill_text(
    browser: object, server: str, evolve_run: Path
) -> None:
    from reskill_gym.step_episodes import StepEpisodes

    log = StepEpisodes(evolve_run)
    n, entry = next(
        (i, e) for i, e in enumerate(log.entries()) if e.arm == "candidate" and e.skills
    )
    sid = entry.skills[0]
    text = log.skill_text(entry.step, sid)
    assert text
    p = Page(browser)
    try:
        page = p.open(server + f"#/episode/0/{n}", "episode")
        chip = page.locator(".chip.fired", has_text=sid).first
        chip.click()
        body = page.locator(f"details.skilltext[id='skill-{sid}'] pre")
        assert body.is_visible()
        first_line = next(line for line in text.splitlines() if line.strip() and line != "---")
        assert first_line in body.inner_text()
        assert "diff with #" in page.inner_text("main")
        page.click("text=/diff with #/")
        page.wait_for_selector("table.diff")
        p.open(page.url, "diff")
        assert p.errors == []
    finally:
        p.close()


def test_xss_strings_stay_inert(browser: object, server: str, xss: tuple[str, ...]) -> None:
    p = Page(browser)
    try:
        for route in (
            "#/run",
            "#/episodes/1",
            "#/episode/1/0",
            "#/diff/1/0/1",
            "#/library/1",
            "#/creator/1",
        ):
            page = p.open(server + route)
            for d in page.locator("details").all()[:40]:
                d.evaluate("e => e.open = true")
            assert page.evaluate("window.__xss") is None, route
            assert (
                page.locator("main script, main img, main svg:not(.graph), main iframe").count()
                == 0
            ), route
        page = p.open(server + "#/episode/1/0")
        text = page.inner_text("main")
        assert xss[0] in text and xss[1] in text  # shown, as text
        assert p.errors == []
    finally:
        p.close()


def test_export_opens_from_a_file_url(
    browser: object, evolve_run: Path, hostile_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "share.html"
    res = subprocess.run(
        [RESKILL, "view", str(evolve_run), str(hostile_run), "--export", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert re.search(r"(src|href)=[\"']?https?:", out.read_text()) is None  # nothing to fetch
    p = Page(browser)
    requests: list[str] = []
    p.page.on("request", lambda r: requests.append(r.url))
    try:
        page = p.open(out.as_uri() + "#/run")
        assert page.locator("canvas").count() >= 4
        page = p.open(out.as_uri() + "#/episodes/0")
        assert page.locator("table.episodes tbody tr").count() == 24
        page.locator("table.episodes tbody tr").first.click()
        page.wait_for_selector(".turn")
        page = p.open(out.as_uri() + "#/episode/1/0")
        assert page.evaluate("window.__xss") is None and xss_free(page)
        assert p.errors == []
        assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests
    finally:
        p.close()


def xss_free(page: object) -> bool:
    return page.locator("main script, main img, main iframe").count() == 0  # type: ignore[attr-defined]
