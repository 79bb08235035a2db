"""Model replies to environment actions: the one parser of the project.

Exports ``parse_action`` and ``ParseOutcome``.

Three formats (``TurnConfig.action_format``):

``tagged`` (the published system's format)
    The model may reason in ``<think>...</think>`` and must answer ``<action>...</action>``.
    The last ``<action>`` outside the think block is the action; an admissible command is
    matched case- and space-insensitively (and returned in the env's spelling), anything else
    is passed on for the env to judge. No tag (or an empty one) is an *invalid* reply: the env
    is not stepped and the agent is told why.
``lenient`` (for models that cannot follow tags)
    An exact admissible command (the whole reply or one of its lines, after stripping code
    fences, quotes, a leading ``>``/``Action:`` and a final period), else the longest
    admissible command contained in the reply on word boundaries (ties: the one mentioned
    last, where models put their decision), else the first non-empty line (``raw``).
``passthrough``
    The whole reply goes to the env, which parses it (Search's ``<search>``/``<answer>``).
``published`` (``TurnConfig(format="published")``; ``env_name`` picks the env's projection)
    The published system's projections (``projection.py``). ALFWorld/ScienceWorld: the reply
    is lower-cased and the text between the first ``<action>`` and the first ``</action>`` is
    the action; without both tags the reply's last 30 characters are (``how="projected"``)
    and the reply is invalid; a Chinese character makes it invalid too. Search: the first
    ``<search>`` block, else the first ``<answer>`` block, else nothing; both kinds of tag or
    one kind twice make it invalid. Unlike the other formats, the env runs ``action`` even
    when the reply is invalid (the session does; the turn is still penalised).

>>> adm = ["go to cabinet 1", "go to cabinet 10", "open drawer 2", "look"]
>>> parse_action("<think>It is in a cabinet.</think><action>Go to Cabinet 10</action>", adm)
ParseOutcome(action='go to cabinet 10', how='tagged', valid=True, why='')
>>> parse_action("go to cabinet 1", adm).why
'no <action>...</action> in the reply'
>>> parse_action("I should open drawer 2 to look inside.", adm, action_format="lenient").action
'open drawer 2'
>>> parse_action("Action: dance", adm, action_format="lenient")
ParseOutcome(action='dance', how='raw', valid=True, why='')
>>> parse_action("<search> capital </search>", None, action_format="passthrough").how
'passthrough'
>>> parse_action("The pen is here. <action>Take pen 1</action>", None, action_format="published",
...              env_name="alfworld")
ParseOutcome(action='take pen 1', how='tagged', valid=True, why='')
>>> parse_action("I will take the pen.", None, action_format="published", env_name="alfworld")
ParseOutcome(action='i will take the pen.', how='projected', valid=False, why='no <action>...</action> in the reply')
>>> parse_action("<search>Paris</search><answer>Paris</answer>", None, action_format="published",
...              env_name="search").why
'both <search> and <answer> in the reply'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reskill_gym.episode import ParseHow

__all__ = ["parse_action", "ParseOutcome"]

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_TAGGED = re.compile(r"<action>(.*?)</action>", re.S | re.I)
_OPEN_TAG = re.compile(r"<action>", re.I)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_PREFIX = re.compile(
    r"^(?:>\s*|(?:final\s+|next\s+)?(?:action|command|answer)\s*[:=-]\s*)", re.IGNORECASE
)
_TRIM = " \t\r\n.!\"'`*"
_CHINESE = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class ParseOutcome:
    """The command to run, how it was found, and whether the reply was a valid action.

    ``valid=False`` means the env must not run anything this turn; ``why`` says what was
    wrong (it is shown to the agent on the next turn).
    """

    action: str
    how: ParseHow
    valid: bool = True
    why: str = ""


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _clean(line: str) -> str:
    line = _FENCE.sub("", line.strip()).strip()
    line = _PREFIX.sub("", line)
    return " ".join(line.strip(_TRIM).split())


def _match_admissible(text: str, admissible: Sequence[str]) -> str | None:
    by_norm = {_norm(a): a for a in admissible}
    return by_norm.get(_norm(_clean(text)))


def _lenient(text: str, admissible: Sequence[str] | None) -> ParseOutcome:
    lines = [
        ln for ln in text.strip().splitlines() if ln.strip() and not ln.strip().startswith("```")
    ]
    if not lines:
        return ParseOutcome("", "empty", False, "empty reply")
    first = _clean(lines[0])
    if not admissible:
        return (
            ParseOutcome(first, "raw") if first else ParseOutcome("", "empty", False, "empty reply")
        )
    whole = _match_admissible(" ".join(lines), admissible)
    if whole is not None:
        return ParseOutcome(whole, "exact")
    for line in reversed(lines):
        hit = _match_admissible(line, admissible)
        if hit is not None:
            return ParseOutcome(hit, "exact")
    flat = _norm(text)
    best: tuple[int, int, str] | None = None
    for command in admissible:
        key = _norm(command)
        if not key:
            continue
        for m in re.finditer(r"(?<![\w])" + re.escape(key) + r"(?![\w])", flat):
            cand = (len(key), m.start(), command)
            if best is None or cand[:2] > best[:2]:
                best = cand
    if best is not None:
        return ParseOutcome(best[2], "contained")
    return ParseOutcome(first, "raw") if first else ParseOutcome("", "empty", False, "empty reply")


def parse_action(
    reply: str,
    admissible: Sequence[str] | None,
    *,
    action_format: str = "tagged",
    env_name: str = "",
) -> ParseOutcome:
    """Map a model reply to an environment action (see the module docstring; ``env_name``
    picks the ``published`` projection)."""
    if action_format == "published":
        return _published(reply, env_name)
    if action_format == "passthrough":
        if not reply.strip():
            return ParseOutcome("", "empty", False, "empty reply")
        return ParseOutcome(reply, "passthrough")
    text = _THINK.sub("", reply)
    if action_format == "lenient":
        tagged = _TAGGED.findall(text)
        return _lenient(tagged[-1] if tagged else text, admissible)
    if action_format != "tagged":
        raise ValueError(
            f"action_format must be tagged, lenient, passthrough or published, got {action_format!r}"
        )
    tagged = _TAGGED.findall(text)
    if not tagged:
        why = (
            "the <action> tag is not closed with </action>"
            if _OPEN_TAG.search(text)
            else "no <action>...</action> in the reply"
        )
        return ParseOutcome("", "empty", False, why)
    content = " ".join(tagged[-1].strip(_TRIM).split())
    if not content:
        return ParseOutcome("", "empty", False, "the <action> tag is empty")
    if admissible:
        hit = _match_admissible(content, admissible)
        if hit is not None:
            return ParseOutcome(hit, "tagged")
    return ParseOutcome(content, "tagged")


def _published(reply: str, env_name: str) -> ParseOutcome:
    """The published projection of ``env_name`` (``projection.py``; module docstring)."""
    if env_name == "search":
        return _published_search(reply)
    low = reply.lower()
    start, end = low.find("<action>"), low.find("</action>")
    if start == -1 or end == -1:
        return ParseOutcome(low[-30:], "projected", False, "no <action>...</action> in the reply")
    action = low[start + len("<action>") : end].strip().lower()
    if _CHINESE.search(reply):
        return ParseOutcome(action, "tagged", False, "Chinese characters in the reply")
    return ParseOutcome(action, "tagged")


_P_SEARCH = re.compile(r"<search>(.*?)</search>", re.I | re.S)
_P_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.I | re.S)
_P_SEARCH_TAG = re.compile(r"<search>", re.I)
_P_ANSWER_TAG = re.compile(r"<answer>", re.I)


def _published_search(reply: str) -> ParseOutcome:
    cut = reply
    if "</search>" in cut:
        cut = cut.split("</search>", 1)[0] + "</search>"
    elif "</answer>" in cut:
        cut = cut.split("</answer>", 1)[0] + "</answer>"
    m = _P_SEARCH.search(cut)
    if m:
        out = ParseOutcome(f"<search>{m.group(1).strip()}</search>", "tagged")
    else:
        m = _P_ANSWER.search(cut)
        if m:
            out = ParseOutcome(f"<answer>{m.group(1).strip()}</answer>", "tagged")
        else:
            out = ParseOutcome("", "projected", False, "no <search> or <answer> block in the reply")
    n_search, n_answer = len(_P_SEARCH_TAG.findall(reply)), len(_P_ANSWER_TAG.findall(reply))
    if n_search and n_answer:
        return ParseOutcome(out.action, out.how, False, "both <search> and <answer> in the reply")
    if n_search > 1 or n_answer > 1:
        return ParseOutcome(out.action, out.how, False, "more than one <search> or <answer> tag")
    return out
