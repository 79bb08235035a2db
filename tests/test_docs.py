"""The README and the documentation site's sources.

The site itself is built by ``make docs`` (``mkdocs build --strict``, run by CI); these
tests hold what a build cannot see: the README stays a short front door whose links resolve,
prose carries no commit hashes or machine loads (numbers live in ``benchmarks/RESULTS.md``),
and the generated configuration reference covers every field of every run config with its
help text.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def test_readme_is_a_short_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    for command in ("make demo", "make test", "gym.make", "reskill verl train", "reskill evolve"):
        assert command in text
    assert "reskill eval " in text


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing


@pytest.mark.parametrize("path", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))])
def test_no_commit_hashes_or_machine_loads_in_prose(path: str) -> None:
    file = ROOT / path if path == "README.md" else DOCS / path
    prose = _prose(file.read_text(encoding="utf-8"))
    assert not re.search(r"\bcommit [0-9a-f]{7,40}\b", prose)
    assert not re.search(r"\bload (average )?(~|of )?\d", prose)


def test_config_reference_has_every_field_with_its_help() -> None:
    hooks = _load("hooks")
    reference = hooks.config_reference()
    for section, spec in hooks.CONFIG_SCHEMAS:
        schema = hooks._load(spec)
        assert f"### `{section}`" in reference
        for name, _type, _default, help_text in hooks._rows(schema):
            assert help_text, f"{spec}.{name} has no description"
            assert f"| `{name}` |" in reference
    # the run config's sections are all documented
    from reskill_local.train import _SCHEMAS

    documented = {section for section, _ in hooks.CONFIG_SCHEMAS}
    assert set(_SCHEMAS) <= documented


def test_index_page_is_the_readme_with_site_links() -> None:
    hooks = _load("hooks")

    class _File:
        src_uri = "index.md"

    class _Page:
        file = _File()

    index = hooks.on_page_markdown("placeholder", page=_Page())
    assert index.startswith("# reskill-gym")
    assert "](docs/" not in index
    assert "](install.md)" in index


def test_bare_doctests_are_fenced_and_section_examples_left_alone() -> None:
    fence = _load("griffe_doctests").fence_doctests
    text = "Sum.\n\n>>> [1] + [2]\n[1, 2]\n\nExamples:\n    >>> 1\n    1\n"
    assert fence(text) == (
        "Sum.\n\n```pycon\n>>> [1] + [2]\n[1, 2]\n```\n\nExamples:\n    >>> 1\n    1\n"
    )
    assert fence("```\n>>> x\n```") == "```\n>>> x\n```"
    assert fence(">>> 1\n1") == "```pycon\n>>> 1\n1\n```"
