"""``reskill skills ...``: inspect, validate, import/export and move a skill library.

Exports: ``skills_app`` (a Typer app attached to ``reskill`` as ``skills``).

Every listing command prints a rich table, or JSON with ``--json`` (for scripts). Text
from a library (descriptions, patterns, reasons, file names) is untrusted: it is clipped
and printed without markup parsing and without control characters, so ``[/x]`` prints as
itself and an ANSI escape cannot hide or rewrite what a reviewer sees.
``--library/-L`` is the library folder (default: the current folder); commands that
read a plain folder of skills without a ``.reskill`` store show it read-only.

Errors (a bad version expression, a bad skill folder, a tampered store, a checkout that
would delete untracked files, ...) print one line ``error: ...`` on stderr and exit with
code 2; ``validate`` exits 1 when it ran and found invalid skills.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

__all__ = ["skills_app"]

skills_app = typer.Typer(
    help="Skill libraries: ls, show, log, diff, status, validate, import, export, checkout.",
    no_args_is_help=True,
    add_completion=False,
)

_LIB = typer.Option(Path("."), "--library", "-L", help="Library folder.")
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


#: Longest text shown in one table cell (the JSON output has it all).
_CELL_CHARS = 2000


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=True, markup=False, highlight=False, emoji=False)


def _cell(value: object, limit: int = _CELL_CHARS) -> str:
    """Untrusted text for a table cell or a line: clipped, no control characters."""
    from reskill_gym.safe_text import clip_text, terminal_text

    return terminal_text(clip_text(str(value), limit))


def _fail(msg: str) -> typer.Exit:
    from reskill_gym.safe_text import terminal_text

    typer.echo(f"error: {terminal_text(_cell(msg, 4000), one_line=True)}", err=True)
    return typer.Exit(code=2)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the errors bad input causes into one ``error:`` line and exit code 2."""
    from reskill_gym.skills.errors import LibraryError, SkillError
    from reskill_gym.yaml_loading import YAMLLoadError

    try:
        yield
    except (LibraryError, SkillError, YAMLLoadError) as exc:
        raise _fail(str(exc)) from None
    except KeyError as exc:  # LibraryView.get: "no skill 'x' in version ...; did you mean"
        raise _fail(str(exc.args[0]) if exc.args else str(exc)) from None
    except OSError as exc:  # a path that is a file, unwritable, ...: name it
        where = f"{exc.filename}: " if exc.filename else ""
        raise _fail(f"{where}{exc.strerror or exc}") from None


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _open(library: Path, create: bool = False) -> Any:
    from reskill_gym.skills.library import SkillLibrary

    with _errors():
        return SkillLibrary.open(library, create=create)


def _view(library: Path, version: str | None) -> Any:
    """A library's view, or a read-only view of a plain folder of skills."""
    from reskill_gym.skills.library import STORE, LibraryView

    with _errors():
        if not os.path.lexists(library / STORE / "HEAD"):  # a FIFO or link: open() says why
            if version is not None:
                raise _fail(f"{library} is a plain folder (no {STORE}); it has no versions")
            return LibraryView.from_folder(library)
        return _open(library).view(version)


@skills_app.command("ls")
def ls_cmd(
    library: Path = _LIB,
    version: str = typer.Option(None, "--version", "-V", help="Version (default HEAD)."),
    as_json: bool = _JSON,
) -> None:
    """List the skills of a version."""
    view = _view(library, version)
    rows = [
        {
            "name": s.name,
            "version": s.version,
            "trigger": s.trigger.type,
            "pattern": s.trigger.pattern,
            "content_chars": s.counted_chars,
            "description": s.description,
        }
        for s in view.skills
    ]
    if as_json:
        _emit_json({"library_version": view.version, "skills": rows})
        return
    from rich.table import Table

    t = Table(title=_cell(f"{library} @ {view.version} ({len(rows)} skills)"))
    for col in ("name", "v", "trigger", "pattern", "chars", "description"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            r["name"],
            str(r["version"]),
            r["trigger"],
            _cell(r["pattern"] or ""),
            str(r["content_chars"]),
            _cell(r["description"]),
        )
    _console().print(t)


@skills_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Skill name."),
    library: Path = _LIB,
    version: str = typer.Option(None, "--version", "-V", help="Version (default HEAD)."),
    as_json: bool = _JSON,
) -> None:
    """Print one skill's SKILL.md (or its parsed fields with --json)."""
    view = _view(library, version)
    with _errors():
        skill = view.get(name)
        text = view.text(name)
    if as_json:
        _emit_json({"library_version": view.version, **skill.model_dump(mode="json")})
    else:
        from reskill_gym.safe_text import terminal_text

        typer.echo(terminal_text(text), nl=False)


