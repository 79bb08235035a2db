"""Reading and writing ``SKILL.md`` folders in the Agent Skills format.

Exports: ``read_skill``, ``write_skill``, ``parse_skill_md``, ``render_skill_md``,
``find_skill_md``, ``spec_errors``, ``validate_skill_dir``, ``is_skill_dir``,
``METADATA_PREFIX``.

File layout we write (every value under ``metadata`` is a string, so the file stays
spec-valid and any Claude-compatible tool reads it)::

    ---
    name: heat-with-microwave
    description: Heat an object with the microwave.
    metadata:
      reskill.trigger.type: observation_pattern
      reskill.trigger.pattern: '\\bheat\\b'
      reskill.version: '2'
      reskill.created_at_step: '40'
      reskill.provenance.proposed_by: creator
      reskill.provenance.rationale: agents skipped the microwave
      reskill.provenance.parent_version: 3f2a9c01d4e5
    ---
    ## When to use
    ...
    ## Action
    ...            <- Skill.content, the injected text (<= 500 chars)
    ## Examples
    ...

Reading: YAML is parsed with PyYAML's ``BaseLoader`` (every scalar a string, as the spec's
string-to-string ``metadata`` and ``skills-ref``'s strictyaml do). A folder without
``reskill.*`` metadata is a *foreign* skill: its trigger defaults to ``retrieval`` and, if
its body has no ``## Action`` section, the whole body becomes ``content`` (no length
limit; the bundle budget caps it; its ``##`` headings become ``###`` so the text fits
in our ``## Action`` section when written back). Unknown front-matter keys, unknown metadata keys and
unknown body sections are kept and written back.

Spec validation uses the spec's reference library ``skills-ref`` (Python >= 3.11); on
older Pythons an equivalent built-in check runs (see ``spec_errors``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reskill_gym.atomic import atomic_write_text
from reskill_gym.skills.errors import SkillError
from reskill_gym.skills.model import (
    MAX_SKILL_CONTENT_CHARS,
    Provenance,
    Skill,
    Trigger,
    validate_name,
)

__all__ = [
    "read_skill",
    "write_skill",
    "parse_skill_md",
    "render_skill_md",
    "find_skill_md",
    "spec_errors",
    "validate_skill_dir",
    "is_skill_dir",
    "METADATA_PREFIX",
]

logger = logging.getLogger(__name__)

METADATA_PREFIX = "reskill."
_K_TYPE = "reskill.trigger.type"
_K_PATTERN = "reskill.trigger.pattern"
_K_TOPK = "reskill.trigger.top_k"
_K_VERSION = "reskill.version"
_K_STEP = "reskill.created_at_step"
_K_BY = "reskill.provenance.proposed_by"
_K_WHY = "reskill.provenance.rationale"
_K_PARENT = "reskill.provenance.parent_version"
_OUR_KEYS = (_K_TYPE, _K_PATTERN, _K_TOPK, _K_VERSION, _K_STEP, _K_BY, _K_WHY, _K_PARENT)
_SPEC_KEYS = ("name", "description", "license", "compatibility", "allowed-tools", "metadata")

_SEC_WHEN = "When to use"
_SEC_ACTION = "Action"
_SEC_EXAMPLES = "Examples"
_FRONT_RE = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_HEADING_RE = re.compile(r"^##[ \t]+(.+?)[ \t]*$", re.MULTILINE)


def find_skill_md(skill_dir: str | Path) -> Path | None:
    """The ``SKILL.md`` (or lowercase ``skill.md``) of a folder, or None."""
    for name in ("SKILL.md", "skill.md"):
        p = Path(skill_dir) / name
        if p.is_file():
            return p
    return None


def is_skill_dir(path: str | Path) -> bool:
    """True if ``path`` is a folder holding a SKILL.md."""
    return Path(path).is_dir() and find_skill_md(path) is not None


def _split_front_matter(text: str, path: str | None) -> tuple[dict[str, Any], str]:
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    m = _FRONT_RE.match(text)
    if not m:
        raise SkillError(
            "must start with YAML front matter between two '---' lines",
            path=path,
            field="front matter",
        )
    try:
        data = yaml.load(m.group(1), Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader is safe
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        loc = f" (line {where.line + 2})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SkillError(f"invalid YAML{loc}: {problem}", path=path, field="front matter") from None
    if not isinstance(data, dict):
        raise SkillError("front matter must be a YAML mapping", path=path, field="front matter")
    return data, text[m.end() :]


def _sections(body: str) -> tuple[dict[str, str], str]:
    """Known sections by canonical heading, and everything else (preamble + unknown)."""
    known = {_SEC_WHEN.lower(): _SEC_WHEN, _SEC_ACTION.lower(): _SEC_ACTION}
    known[_SEC_EXAMPLES.lower()] = _SEC_EXAMPLES
    found: dict[str, str] = {}
    rest: list[str] = []
    marks = list(_HEADING_RE.finditer(body))
    pre = body[: marks[0].start()] if marks else body
    if pre.strip():
        rest.append(pre.strip())
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        canon = known.get(m.group(1).strip().lower())
        if canon is not None and canon not in found:
            found[canon] = body[m.end() : end].strip()
        else:
            rest.append(body[m.start() : end].strip())
    return found, "\n\n".join(rest)


def _relocate(exc: ValidationError, path: str | None) -> SkillError:
    err = exc.errors()[0]
    original = (err.get("ctx") or {}).get("error")
    field = ".".join(str(p) for p in err.get("loc", ())) or None
    if isinstance(original, SkillError):
        return original.at(path=path, field=field)
    return SkillError(err.get("msg", str(exc)), path=path, field=field)


def parse_skill_md(
    text: str,
    *,
    path: str | Path | None = None,
    dir_name: str | None = None,
    max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS,
) -> Skill:
    """Parse SKILL.md text into a ``Skill``; errors name ``path`` and the field.

    ``dir_name``, when given, must equal the skill's name (spec rule). The content limit
    applies to ReSkill skills only (those with ``reskill.*`` metadata).

    >>> s = parse_skill_md("---\\nname: x\\ndescription: d\\n---\\nDo the thing.\\n")
    >>> s.trigger.type, s.content
    ('retrieval', 'Do the thing.')
    """
    where = str(path) if path is not None else None
    fm, body = _split_front_matter(text, where)
    for key in ("name", "description"):
        if key not in fm:
            raise SkillError("missing (required by the Agent Skills spec)", path=where, field=key)
        if not isinstance(fm[key], str):
            raise SkillError("must be a string", path=where, field=key)
    try:
        name = validate_name(fm["name"].strip())
    except SkillError as exc:
        raise exc.at(path=where) from None
    if dir_name is not None and dir_name != name:
        raise SkillError(
            f"{name!r} must equal the folder name {dir_name!r}", path=where, field="name"
        )
    meta_raw = fm.get("metadata", {}) or {}
    if not isinstance(meta_raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta_raw.items()
    ):
        raise SkillError(
            "must be a map of string keys to string values", path=where, field="metadata"
        )
    meta = dict(meta_raw)
    ours = any(k.startswith(METADATA_PREFIX) for k in meta)
    for opt in ("license", "compatibility", "allowed-tools"):
        if opt in fm and not isinstance(fm[opt], str):
            raise SkillError("must be a string", path=where, field=opt)

    def _int(key: str) -> int | None:
        raw = meta.pop(key, None)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise SkillError(
                f"must be an integer, got {raw!r}", path=where, field=f"metadata.{key}"
            ) from None

    trig_type = meta.pop(_K_TYPE, "retrieval")
    pattern = meta.pop(_K_PATTERN, None)
    top_k = _int(_K_TOPK)
    version = _int(_K_VERSION)
    step = _int(_K_STEP)
    prov = {
        "proposed_by": meta.pop(_K_BY, None),
        "rationale": meta.pop(_K_WHY, None),
        "parent_version": meta.pop(_K_PARENT, None),
    }
    try:
        trigger = Trigger(type=trig_type, pattern=pattern, top_k=top_k)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = _relocate(exc, where)
        fld = {"type": _K_TYPE, "pattern": _K_PATTERN, "top_k": _K_TOPK}
        loc = err.field if err.field in fld else ("pattern" if pattern else "type")
        raise type(err)(err.message, path=where, field=f"metadata.{fld[loc]}") from None

    found, rest = _sections(body)
    if _SEC_ACTION in found:
        content, when, examples, extra_body = (
            found[_SEC_ACTION],
            found.get(_SEC_WHEN, ""),
            found.get(_SEC_EXAMPLES, ""),
            rest,
        )
    else:  # foreign skill: the whole body is the guidance, its '##' headings demoted
        content = _HEADING_RE.sub(lambda m: "#" + m.group(0), body.strip())
        when, examples, extra_body = "", "", ""
        if not content:
            content = fm["description"].strip()
    try:
        skill = Skill(
            name=name,
            description=fm["description"].strip(),
            when_to_use=when,
            content=content,
            examples=examples,
            trigger=trigger,
            version=version if version is not None else 1,
            created_at_step=step,
            provenance=Provenance(**prov),
            license=fm.get("license"),
            compatibility=fm.get("compatibility"),
            allowed_tools=fm.get("allowed-tools"),
            metadata=meta,
            extra_frontmatter={k: v for k, v in fm.items() if k not in _SPEC_KEYS},
            extra_body=extra_body,
        )
    except ValidationError as exc:
        raise _relocate(exc, where) from None
    if ours:
        try:
            skill.check_content_limit(max_content_chars)
        except SkillError as exc:
            raise exc.at(path=where) from None
    return skill


def read_skill(
    skill_dir: str | Path, *, max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS
) -> Skill:
    """Read the skill in folder ``skill_dir`` (its name must equal the folder name)."""
    skill_dir = Path(skill_dir)
    md = find_skill_md(skill_dir)
    if md is None:
        raise SkillError("no SKILL.md in this folder", path=skill_dir, field="SKILL.md")
    try:
        text = md.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SkillError(f"not UTF-8 text ({exc.reason})", path=md) from None
    return parse_skill_md(
        text, path=md, dir_name=skill_dir.name, max_content_chars=max_content_chars
    )


def _check_writable_text(skill: Skill) -> None:
    for field in ("content", "when_to_use", "examples"):
        value = getattr(skill, field)
        if _HEADING_RE.search(value):
            raise SkillError(
                "must not contain '## ' headings (they delimit SKILL.md sections); use '###'",
                field=field,
            )
    # skills-ref splits the file on the first two '---' anywhere in it.
    for key, value in _front_matter(skill).items():
        flat = value if isinstance(value, str) else yaml.safe_dump(value)
        if "---" in flat:
            raise SkillError("must not contain '---' (it ends the front matter)", field=key)


def _front_matter(skill: Skill) -> dict[str, Any]:
    meta: dict[str, str] = {_K_TYPE: skill.trigger.type}
    if skill.trigger.pattern is not None:
        meta[_K_PATTERN] = skill.trigger.pattern
    if skill.trigger.top_k is not None:
        meta[_K_TOPK] = str(skill.trigger.top_k)
    meta[_K_VERSION] = str(skill.version)
    if skill.created_at_step is not None:
        meta[_K_STEP] = str(skill.created_at_step)
    p = skill.provenance
    for key, value in (
        (_K_BY, p.proposed_by),
        (_K_WHY, p.rationale),
        (_K_PARENT, p.parent_version),
    ):
        if value is not None:
            meta[key] = value
    for key, value in skill.metadata.items():
        if key not in _OUR_KEYS:
            meta[key] = value
    fm: dict[str, Any] = {"name": skill.name, "description": skill.description}
    if skill.license is not None:
        fm["license"] = skill.license
    if skill.compatibility is not None:
        fm["compatibility"] = skill.compatibility
    if skill.allowed_tools is not None:
        fm["allowed-tools"] = skill.allowed_tools
    fm["metadata"] = meta
    for key, value in skill.extra_frontmatter.items():
        if key not in fm:
            fm[key] = value
    return fm


def render_skill_md(skill: Skill) -> str:
    """The SKILL.md text for ``skill`` (deterministic: same skill, same bytes)."""
    _check_writable_text(skill)
    head = yaml.safe_dump(
        _front_matter(skill),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )
    parts = []
    if skill.when_to_use.strip():
        parts.append(f"## {_SEC_WHEN}\n{skill.when_to_use.strip()}")
    parts.append(f"## {_SEC_ACTION}\n{skill.content.strip()}")
    if skill.examples.strip():
        parts.append(f"## {_SEC_EXAMPLES}\n{skill.examples.strip()}")
    if skill.extra_body.strip():
        parts.append(skill.extra_body.strip())
    return f"---\n{head}---\n" + "\n\n".join(parts) + "\n"


def write_skill(
    skill: Skill,
    parent_dir: str | Path,
    *,
    max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS,
) -> Path:
    """Write ``skill`` to ``parent_dir/<name>/SKILL.md`` atomically; return the folder.

    Enforces the content limit (``max_content_chars``; None disables it).
    """
    folder = Path(parent_dir) / skill.name
    try:
        skill.check_content_limit(max_content_chars)
        text = render_skill_md(skill)
    except SkillError as exc:
        raise exc.at(path=folder / "SKILL.md") from None
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "SKILL.md", text)
    return folder


def spec_errors(skill_dir: str | Path) -> list[str]:
    """Agent Skills spec violations of a folder (empty list: valid).

    Delegates to ``skills_ref.validate``; where ``skills-ref`` is not installed (it needs
    Python >= 3.11) the same rules are checked here: allowed front-matter keys, name
    format and folder match, non-empty description <= 1024 chars.
    """
    skill_dir = Path(skill_dir)
    try:
        import skills_ref
    except ImportError:  # pragma: no cover - exercised on Python 3.10 only
        skills_ref = None
    if skills_ref is not None:
        return [str(e) for e in skills_ref.validate(skill_dir)]
    md = find_skill_md(skill_dir)  # pragma: no cover
    if md is None:  # pragma: no cover
        return ["Missing required file: SKILL.md"]
    try:  # pragma: no cover
        fm, _ = _split_front_matter(md.read_text(encoding="utf-8"), str(md))
    except SkillError as exc:  # pragma: no cover
        return [str(exc)]
    errors = [
        f"Unexpected field in frontmatter: {k}" for k in fm if k not in _SPEC_KEYS
    ]  # pragma: no cover
    try:  # pragma: no cover
        parse_skill_md(
            md.read_text(encoding="utf-8"), path=md, dir_name=skill_dir.name, max_content_chars=None
        )
    except SkillError as exc:  # pragma: no cover
        errors.append(str(exc))
    return errors  # pragma: no cover


def validate_skill_dir(
    skill_dir: str | Path, *, max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS
) -> list[str]:
    """All problems of one skill folder: spec (``skills-ref``) plus ReSkill rules.

    ReSkill rules: the trigger type is known, its regex compiles and is safe, integers
    parse, and (for ReSkill skills) the content is within ``max_content_chars``.
    """
    errors = spec_errors(skill_dir)
    try:
        read_skill(skill_dir, max_content_chars=max_content_chars)
    except SkillError as exc:
        msg = str(exc)
        if msg not in errors:
            errors.append(msg)
    return errors
