"""Search-R1 action parsing and SQuAD-style answer scoring.

Exports ``normalize_answer``, ``exact_match``, ``f1_score``, ``best_scores``, ``ParsedAction``
and ``parse_search_tags``.

The reward of the search environment is the one Search-R1 (and the ReSkill paper) reports:
exact match after SQuAD normalisation (lowercase, drop punctuation and the articles
"a/an/the", collapse whitespace) against any gold alias. Token F1 is reported beside it
because EM alone hides near misses ("Lake Orvan" vs "Orvan").
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "normalize_answer",
    "exact_match",
    "f1_score",
    "best_scores",
    "ParsedAction",
    "parse_search_tags",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
# Search-R1 takes the first <search>/<answer> block of a reply; reasoning around it
# (``<think>...</think>``) is allowed and ignored.
_ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, strip punctuation and articles, squeeze spaces.

    >>> normalize_answer("  The  Velmor River! ")
    'velmor river'
    """
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold alias, else 0.0.

    >>> exact_match("the Orvan", ["Orvan", "Lake Orvan"])
    1.0
    """
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Iterable[str]) -> float:
    """Best token-level F1 of the prediction against any gold alias (SQuAD style).

    Yes/no/noanswer golds only score on an exact match, as in HotpotQA's evaluator.

    >>> round(f1_score("Velmor River delta", ["Velmor River"]), 3)
    0.8
    """
    pred = normalize_answer(prediction)
    best = 0.0
    for gold in golds:
        norm_gold = normalize_answer(gold)
        special = {"yes", "no", "noanswer"}
        if (pred in special or norm_gold in special) and pred != norm_gold:
            continue
        best = max(best, _f1(pred.split(), norm_gold.split()))
    return best


def best_scores(prediction: str, golds: Iterable[str]) -> tuple[float, float]:
    """``(em, f1)`` of one prediction against a gold alias list."""
    golds = list(golds)
    return exact_match(prediction, golds), f1_score(prediction, golds)


@dataclass(frozen=True)
class ParsedAction:
    """One agent reply reduced to what the environment acts on."""

    kind: Literal["search", "answer", "invalid"]
    content: str = ""
    reason: str = ""


def parse_search_tags(text: str) -> ParsedAction:
    """Find the first ``<search>``/``<answer>`` block, as Search-R1's rollout loop does.

    >>> parse_search_tags("<think>who?</think><search> Velmor River </search>")
    ParsedAction(kind='search', content='Velmor River', reason='')
    >>> parse_search_tags("Paris").kind
    'invalid'
    """
    if not text.strip():
        return ParsedAction("invalid", reason="empty action")
    match = _ACTION.search(text)
    if match is None:
        return ParsedAction(
            "invalid", reason="no <search>...</search> or <answer>...</answer> block"
        )
    kind: Literal["search", "answer"] = "search" if match.group(1).lower() == "search" else "answer"
    content = " ".join(match.group(2).split())
    if not content:
        return ParsedAction("invalid", reason=f"empty <{kind}> block")
    return ParsedAction(kind, content)
