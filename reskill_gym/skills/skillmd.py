"""Reading and writing ``SKILL.md`` folders in the Agent Skills format.

Exports: ``read_skill``, ``write_skill``, ``parse_skill_md``, ``render_skill_md``,
``find_skill_md``, ``spec_errors``, ``validate_skill_dir``, ``is_skill_dir``,
``read_file_nofollow``, ``decode_skill_text``, ``skill_files``, ``stored_path_problem``,
``METADATA_PREFIX``, ``MAX_FILE_BYTES``, ``MAX_FILES_PER_SKILL``, ``FRONT_MATTER_LIMITS``.

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
    ...            <- Skill.content (when-to-use + action + examples <= 500 chars)
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

Untrusted folders: a skill folder may come from anywhere, so reading one never follows a
symbolic link (``SKILL.md`` or any file in the folder that is a link is an error naming
the link and its target), never reads more than ``MAX_FILE_BYTES`` of a file or anything
but a regular file (a FIFO or device named ``SKILL.md`` is refused, not read), and checks
the front matter with the bounded YAML loader (``reskill_gym.yaml_loading``: size, depth,
aliases and alias expansion capped) before PyYAML builds anything.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text
from reskill_gym.skills.errors import SkillError
from reskill_gym.skills.model import (
    MAX_SKILL_CONTENT_CHARS,
    Provenance,
    Skill,
    Trigger,
    validate_name,
)
from reskill_gym.yaml_loading import YAMLLimits, YAMLLoadError, check_yaml

__all__ = [
    "read_skill",
    "write_skill",
    "parse_skill_md",
    "render_skill_md",
    "find_skill_md",
    "spec_errors",
    "validate_skill_dir",
    "is_skill_dir",
    "read_file_nofollow",
    "decode_skill_text",
    "skill_files",
    "stored_path_problem",
    "METADATA_PREFIX",
    "MAX_FILE_BYTES",
    "MAX_FILES_PER_SKILL",
    "FRONT_MATTER_LIMITS",
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

#: Largest file read from a skill folder (SKILL.md or any extra file).
MAX_FILE_BYTES = 1 << 20
#: Most files one skill folder may hold (a skill is a SKILL.md and a few references).
MAX_FILES_PER_SKILL = 256
#: Caps on a SKILL.md front matter: a real one is a few hundred bytes.
FRONT_MATTER_LIMITS = YAMLLimits(
    max_bytes=64 << 10,
    max_nodes=10_000,
    max_aliases=100,
    max_depth=32,
    max_expanded_bytes=256 << 10,
)


def read_file_nofollow(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, refusing links, non-regular files and files over ``max_bytes``.

    Opened with ``O_NOFOLLOW`` (no window between the check and the read for a link to
    appear) and ``O_NONBLOCK`` (a FIFO cannot block the open); errors are ``SkillError``
    naming the file (and the link's target).
    """
    p = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        if p.is_symlink() or exc.errno == errno.ELOOP:
            raise SkillError(_link_message(p), path=p) from None
        raise SkillError(f"cannot read ({exc.strerror})", path=p) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SkillError("not a regular file", path=p)
        if st.st_size > max_bytes:
            raise SkillError(f"file is {st.st_size} bytes, the limit is {max_bytes}", path=p)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SkillError(f"file is over {max_bytes} bytes", path=p)
    return data


def _link_message(p: Path) -> str:
    try:
        target = os.readlink(p)
    except OSError:
        target = "?"
    return (
        f"is a symbolic link (-> {target}); links are not followed in skill folders, "
        "copy the file in instead"
    )


def find_skill_md(skill_dir: str | Path) -> Path | None:
    """The ``SKILL.md`` (or lowercase ``skill.md``) of a folder, or None.

    A link (not followed) or a non-regular file named ``SKILL.md`` is returned too, so
    that reading it fails with an error naming it rather than "no SKILL.md".
    """
    for name in ("SKILL.md", "skill.md"):
        p = Path(skill_dir) / name
        if p.is_symlink() or (os.path.lexists(p) and not p.is_dir()):
            return p
    return None


def is_skill_dir(path: str | Path) -> bool:
    """True if ``path`` is a folder holding a SKILL.md."""
    return Path(path).is_dir() and find_skill_md(path) is not None