@skills_app.command("log")
def log_cmd(
    library: Path = _LIB,
    last: int = typer.Option(None, "-n", min=0, help="Only the newest N entries."),
    as_json: bool = _JSON,
) -> None:
    """Show the version history (newest last)."""
    lib = _open(library)
    with _errors():
        entries = lib.history(last=last)
        head = lib.head
    if as_json:
        _emit_json({"head": head, "history": [e.model_dump(mode="json") for e in entries]})
        return
    from rich.table import Table

    t = Table(title=_cell(f"{library} history (HEAD {head})"))
    for col in ("time", "kind", "version", "parent", "step", "by", "operations", "reason"):
        t.add_column(col, overflow="fold", no_wrap=col in ("version", "parent", "kind"))
    for e in entries:
        ops = ", ".join(f"{o.op} {o.name}" for o in e.operations[:6])
        if len(e.operations) > 6:
            ops += f", ... (+{len(e.operations) - 6})"
        if e.kind == "event":
            ops = json.dumps(e.extra, default=str)[:80]
        ops = _cell(ops, 400)
        mark = "*" if e.version == head and e.head_moved else ""
        t.add_row(
            e.time[:16].replace("T", " "),
            e.kind,
            (e.version or "") + mark,
            _cell(e.parent or "", 40),
            "" if e.step is None else str(e.step),
            _cell(e.proposed_by or "", 80),
            ops,
            _cell(e.reason, 500),
        )
    _console().print(t)


@skills_app.command("diff")
def diff_cmd(
    v1: str = typer.Argument(..., help="Old version (id, prefix, HEAD, HEAD~N)."),
    v2: str = typer.Argument("HEAD", help="New version."),
    library: Path = _LIB,
    as_json: bool = _JSON,
) -> None:
    """What changed between two versions (added, removed, modified, with patches)."""
    lib = _open(library)
    with _errors():
        d = lib.diff(v1, v2)
    if as_json:
        _emit_json(d.model_dump(mode="json"))
        return
    from reskill_gym.safe_text import terminal_text

    con = _console()
    con.print(f"{d.old} -> {d.new}: +{len(d.added)} -{len(d.removed)} ~{len(d.modified)}")
    for name in d.added + d.removed + d.modified:
        typer.echo(terminal_text(d.patches[name]), nl=False)


def _skill_folders(path: Path, *, refuse_links: bool = True) -> list[Path]:
    """``path`` itself if it is a skill folder, else its sub-folders (hidden ones skipped).

    ``path`` was typed by the user, so a link there is theirs to choose; a sub-folder that
    is a link is refused (``SkillError`` naming it): following it would read whatever the
    link points at as if it were part of the folder given. ``refuse_links=False`` (for
    ``validate``, which reports each folder's problems) returns it instead.
    """
    from reskill_gym import safe_files
    from reskill_gym.skills.errors import SkillError
    from reskill_gym.skills.skillmd import _link_message, is_skill_dir

    if is_skill_dir(path):
        return [path]
    if path.is_dir():
        # files, FIFOs and devices are not skill folders: left out; a link is decided below
        children = safe_files.list_folder(
            path, links="include", special="skip", hidden=False, follow_links=True
        )
        for e in children:
            if refuse_links and e.kind == "link" and e.path.is_dir():
                raise SkillError(_link_message(e.path), path=e.path)
        return [e.path for e in children if e.kind == "folder" or e.path.is_dir()]
    return [path]


@skills_app.command("validate")
def validate_cmd(
    paths: list[Path] = typer.Argument(..., help="Skill folders or folders of skill folders."),
    as_json: bool = _JSON,
) -> None:
    """Check skill folders against the Agent Skills spec (skills-ref) and ReSkill rules."""
    from reskill_gym.skills.skillmd import validate_skill_dir

    results: list[dict[str, Any]] = []
    for p in paths:
        if not p.exists() and not p.is_symlink():
            results.append({"path": str(p), "errors": [f"{p}: does not exist"]})
            continue
        folders = _skill_folders(p, refuse_links=False)
        if not folders:
            results.append({"path": str(p), "errors": ["no skill folders here"]})
        for f in folders:
            results.append({"path": str(f), "errors": validate_skill_dir(f)})
    bad = [r for r in results if r["errors"]]
    if as_json:
        _emit_json({"ok": not bad, "checked": len(results), "results": results})
    else:
        from rich.table import Table

        t = Table(title=f"{len(results)} skill folders, {len(bad)} with errors")
        t.add_column("path", overflow="fold")
        t.add_column("result", overflow="fold")
        for r in results:
            errors = "\n".join(_cell(e) for e in r["errors"])
            t.add_row(_cell(r["path"]), "ok" if not r["errors"] else errors)
        _console().print(t)
    if bad:
        raise typer.Exit(code=1)


