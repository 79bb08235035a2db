"""Skill sources: the one way to turn a skill reference into a view, a live library or a new
library seeded from it.

Exports ``SkillSource``, ``SeedFolder``, ``parse_skill_ref``, ``resolve_ref``, ``is_library``,
``open_source``, ``open_view`` and ``seed_library``.

A reference says where skills come from; every command reads it the same way:

- a ``LibraryView`` (fixed) or a ``SkillLibrary`` (live: HEAD is read when asked);
- a path: a *library* (a folder with a ``.reskill`` store: history, versions) or a *plain
  folder* of skill folders (read once; its version is its content hash);
- ``PATH@VERSION`` pins one version: ``HEAD``, ``HEAD~N``, a version id or a prefix (a plain
  folder has one version only: ``HEAD`` or a prefix of its content hash);
- ``seed``: the env's seed library. Which folder that is, is the env layer's knowledge
  (``reskill_gym.envs.registration.seed_library_path``): callers pass it as ``seed``, a
  function called only when the reference is ``seed``, so an env without a seed library fails
  only when one is asked for;
- ``none`` or ``None``: no skills;
- a run folder (``reskill train`` / ``reskill evolve`` wrote it: ``config.yaml`` beside a
  ``skills/`` library), or ``run:<run folder>``: the library the run evolved, ``<run>/skills``
  (``runs/<run>@HEAD~1`` pins a version of it as for any library).

The wrapper (:class:`~reskill_gym.wrapper.SkillWrapper`), ``reskill eval`` (frozen views),
the run folder of ``reskill train`` / ``reskill evolve`` (:func:`seed_library`) and the veRL
adapter open references here; nothing outside ``reskill_gym.skills`` knows how a library is
laid out on disk.

>>> parse_skill_ref("skills/alfworld@HEAD~1")
('skills/alfworld', 'HEAD~1')
>>> parse_skill_ref("seed")
('seed', None)
>>> open_view("none") is None
True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from reskill_gym.atomic import atomic_write_bytes
from reskill_gym.skills import store
from reskill_gym.skills.errors import LibraryError
from reskill_gym.skills.library import SkillLibrary
from reskill_gym.skills.view import LibraryView

__all__ = [
    "SkillSource",
    "SeedFolder",
    "parse_skill_ref",
    "resolve_ref",
    "is_library",
    "open_source",
    "open_view",
    "seed_library",
]

SkillSource = LibraryView | SkillLibrary | str | os.PathLike[str] | None
"""What a skill reference can be (see the module docstring)."""

SeedFolder = Callable[[], Path]
"""Returns the folder the reference ``seed`` names (called only for ``seed``)."""

_SEED = "seed"
_NONE = "none"
_RUN = "run:"
_RUN_SKILLS = "skills"


def parse_skill_ref(ref: str) -> tuple[str, str | None]:
    """Split ``PATH[@VERSION]``; an ``@`` inside an existing path is part of the path."""
    if Path(ref).exists() or "@" not in ref:
        return ref, None
    path, _, version = ref.rpartition("@")
    if not version or "/" in version:
        return ref, None
    return path, version


def is_library(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a library with history (has a ``.reskill`` store with a HEAD)."""
    return (Path(path) / store.STORE / "HEAD").is_file()


def resolve_ref(
    ref: str | os.PathLike[str], version: str | None = None, *, seed: SeedFolder | None = None
) -> tuple[Path | None, str | None]:
    """``(folder, version)`` of a path reference (``seed`` and ``PATH@VERSION`` resolved;
    ``version`` pins one if the reference does not); ``(None, None)`` for ``none``.

    >>> resolve_ref("skills/search@HEAD")
    (PosixPath('skills/search'), 'HEAD')
    """
    text = os.fspath(ref)
    name, pinned = parse_skill_ref(text.removeprefix(_RUN))
    if pinned is not None and version is not None and pinned != version:
        raise LibraryError(f"{text}: pins version {pinned!r} but version {version!r} was given")
    version = version if version is not None else pinned
    if name == _NONE:
        if version is not None:
            raise LibraryError(f"{text}: 'none' (no skills) has no versions")
        return None, None
    if name == _SEED:
        if seed is None:
            raise LibraryError("'seed' names the env's seed library, but no env was given")
        return seed(), version
    path = Path(name).expanduser()
    if text.startswith(_RUN) and not _is_run_folder(path):
        raise LibraryError(f"{text}: {path} is not a run folder (no config.yaml and skills/)")
    return (path / _RUN_SKILLS if _is_run_folder(path) else path), version


