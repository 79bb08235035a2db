"""Headless Chromium for the viewer's browser tests and its scale benchmark.

Exports ``CHROMIUM``, ``CHROMIUM_FLAGS`` and ``launch_chromium``.

Debian's ``chromium`` package (``make setup`` installs it) driven by Playwright for Python:
Playwright cannot download a browser of its own here, so it is pointed at the system binary,
with the flags that make it run headless in a container without reaching any network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "launch_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def launch_chromium(playwright: Any) -> Any:
    """A Playwright ``Browser`` on Debian's chromium (``playwright``: a started
    ``sync_playwright()``)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS))
