"""Free-text replies to environment commands.

Exports ``parse_action`` and ``ParsedAction``.

A policy that generates free text (the veRL default) rarely replies with the bare command:
it adds a period, quotes, an ``Action:`` prefix or a sentence around it. The parser maps a
reply to the command the environment should run, and says how it got there so the rate of
each path can be logged:

- ``exact``: the cleaned reply is an admissible command (case and spacing ignored);
- ``contained``: an admissible command occurs in the reply as whole words (the longest wins,
  so ``go to cabinet 10`` beats ``go to cabinet 1``; among equals the last one, where models
  put their decision);
- ``raw``: no admissible list, or nothing matched: the first non-empty line (the engine then
  says whether it understood);
- ``passthrough``: the whole reply (Search parses its own ``<search>``/``<answer>`` tags).

>>> adm = ["go to cabinet 1", "go to cabinet 10", "open drawer 2", "look"]
>>> parse_action("Go to Cabinet 10.", adm)
ParsedAction(action='go to cabinet 10', how='exact')
>>> parse_action("I should open drawer 2 to look inside.", adm)
ParsedAction(action='open drawer 2', how='contained')
>>> parse_action("Action: dance", adm)
ParsedAction(action='dance', how='raw')
>>> parse_action("<search> capital </search>", None, mode="passthrough").how
'passthrough'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["parse_action", "ParsedAction"]

ParseMode = Literal["admissible", "raw", "passthrough"]

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_PREFIX = re.compile(r"^\s*(?:>\s*|(?:final\s+)?action\s*:\s*|command\s*:\s*)", re.I)
_TAGGED = re.compile(r"<action>\s*(.*?)\s*</action>", re.S | re.I)
_TRIM = " \t\r\n.\"'`*"


@dataclass(frozen=True)
class ParsedAction:
    """The command to run and which rule produced it."""

    action: str
    how: Literal["exact", "contained", "raw", "passthrough", "empty"]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _clean_line(text: str) -> str:
    for line in text.splitlines():
        line = _PREFIX.sub("", line).strip(_TRIM)
        if line:
            return " ".join(line.split())
    return ""


def parse_action(
    reply: str, admissible: Sequence[str] | None, *, mode: ParseMode = "admissible"
) -> ParsedAction:
    """Map a model reply to an environment command (see the module docstring)."""
    if mode == "passthrough":
        return ParsedAction(reply, "passthrough")
    text = _THINK.sub("", reply)
    tagged = _TAGGED.findall(text)
    if tagged:
        text = tagged[-1]
    first = _clean_line(text)
    if mode == "admissible" and admissible:
        by_norm = {_norm(a): a for a in admissible}
        hit = by_norm.get(_norm(first))
        if hit is not None:
            return ParsedAction(hit, "exact")
        flat = _norm(text)
        best: tuple[int, int, str] | None = None
        for key, command in by_norm.items():
            if not key:
                continue
            for m in re.finditer(r"(?<![\w])" + re.escape(key) + r"(?![\w])", flat):
                cand = (len(key), m.start(), command)
                if best is None or cand[:2] > best[:2]:
                    best = cand
        if best is not None:
            return ParsedAction(best[2], "contained")
    if not first:
        return ParsedAction("", "empty")
    return ParsedAction(first, "raw")