def _is_run_folder(path: Path) -> bool:
    """A run folder: its library is ``skills/`` beside ``config.yaml``."""
    return (path / "config.yaml").is_file() and is_library(path / _RUN_SKILLS)


def open_source(
    skills: SkillSource, version: str | None = None, *, seed: SeedFolder | None = None
) -> tuple[LibraryView | None, SkillLibrary | None]:
    """A fixed view or a live library (exactly one of the two, or neither for no skills).

    A library (object or path) without a pinned version stays live: the caller reads HEAD
    when it needs it (the wrapper does at every ``reset``). Everything else is a view.
    Errors: ``FileNotFoundError`` for a missing path, ``LibraryError`` for a version that
    does not exist, ``SkillError`` for a skill that does not parse.
    """
    if skills is None:
        if version is not None:
            raise ValueError("version= was given but skills=None (no library to pin)")
        return None, None
    if isinstance(skills, LibraryView):
        if version is not None and version != skills.version:
            raise LibraryError(f"view is at version {skills.version}, not {version}")
        return skills, None
    if isinstance(skills, SkillLibrary):
        return (skills.view(version), None) if version is not None else (None, skills)
    path, version = resolve_ref(skills, version, seed=seed)
    if path is None:
        return None, None
    if not path.exists():
        raise FileNotFoundError(f"skill library {path} does not exist")
    if is_library(path):
        library = SkillLibrary.open(path)
        return (library.view(version), None) if version is not None else (None, library)
    view = LibraryView.from_folder(path)
    if version is not None and version != "HEAD" and not view.version.startswith(version):
        raise LibraryError(
            f"{path}: is a plain skill folder at content version {view.version} (no history), "
            f"so version {version!r} cannot be selected"
        )
    return view, None


def open_view(
    skills: SkillSource, version: str | None = None, *, seed: SeedFolder | None = None
) -> LibraryView | None:
    """The frozen view of a reference (a library's HEAD unless a version is pinned); ``None``
    for no skills. A library that keeps evolving elsewhere cannot change this view."""
    view, library = open_source(skills, version, seed=seed)
    return library.view() if library is not None else view


def seed_library(
    skills: str | os.PathLike[str] | None,
    dest: str | os.PathLike[str],
    *,
    seed: SeedFolder | None = None,
    reason: str = "",
    proposed_by: str = "run",
) -> SkillLibrary:
    """A new library at ``dest`` (created, or an empty folder) holding the skills ``skills``
    names: every file of each skill folder of the referenced version, read through the
    store's link-refusing readers. ``none`` / ``None``: an empty library.

    The new library starts its own history; its first version has the same content id as
    the source version it was copied from (versions are content-addressed), so the lineage
    can be followed back. ``reason`` is recorded with that first version.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LibraryError(f"{dest}: a new library needs a new or empty folder")
    path, version = (None, None) if skills is None else resolve_ref(skills, seed=seed)
    dest.mkdir(parents=True, exist_ok=True)
    if path is not None:
        if not path.is_dir():
            raise FileNotFoundError(f"skill library {path} is not a folder")
        if is_library(path):
            SkillLibrary.open(path).export(dest, version)
        else:
            open_view(path, version)  # the whole folder parses, and a pinned version matches
            for folder in store.skill_dirs(path):
                for rel, data in store.read_skill_folder(folder).items():
                    target = store.no_links_below(dest, [folder.name, *rel.split("/")])
                    atomic_write_bytes(target, data)
    return SkillLibrary.open(dest, create=True, reason=reason, proposed_by=proposed_by)