@skills_app.command("export")
def export_cmd(
    dest: Path = typer.Argument(..., help="Folder to write the skill folders into."),
    fmt: str = typer.Option("anthropic", "--format", help="Only 'anthropic' (SKILL.md folders)."),
    library: Path = _LIB,
    version: str = typer.Option(None, "--version", "-V", help="Version (default HEAD)."),
    as_json: bool = _JSON,
) -> None:
    """Write a version's skills as plain Agent Skills folders (readable by Claude tools)."""
    if fmt != "anthropic":
        raise _fail(f"unknown --format {fmt!r}; supported: anthropic")
    lib = _open(library)
    with _errors():
        written = lib.export(dest, version)
    if as_json:
        _emit_json({"exported": [str(p) for p in written]})
    else:
        typer.echo(f"exported {len(written)} skills to {dest}")


@skills_app.command("import")
def import_cmd(
    source: Path = typer.Argument(..., help="A skill folder or a folder of skill folders."),
    library: Path = _LIB,
    reason: str = typer.Option("", "--reason", "-m", help="Why (recorded in history)."),
    step: int = typer.Option(None, "--step", help="Training step to record."),
    max_content_chars: int = typer.Option(
        500,
        min=0,
        help="Reject skills whose when-to-use + action + examples are longer (0: no limit).",
    ),
    as_json: bool = _JSON,
) -> None:
    """Add or update skills from folders (any spec-valid skill; trigger defaults to retrieval)."""
    from reskill_gym.skills.errors import SkillError
    from reskill_gym.skills.skillmd import read_skill

    limit = max_content_chars or None
    if not source.exists():
        raise _fail(f"{source}: does not exist")
    with _errors():
        skills = []
        for f in _skill_folders(source):
            skill = read_skill(f, max_content_chars=limit)
            try:  # foreign skills load unbounded; the library's limit applies here
                skill.check_content_limit(limit)
            except SkillError as exc:
                raise exc.at(path=f / "SKILL.md") from None
            skills.append(skill)
        lib = _open(library, create=True)
        lib.max_content_chars = limit
        vid = lib.commit(skills, reason=reason or f"import {source}", step=step, proposed_by="cli")
    if as_json:
        _emit_json({"version": vid, "imported": [s.name for s in skills]})
    else:
        typer.echo(f"imported {len(skills)} skills; HEAD is {vid}")


@skills_app.command("checkout")
def checkout_cmd(
    version: str = typer.Argument(..., help="Version (id, prefix, HEAD~N)."),
    library: Path = _LIB,
    as_json: bool = _JSON,
) -> None:
    """Move HEAD to an existing version and rewrite the working copy.

    Refuses (changing nothing) if that would delete or overwrite a file the library does
    not track, e.g. a hidden ``.notes`` or ``.git/`` in a skill folder the version drops.
    """
    lib = _open(library)
    with _errors():
        vid = lib.checkout(version)
    _emit_json({"head": vid}) if as_json else typer.echo(f"HEAD is {vid}")


@skills_app.command("rollback")
def rollback_cmd(library: Path = _LIB, as_json: bool = _JSON) -> None:
    """Move HEAD back to the parent of the current version."""
    lib = _open(library)
    with _errors():
        vid = lib.rollback()
    _emit_json({"head": vid}) if as_json else typer.echo(f"HEAD is {vid}")


@skills_app.command("init")
def init_cmd(library: Path = _LIB, as_json: bool = _JSON) -> None:
    """Make a folder (e.g. a seed library) a versioned library; its skills become version 1."""
    lib = _open(library, create=True)
    _emit_json({"head": lib.head}) if as_json else typer.echo(
        f"library at {library}, HEAD {lib.head}"
    )


@skills_app.command("snapshot")
def snapshot_cmd(
    library: Path = _LIB,
    reason: str = typer.Option("hand edits", "--reason", "-m", help="Why."),
    as_json: bool = _JSON,
) -> None:
    """Record hand edits of the working copy as a new version."""
    lib = _open(library)
    with _errors():
        vid = lib.snapshot(reason=reason, proposed_by="cli")
    _emit_json({"head": vid}) if as_json else typer.echo(f"HEAD is {vid}")


@skills_app.command("prune")
def prune_cmd(
    library: Path = _LIB,
    keep: int = typer.Option(5, min=0, help="Keep the N newest versions (plus HEAD)."),
    as_json: bool = _JSON,
) -> None:
    """Delete old stored versions (history lines stay)."""
    lib = _open(library)
    with _errors():
        removed = lib.prune(keep=keep)
    _emit_json({"removed": removed}) if as_json else typer.echo(f"removed {len(removed)} versions")


@skills_app.command("status")
def status_cmd(library: Path = _LIB, as_json: bool = _JSON) -> None:
    """Hand edits of the working copy, and the untracked (hidden) files in skill folders."""
    lib = _open(library)
    with _errors():
        st = lib.status()
        head = lib.head
    if as_json:
        _emit_json({"head": head, **st})
        return
    typer.echo(f"HEAD {head}")
    for kind in ("added", "modified", "deleted", "untracked"):
        shown = _cell(", ".join(st[kind]), 4000)
        typer.echo(f"{kind}: {len(st[kind])}" + (f" ({shown})" if st[kind] else ""))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(skills_app())
