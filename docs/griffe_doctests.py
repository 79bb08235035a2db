"""Griffe extension of the documentation site: doctests render as code.

The project's docstrings carry runnable examples (``pytest --doctest-modules`` runs them) as
bare ``>>>`` lines in the prose, as the standard library does. Markdown would render those
as paragraphs, and read ``[...]`` outputs as links; this extension fences each bare doctest
block (its ``>>>`` and ``...`` lines and the expected output up to the next blank line) as
``pycon`` code before mkdocstrings renders the docstring. Examples already inside a Google
``Examples:`` section are indented and left alone.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every unindented doctest block fenced as ``pycon`` code (a doctest
    here would be read as a doctest of its own: ``tests/test_docs.py`` checks it)."""
    out: list[str] = []
    in_block = False
    fence = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        if not fence and not in_block and line.startswith(">>>"):
            out.append("```pycon")
            in_block = True
        elif in_block and not line.strip():
            out.append("```")
            in_block = False
        out.append(line)
    if in_block:
        out.append("```")
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    """Fence the bare doctests of every docstring (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
