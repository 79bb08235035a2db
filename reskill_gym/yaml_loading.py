"""Bounded YAML loading: every YAML file the project reads goes through here first.

Exports: ``YAMLLimits``, ``YAMLLoadError``, ``YAMLLimitError``, ``check_yaml``,
``load_yaml``, ``read_yaml_text``, ``check_yaml_file``, ``load_yaml_file``,
``DEFAULT_LIMITS``.

Why: YAML anchors and aliases let a few hundred bytes describe a tree of billions of
nodes (the "billion laughs" alias bomb). PyYAML builds such a document cheaply as a graph
of shared objects, and the explosion happens later, in whatever walks it as a tree
(pydantic validation, ``json.dumps``, OmegaConf, ``yaml.safe_dump``): a SKILL.md or a run
config of 400 bytes then hangs a command and eats gigabytes. So before any loader sees a
document, its event stream is walked once (no objects are built) and the document is
rejected, with an error naming the file, when it is

* bigger than ``max_bytes``,
* nested deeper than ``max_depth``,
* uses more than ``max_aliases`` aliases, or
* gives one key twice in a mapping (loaders keep the last silently), or
* would expand (every alias counted as a full copy of its anchor) to more than
  ``max_nodes`` nodes or more than ``max_expanded_bytes`` bytes of scalar text (a
  900 KB string repeated through 900 aliases is few nodes but most of a gigabyte).

The walk is linear in the size of the text and stops at the first limit, so a bomb is
rejected in milliseconds. Callers that hand the file to another parser (OmegaConf loads
run configs itself) call ``check_yaml_file`` first.

>>> load_yaml("a: 1\\nb: [x, y]\\n")
{'a': 1, 'b': ['x', 'y']}
>>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
...     f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\\n"
...     for p, c in zip("abcdefgh", "bcdefghi"))
>>> load_yaml(bomb, source="bomb.yaml")
Traceback (most recent call last):
...
reskill_gym.yaml_loading.YAMLLimitError: bomb.yaml: YAML document would expand to more than 100000 nodes (alias bomb?); ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from reskill_gym import safe_files

__all__ = [
    "YAMLLimits",
    "YAMLLoadError",
    "YAMLLimitError",
    "check_yaml",
    "load_yaml",
    "read_yaml_text",
    "check_yaml_file",
    "load_yaml_file",
    "DEFAULT_LIMITS",
]

LoaderName = Literal["safe", "base"]


@dataclass(frozen=True)
class YAMLLimits:
    """Caps on one YAML document (the defaults fit any config or skill by a wide margin).

    >>> YAMLLimits(max_bytes=65536).max_nodes
    100000
    """

    max_bytes: int = 1 << 20
    max_nodes: int = 100_000
    max_aliases: int = 1_000
    max_depth: int = 64
    max_expanded_bytes: int = 8 << 20


DEFAULT_LIMITS = YAMLLimits()


class YAMLLoadError(ValueError):
    """A YAML file cannot be read: too big, not UTF-8, invalid YAML, or over a limit.

    ``path`` is the file (or the name the caller gave the text), ``line`` the 1-based line
    of a syntax error when known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        super().__init__(f"{path}: {message}" if path else message)


class YAMLLimitError(YAMLLoadError):
    """A YAML document exceeds ``YAMLLimits`` (size, depth, aliases or expanded nodes)."""


def _loader(name: LoaderName, *, fast: bool) -> Any:
    if name == "base":
        return getattr(yaml, "CBaseLoader", yaml.BaseLoader) if fast else yaml.BaseLoader
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader


def check_yaml(
    text: str,
    *,
    source: str | os.PathLike[str] | None = None,
    limits: YAMLLimits = DEFAULT_LIMITS,
    loader: LoaderName = "safe",
) -> None:
    """Raise ``YAMLLimitError`` if ``text`` is over a limit, ``YAMLLoadError`` if invalid.

    Walks the parser's event stream only; nothing is constructed.
    """
    where = str(source) if source is not None else None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise YAMLLimitError(f"is {size} bytes, the limit is {limits.max_bytes}", path=where)
    expanded = 0  # nodes, every alias a full copy of its anchor
    text_bytes = 0  # scalar characters, counted the same way
    aliases = 0
    sizes: dict[str, tuple[int, int]] = {}
    open_nodes: list[tuple[str | None, int, int]] = []
    # per open collection: the keys seen and the children counted, for mappings (None:
    # a sequence). A key given twice is an error: loaders keep the last silently, while
    # the Agent Skills reference validator refuses the file.
    maps: list[list[Any] | None] = []
    try:
        for ev in yaml.parse(text, Loader=_loader(loader, fast=True)):
            if maps and maps[-1] is not None and isinstance(ev, yaml.NodeEvent):
                keys, count = maps[-1]
                maps[-1][1] = count + 1
                if count % 2 == 0 and isinstance(ev, yaml.ScalarEvent):
                    if ev.value in keys:
                        line = ev.start_mark.line + 1 if ev.start_mark else None
                        raise YAMLLoadError(
                            f"key {ev.value[:80]!r} appears twice in one mapping (line {line})",
                            path=where,
                            line=line,
                        )
                    keys.add(ev.value)
            if isinstance(ev, yaml.DocumentStartEvent):
                sizes.clear()
            elif isinstance(ev, yaml.ScalarEvent):
                expanded += 1
                text_bytes += len(ev.value)
                if ev.anchor:
                    sizes[ev.anchor] = (1, len(ev.value))
            elif isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.max_aliases:
                    raise YAMLLimitError(
                        f"YAML document uses more than {limits.max_aliases} aliases", path=where
                    )
                n = sizes.get(ev.anchor) if ev.anchor is not None else None
                if n is None:
                    raise YAMLLoadError(
                        f"alias *{ev.anchor} refers to an undefined or enclosing anchor",
                        path=where,
                        line=ev.start_mark.line + 1 if ev.start_mark else None,
                    )
                expanded += n[0]
                text_bytes += n[1]
            elif isinstance(ev, yaml.CollectionStartEvent):
                expanded += 1
                open_nodes.append((ev.anchor, expanded - 1, text_bytes))
                maps.append([set(), 0] if isinstance(ev, yaml.MappingStartEvent) else None)
                if len(open_nodes) > limits.max_depth:
                    raise YAMLLimitError(
                        f"YAML document is nested deeper than {limits.max_depth} levels",
                        path=where,
                    )
            elif isinstance(ev, yaml.CollectionEndEvent):
                anchor, start, start_bytes = open_nodes.pop()
                maps.pop()
                if anchor:
                    sizes[anchor] = (expanded - start, text_bytes - start_bytes)
            if expanded > limits.max_nodes:
                raise YAMLLimitError(
                    f"YAML document would expand to more than {limits.max_nodes} nodes "
                    "(alias bomb?); anchors and aliases are limited",
                    path=where,
                )
            if text_bytes > limits.max_expanded_bytes:
                raise YAMLLimitError(
                    f"YAML document would expand to more than {limits.max_expanded_bytes} "
                    "bytes of text (a long value repeated through aliases?)",
                    path=where,
                )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        loc = f" (line {line})" if line is not None else ""
        raise YAMLLoadError(f"invalid YAML{loc}: {problem}", path=where, line=line) from None


def load_yaml(
    text: str,
    *,
    source: str | os.PathLike[str] | None = None,
    limits: YAMLLimits = DEFAULT_LIMITS,
    loader: LoaderName = "safe",
) -> Any:
    """``check_yaml`` then load with PyYAML's safe (or base: all strings) loader."""
    check_yaml(text, source=source, limits=limits, loader=loader)
    try:
        return yaml.load(text, Loader=_loader(loader, fast=True))  # noqa: S506 - safe/base only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        loc = f" (line {line})" if line is not None else ""
        where = str(source) if source is not None else None
        raise YAMLLoadError(f"invalid YAML{loc}: {problem}", path=where, line=line) from None


def read_yaml_text(
    path: str | os.PathLike[str],
    *,
    limits: YAMLLimits = DEFAULT_LIMITS,
    follow_links: bool = False,
) -> str:
    """A YAML file's text, refusing files over ``limits.max_bytes`` before reading them.

    Reads at most ``max_bytes + 1`` bytes of a regular file (a link, FIFO or device such as
    ``/dev/zero`` is refused: ``reskill_gym.safe_files``); errors name the file. A link
    is refused unless ``follow_links`` (for a path the user typed, never one found in a
    run or skill folder).
    """
    p = Path(path)
    try:
        data = safe_files.read_bytes(p, max_bytes=limits.max_bytes, follow_links=follow_links)
    except IsADirectoryError:
        raise YAMLLoadError("is a folder, not a YAML file", path=str(p)) from None
    except FileNotFoundError:
        raise YAMLLoadError("file not found", path=str(p)) from None
    except safe_files.FileTooLargeError:
        raise YAMLLimitError(f"is over {limits.max_bytes} bytes", path=str(p)) from None
    except safe_files.UnsafeFileError as exc:
        raise YAMLLoadError(str(exc.strerror), path=str(p)) from None
    except OSError as exc:
        raise YAMLLoadError(f"cannot read ({exc.strerror})", path=str(p)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLLoadError(
            f"not UTF-8 text (byte {exc.start}: {exc.reason})", path=str(p)
        ) from None


def check_yaml_file(
    path: str | os.PathLike[str],
    *,
    limits: YAMLLimits = DEFAULT_LIMITS,
    follow_links: bool = False,
) -> str:
    """Check a YAML file against ``limits`` (for callers whose own parser loads it next).

    Returns the text, so a caller may parse exactly what was checked.
    """
    text = read_yaml_text(path, limits=limits, follow_links=follow_links)
    check_yaml(text, source=path, limits=limits)
    return text


def load_yaml_file(
    path: str | os.PathLike[str],
    *,
    limits: YAMLLimits = DEFAULT_LIMITS,
    loader: LoaderName = "safe",
) -> Any:
    """Read, check and load a YAML file; every error is a ``YAMLLoadError`` naming it."""
    return load_yaml(read_yaml_text(path, limits=limits), source=path, limits=limits, loader=loader)