def decode_skill_text(data: bytes, path: str | Path | None) -> str:
    """UTF-8 text of a SKILL.md; an error naming the file and the byte offset otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkillError(
            f"not UTF-8 text (byte {exc.start}: {exc.reason})", path=path, field="SKILL.md"
        ) from None


def _split_front_matter(text: str, path: str | None) -> tuple[dict[str, Any], str]:
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    m = _FRONT_RE.match(text)
    if not m:
        raise SkillError(
            "must start with YAML front matter between two '---' lines",
            path=path,
            field="front matter",
        )
    try:  # bounded first: an alias bomb is rejected before anything is built
        check_yaml(m.group(1), limits=FRONT_MATTER_LIMITS, loader="base")
        data = yaml.load(m.group(1), Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader is safe
    except YAMLLoadError as exc:
        msg = exc.message
        if exc.line is not None:  # the front matter starts on line 2 of the file
            msg = msg.replace(f"(line {exc.line})", f"(line {exc.line + 1})")
        raise SkillError(msg, path=path, field="front matter") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        loc = f" (line {where.line + 2})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SkillError(f"invalid YAML{loc}: {problem}", path=path, field="front matter") from None
    except RecursionError:
        raise SkillError("YAML nested too deeply", path=path, field="front matter") from None
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
        trigger = Trigger(type=trig_type, pattern=pattern, top_k=top_k)
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
    if not skill_dir.is_dir():
        raise SkillError("not a folder", path=skill_dir)
    md = find_skill_md(skill_dir)
    if md is None:
        raise SkillError("no SKILL.md in this folder", path=skill_dir, field="SKILL.md")
    text = decode_skill_text(read_file_nofollow(md), md)
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
    # What we write must read back: re-rendered front matter can be far larger than what
    # was parsed (flow style becomes indented block style), and a SKILL.md over the read
    # caps would make every later ls/status/checkout of the library fail.
    head_bytes = len(head.encode("utf-8"))
    if head_bytes > FRONT_MATTER_LIMITS.max_bytes:
        raise SkillError(
            f"renders to {head_bytes} bytes of front matter, the limit is "
            f"{FRONT_MATTER_LIMITS.max_bytes}; keep extra front-matter keys small",
            field="front matter",
        )
    text = f"---\n{head}---\n" + "\n\n".join(parts) + "\n"
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise SkillError(
            f"renders to more than {MAX_FILE_BYTES} bytes, the limit of a SKILL.md",
            field="SKILL.md",
        )
    return text


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
        fm, _ = _split_front_matter(safe_files.read_text(md), str(md))
    except SkillError as exc:  # pragma: no cover
        return [str(exc)]
    errors = [
        f"Unexpected field in frontmatter: {k}" for k in fm if k not in _SPEC_KEYS
    ]  # pragma: no cover
    try:  # pragma: no cover
        parse_skill_md(
            safe_files.read_text(md), path=md, dir_name=skill_dir.name, max_content_chars=None
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
    skill_dir = Path(skill_dir)
    try:  # ours first: links, huge files, bad bytes and YAML bombs never reach skills-ref
        files = skill_files(skill_dir)
        md = find_skill_md(skill_dir)
        if md is None:
            raise SkillError("no SKILL.md in this folder", path=skill_dir, field="SKILL.md")
        _split_front_matter(decode_skill_text(files[md.name], md), str(md))
    except SkillError as exc:
        return [str(exc)]
    try:
        errors = spec_errors(skill_dir)
    except Exception as exc:  # skills-ref is third-party: its failure is a finding, not a crash
        errors = [f"{skill_dir}: skills-ref could not check it: {exc}"]
    try:
        read_skill(skill_dir, max_content_chars=max_content_chars)
    except SkillError as exc:
        if str(exc) not in errors:
            errors.append(str(exc))
    return errors


def skill_files(folder: str | Path) -> dict[str, bytes]:
    """Every file of one skill folder by relative POSIX path (hidden files and caches skipped).

    Never follows a link: a link anywhere in the folder (file or sub-folder) is a
    ``SkillError`` naming it and its target, as is anything that is not a regular file,
    a file over ``MAX_FILE_BYTES``, more than ``MAX_FILES_PER_SKILL`` files, or a path
    that cannot be stored (not UTF-8, a backslash).
    """
    root = Path(folder)
    if root.is_symlink():
        raise SkillError(_link_message(root), path=root)
    if not root.is_dir():
        raise SkillError("not a folder", path=root)
    out: dict[str, bytes] = {}
    try:  # hidden entries are never stored, never read (status() lists them as untracked)
        entries = safe_files.walk_tree(root, links="include", special="include", hidden=False)
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else root
        raise SkillError(f"cannot list ({exc.strerror})", path=where) from None
    for entry in entries:
        rel, p = entry.rel, entry.path
        if "__pycache__" in rel.split("/"):
            continue  # never stored, like hidden entries
        if entry.kind == "link":
            raise SkillError(_link_message(p), path=p)
        if "\\" in entry.name or not _printable_name(entry.name):
            raise SkillError("file name cannot be stored (backslash or control character)", path=p)
        if entry.kind == "folder":
            continue
        problem = stored_path_problem(rel)
        if problem is not None:
            raise SkillError(problem, path=p)
        if len(out) >= MAX_FILES_PER_SKILL:
            raise SkillError(f"more than {MAX_FILES_PER_SKILL} files", path=root)
        out[rel] = read_file_nofollow(p)  # a FIFO or device: "not a regular file"
    return dict(sorted(out.items()))


#: Longest relative path of a file in a skill folder.
MAX_PATH_CHARS = 1024


def stored_path_problem(rel: object) -> str | None:
    """Why ``rel`` cannot be a file path inside a stored skill (None: it can).

    One rule for reading a folder (``skill_files``) and for checking a store entry
    (``reskill_gym.skills.store.check_rel_path``): a folder that reads cleanly is a
    library that validates.

    >>> stored_path_problem("refs/notes.md") is None
    True
    >>> stored_path_problem("../x")
    "file path '../x' is not a plain relative path inside a skill folder"
    """
    if not isinstance(rel, str) or not rel:
        return f"file path {rel!r} is not a non-empty string"
    if len(rel) > MAX_PATH_CHARS:
        return f"file path {rel[:80]!r}... is over {MAX_PATH_CHARS} characters"
    parts = rel.split("/")
    bad = (
        rel.startswith("/")
        or "\\" in rel
        or any(not p or p.startswith(".") or p == "__pycache__" for p in parts)
        or not _printable_name(rel)
    )
    if bad:
        return f"file path {rel!r} is not a plain relative path inside a skill folder"
    return None


def _printable_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (surrogate escapes)
        return False
    return name.isprintable()
