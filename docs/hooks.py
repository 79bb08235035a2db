"""MkDocs hooks of the documentation site (``mkdocs.yml`` names this file).

Two pages are produced from the sources instead of being written twice:

- ``index.md`` is the repository's ``README.md`` (its ``docs/`` links made site-relative),
  so the front door of the repository and of the site cannot drift apart;
- ``configuration.md`` gets, after its hand-written overview, one table per config schema
  generated from the models' field descriptions (pydantic ``Field(description=...)``): the
  help text of a field is written once, in its schema.

:func:`config_reference` is importable without MkDocs, for the tests.
"""

from __future__ import annotations

import enum
import importlib
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: (section or use, "module:Class") of every config a command reads, in reading order.
CONFIG_SCHEMAS: tuple[tuple[str, str], ...] = (
    ("run", "reskill_gym.runfolder:RunConfig"),
    ("env", "reskill_gym.runfolder:EnvConfig"),
    ("trainer", "reskill_local.grpo:GRPOConfig"),
    ("rollout", "reskill_gym.rollout.config:TurnConfig"),
    ("coevolution", "reskill_gym.coevolve:CoEvolutionConfig"),
    ("coevolution.tester", "reskill_gym.versioning.config:TesterConfig"),
    ("coevolution.creator", "reskill_gym.creator.config:CreatorConfig"),
    ("coevolution.creator.llm_options", "reskill_gym.llm.config:LLMConfig"),
    ("agent (reskill evolve)", "reskill_gym.evolve:AgentConfig"),
    ("reskill eval", "reskill_gym.evaluation.config:EvalConfig"),
    ("reskill eval --metric expert", "reskill_gym.evaluation.config:ExpertConfig"),
    ("reskill (veRL configs)", "reskill_verl.config:ReskillVerlConfig"),
    ("reskill.coevolution (veRL configs)", "reskill_verl.config:CoEvolutionSettings"),
)

_GENERATED_MARK = "<!-- generated: config reference -->"


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation)
    text = re.sub(r"\b(typing|collections\.abc|pathlib|reskill_\w+(\.\w+)*)\.", "", text)
    return text.replace("NoneType", "None")


def _value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    if hasattr(value, "model_dump"):
        return "(its own table)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(schema: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) of every field, in declaration order."""
    rows: list[tuple[str, str, str, str]] = []
    for name, info in schema.model_fields.items():  # type: ignore[attr-defined]
        if info.is_required():
            default = "(required)"
        elif info.default_factory is not None:
            default = _value(info.default_factory())  # type: ignore[call-arg]
        else:
            default = _value(info.default)
        help_text = info.description or ""
        if not help_text and default == "(its own table)":
            help_text = f"A nested section: see `{_type_name(info.annotation)}`."
        rows.append((name, _type_name(info.annotation), default, help_text))
    return rows


def config_reference() -> str:
    """Markdown: one table per schema of :data:`CONFIG_SCHEMAS` (field, type, default, help)."""
    parts: list[str] = []
    for section, spec in CONFIG_SCHEMAS:
        schema = _load(spec)
        module, name = spec.split(":")
        parts.append(f"### `{section}`\n\n`{module}.{name}`\n")
        parts.append("| field | type | default | meaning |\n|---|---|---|---|")
        for field_name, type_name, default, help_text in _rows(schema):
            parts.append(
                f"| `{field_name}` | `{_cell(type_name)}` | `{_cell(default)}` | {_cell(help_text)} |"
            )
        parts.append("")
    return "\n".join(parts)


def _readme_as_index() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(r"\]\(docs/", "](", text)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook: fill the two generated pages (see the module docstring)."""
    src = page.file.src_uri
    if src == "index.md":
        return _readme_as_index()
    if src == "configuration.md":
        if _GENERATED_MARK not in markdown:
            raise ValueError(f"configuration.md: the marker {_GENERATED_MARK!r} is missing")
        return markdown.replace(_GENERATED_MARK, config_reference())
    return markdown
