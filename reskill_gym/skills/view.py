"""``LibraryView``: an immutable set of skills at one version, what an environment sees.

Exports ``LibraryView``.

A view is read from a library's store (``LibraryView.from_store``, what
``SkillLibrary.view`` returns) or from any plain folder of skill folders
(``LibraryView.from_folder``, which writes nothing); either way its version is the content
hash of its files, so the same skills give the same id. A view pickles as (source path,
version) and is re-read (and cached) in the receiving process, so sending one to a rollout
worker costs a few bytes.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reskill_gym.skills import store
from reskill_gym.skills.bundle import (
    DEFAULT_BUDGET_CHARS,
    DEFAULT_MAX_ACTIVE_SKILLS,
    DEFAULT_TEMPLATE,
    Bundle,
    BundleSelector,
    BundleTemplate,
    TurnContext,
)
from reskill_gym.skills.errors import LibraryError
from reskill_gym.skills.model import MAX_SKILL_CONTENT_CHARS, Skill
from reskill_gym.skills.skillmd import (
    decode_skill_text,
    find_skill_md,
    parse_skill_md,
    render_skill_md,
)

__all__ = ["LibraryView"]

_VIEW_CACHE: OrderedDict[tuple[str, str, str], LibraryView] = OrderedDict()
_VIEW_CACHE_SIZE = 32


def _restore_view(kind: str, path: str, version: str) -> LibraryView:
    """Unpickle a view: re-read it from its library or folder (cached per process)."""
    key = (kind, path, version)
    view = _VIEW_CACHE.get(key)
    if view is None:
        if kind == "library":
            view = LibraryView.from_store(Path(path), version)
        else:
            view = LibraryView.from_folder(path)
            if view.version != version:
                raise LibraryError(
                    f"{path}: folder changed since the view was pickled "
                    f"(was {version}, now {view.version})"
                )
        _VIEW_CACHE[key] = view
        if len(_VIEW_CACHE) > _VIEW_CACHE_SIZE:
            _VIEW_CACHE.popitem(last=False)
    return view


class LibraryView:
    """An immutable set of skills at one version: what an environment sees.

    >>> import tempfile, pathlib
    >>> from reskill_gym.skills.model import Trigger
    >>> from reskill_gym.skills.skillmd import write_skill
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_skill(Skill(name="plan", description="Plan.", content="Make a plan.",
    ...                       trigger=Trigger(type="beginning")), d)
    >>> view = LibraryView.from_folder(d)
    >>> view.names, len(view.version)
    (('plan',), 12)
    >>> view.select(TurnContext(0, None, "", "a task")).skill_ids
    ('plan@1',)
    """

    __slots__ = ("_version", "_skills", "_by_name", "_texts", "_source", "_selector", "_frozen")
    _version: str
    _skills: tuple[Skill, ...]
    _by_name: Mapping[str, Skill]
    _texts: Mapping[str, str]
    _source: tuple[str, str] | None
    _selector: BundleSelector | None
    _frozen: bool

    def __init__(
        self,
        version: str,
        skills: Iterable[Skill],
        texts: Mapping[str, str] | None = None,
        source: tuple[str, str] | None = None,
    ) -> None:
        ordered = tuple(sorted(skills, key=lambda s: s.name))
        object.__setattr__(self, "_version", version)
        object.__setattr__(self, "_skills", ordered)
        object.__setattr__(self, "_by_name", MappingProxyType({s.name: s for s in ordered}))
        object.__setattr__(self, "_texts", MappingProxyType(dict(texts or {})))
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_selector", None)
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("LibraryView is immutable; commit a new version instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("LibraryView is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        if self._source is None:
            return (LibraryView, (self._version, self._skills, dict(self._texts)))
        return (_restore_view, (*self._source, self._version))

    @classmethod
    def from_folder(
        cls, path: str | Path, *, max_content_chars: int | None = MAX_SKILL_CONTENT_CHARS
    ) -> LibraryView:
        """Read-only view of any folder of skill folders (writes nothing).

        ``path`` may also be a single skill folder. The version is the content hash.
        """
        root = Path(path)
        dirs = [root] if find_skill_md(root) else store.skill_dirs(root)
        tree: dict[str, dict[str, str]] = {}
        skills: list[Skill] = []
        texts: dict[str, str] = {}
        for d in dirs:
            files = store.read_skill_folder(d)
            tree[d.name] = {rel: store.sha256_hex(data) for rel, data in files.items()}
            key = store.skill_md_key(files)
            text = decode_skill_text(files[key], d / key)
            skills.append(
                parse_skill_md(
                    text, path=d / key, dir_name=d.name, max_content_chars=max_content_chars
                )
            )
            texts[d.name] = text
        return cls(store.content_version(tree), skills, texts, ("folder", str(root.resolve())))

    @classmethod
    def from_store(cls, root: str | Path, version: str) -> LibraryView:
        """The stored ``version`` of the library at ``root`` (every blob checked).

        No content limit is applied: what a library stored was checked when committed.
        """
        root = Path(root)
        tree = store.read_tree(root, version)
        vfile = f"{root / store.STORE / 'versions' / version}.json"
        skills, texts = [], {}
        for name, files in sorted(tree.items()):
            key = store.skill_md_key(files)
            where = f"{vfile}:{name}/{key}"
            text = decode_skill_text(store.read_blob(root, files[key], where), where)
            skills.append(parse_skill_md(text, path=where, dir_name=name, max_content_chars=None))
            texts[name] = text
        return cls(version, skills, texts, ("library", str(root.resolve())))

    @property
    def version(self) -> str:
        """The content-addressed version id."""
        return self._version

    @property
    def skills(self) -> tuple[Skill, ...]:
        """All skills, sorted by name."""
        return self._skills

    @property
    def names(self) -> tuple[str, ...]:
        """Skill names, sorted."""
        return tuple(self._by_name)

    def get(self, name: str) -> Skill:
        """The skill called ``name``; ``KeyError`` with close matches if absent."""
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._by_name), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"no skill {name!r} in version {self._version}{hint}") from None

    def text(self, name: str) -> str:
        """The SKILL.md text of ``name`` as stored (rendered if the view was built in memory)."""
        return self._texts.get(name) or render_skill_md(self.get(name))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills)

    def __len__(self) -> int:
        return len(self._skills)

    def __repr__(self) -> str:
        return f"LibraryView(version={self._version!r}, skills={len(self._skills)})"

    @property
    def selector(self) -> BundleSelector:
        """The pre-indexed bundle selector (built on first use, then kept)."""
        if self._selector is None:
            selector = BundleSelector(self._skills)
            object.__setattr__(self, "_selector", selector)
            return selector
        return self._selector

    def select(
        self,
        ctx: TurnContext,
        *,
        max_active_skills: int = DEFAULT_MAX_ACTIVE_SKILLS,
        budget_chars: int | None = DEFAULT_BUDGET_CHARS,
        template: BundleTemplate = DEFAULT_TEMPLATE,
    ) -> Bundle:
        """The bundle for one turn (see ``reskill_gym.skills.bundle``)."""
        return self.selector.select(
            ctx, max_active_skills=max_active_skills, budget_chars=budget_chars, template=template
        )
