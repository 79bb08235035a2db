"""Trigger patterns: safety checks, compiled matchers, pattern sets and BM25 retrieval.

Exports: ``TRIGGER_TYPES``, ``MAX_PATTERN_CHARS``, ``MAX_MATCH_CHARS``, ``DEFAULT_TOP_K``,
``MAX_PROGRAM_SIZE``, ``check_pattern``, ``program_size``, ``compile_pattern``, ``Matcher``,
``PatternSet``, ``PatternSetError``, ``RetrievalIndex``.

Why this module exists: the published ReSkill code only *warned* about a bad trigger regex,
so the skill silently never fired, and evaluated user regexes with Python's backtracking
engine on every turn. Here a pattern is checked once, when the skill is created or loaded:

* longer than ``MAX_PATTERN_CHARS`` (200) -> rejected;
* does not compile, or uses a back-reference -> rejected;
* a repeat inside a repeat (``(a+)+``, ``(a*)*``, ``(\\w+\\s?)*``) or a repeated alternation
  whose branches can start with the same character (``(a|a)*``, ``(a|ab)+``) -> rejected,
  these are the shapes of catastrophic backtracking;
* RE2 (Google's linear-time engine) cannot run it (look-around, ``\\Z`` and friends)
  -> rejected. There is no fallback to Python's backtracking ``re``: one look-ahead
  behind a few ``.*`` (``.*.*.*.*.*.*(?=zqzq)``) made an ALFWorld ``reset()`` take 20 s
  and eight of them never finished, so every pattern that loads runs on RE2, in time
  linear in the text;
* it compiles to more than ``MAX_PROGRAM_SIZE`` RE2 instructions (``\\W{1000}`` repeated
  a few times: each passes alone, six of them overflow a pattern set) -> rejected;
* the text matched is cut to ``MAX_MATCH_CHARS`` (second guard).

Matching is case-insensitive and unanchored (``search`` semantics).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from reskill_gym.skills.errors import UnsafePatternError

if sys.version_info >= (3, 11):
    import re._constants as _sre_c
    import re._parser as _sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_c
    import sre_parse as _sre_parse

__all__ = [
    "TRIGGER_TYPES",
    "TriggerType",
    "MAX_PATTERN_CHARS",
    "MAX_MATCH_CHARS",
    "DEFAULT_TOP_K",
    "MAX_PROGRAM_SIZE",
    "check_pattern",
    "program_size",
    "compile_pattern",
    "Matcher",
    "PatternSet",
    "PatternSetError",
    "RetrievalIndex",
]

logger = logging.getLogger(__name__)

TriggerType = Literal["general", "beginning", "action_pattern", "observation_pattern", "retrieval"]
TRIGGER_TYPES: tuple[str, ...] = (
    "general",
    "beginning",
    "action_pattern",
    "observation_pattern",
    "retrieval",
)
MAX_PATTERN_CHARS = 200
MAX_MATCH_CHARS = 8192
DEFAULT_TOP_K = 3
_SET_CHUNK = 512
_SET_MAX_MEM = 64 << 20
#: Largest compiled program of one pattern, in RE2 instructions. A real trigger is a few
#: dozen (``go to (fridge|microwave) \d+``: 30); ``\W{1000}`` alone is 27 000, and six
#: 200-character patterns of that kind overflow any pattern set's memory.
MAX_PROGRAM_SIZE = 5_000
#: Instructions per ``re2.Set``: patterns are packed into sets up to this size, so a set
#: stays far inside its memory budget (``_SET_MAX_MEM``) whatever the library holds.
_SET_PROGRAM_BUDGET = 100_000
_TOO_LARGE = 1 << 30

_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT}
if hasattr(_sre_c, "POSSESSIVE_REPEAT"):
    _REPEATS.add(_sre_c.POSSESSIVE_REPEAT)
_MAXREPEAT = _sre_c.MAXREPEAT
_WORD_RE = re.compile(r"(?u)\b\w\w+\b")


def _re2_module() -> Any | None:
    try:
        import re2  # google-re2
    except ImportError:  # pragma: no cover - google-re2 is a core dependency
        return None
    return re2


def _require_re2() -> Any:
    re2 = _re2_module()
    if re2 is None:  # pragma: no cover - google-re2 is a core dependency
        raise ImportError("google-re2 is not installed: pip install google-re2")
    return re2


def _re2_options(max_mem: int | None = None) -> Any:
    re2 = _require_re2()
    opts = re2.Options()
    opts.case_sensitive = False
    opts.log_errors = False
    if max_mem is not None:
        opts.max_mem = max_mem
    return opts


def _is_wide(node_args: tuple) -> bool:
    """A repeat that can match more than a handful of times (``*``, ``+``, ``{2,}``...)."""
    _lo, hi, _sub = node_args
    return hi == _MAXREPEAT or hi > 16


def _first_chars(sub: Any) -> set[str] | None:
    """Characters a sub-pattern can start with (None: (almost) any, too broad to tell)."""
    for op, av in sub:
        if op is _sre_c.LITERAL:
            return {chr(av).lower()}
        if op is _sre_c.NOT_LITERAL or op is _sre_c.ANY or op is _sre_c.CATEGORY:
            return None
        if op is _sre_c.IN:
            chars: set[str] = set()
            for iop, iav in av:
                if iop is _sre_c.LITERAL:
                    chars.add(chr(iav).lower())
                elif iop is _sre_c.RANGE and iav[1] - iav[0] < 64:
                    chars.update(chr(c).lower() for c in range(iav[0], iav[1] + 1))
                else:
                    return None
            return chars
        if op is _sre_c.SUBPATTERN:
            return _first_chars(av[-1])
        if op in _REPEATS:
            lo, _hi, inner = av
            first = _first_chars(inner)
            if lo == 0:  # optional: the next item may start the match too
                return None
            return first
        if op is _sre_c.BRANCH:
            out: set[str] = set()
            for alt in av[1]:
                f = _first_chars(alt)
                if f is None:
                    return None
                out |= f
            return out
        if op is _sre_c.AT:  # anchors consume nothing
            continue
        return None
    return None  # empty: matches the empty string, overlaps with anything


def _scan(sub: Any, inside_repeat: bool, pattern: str) -> None:
    for op, av in sub:
        if op is _sre_c.GROUPREF or op is _sre_c.GROUPREF_EXISTS:
            raise UnsafePatternError(
                f"back-references are not allowed (super-linear matching): {pattern!r}"
            )
        if op in _REPEATS:
            wide = _is_wide(av)
            if wide and inside_repeat:
                raise UnsafePatternError(
                    f"nested quantifier (catastrophic backtracking), e.g. '(a+)+': {pattern!r}"
                )
            _scan(av[2], inside_repeat or wide, pattern)
        elif op is _sre_c.BRANCH:
            alts = av[1]
            if inside_repeat:
                seen: set[str] = set()
                for alt in alts:
                    first = _first_chars(alt)
                    if first is None or (seen & first):
                        raise UnsafePatternError(
                            "repeated alternation with overlapping branches "
                            f"(catastrophic backtracking), e.g. '(a|a)*': {pattern!r}"
                        )
                    seen |= first
            for alt in alts:
                _scan(alt, inside_repeat, pattern)
        elif op is _sre_c.SUBPATTERN:
            _scan(av[-1], inside_repeat, pattern)
        elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
            _scan(av[1], inside_repeat, pattern)


def check_pattern(pattern: str) -> None:
    """Raise ``UnsafePatternError`` unless ``pattern`` is a short, compilable, safe regex.

    >>> check_pattern(r"^(open|go to) fridge")
    >>> check_pattern(r"(a+)+$")
    Traceback (most recent call last):
    ...
    reskill_gym.skills.errors.UnsafePatternError: nested quantifier (catastrophic backtracking), e.g. '(a+)+': '(a+)+$'
    """
    if not isinstance(pattern, str) or not pattern:
        raise UnsafePatternError("pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsafePatternError(
            f"pattern is {len(pattern)} chars, the limit is {MAX_PATTERN_CHARS}: {pattern[:40]!r}..."
        )
    if "\x00" in pattern:
        raise UnsafePatternError(f"pattern contains a NUL character: {pattern!r}")
    try:
        with warnings.catch_warnings():  # "possible nested set" FutureWarnings: RE2 decides
            warnings.simplefilter("ignore", FutureWarning)
            parsed = _sre_parse.parse(pattern, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePatternError(f"does not compile ({exc}): {pattern!r}") from None
    _scan(parsed, False, pattern)
    problem = _re2_problem(pattern)
    if problem is not None:
        raise UnsafePatternError(
            f"RE2 (the linear-time engine every trigger runs on) cannot run it ({problem}); "
            f"look-around and back-references are not supported: {pattern!r}"
        )
    size = program_size(pattern)
    if size > MAX_PROGRAM_SIZE:
        got = "more than RE2 allows" if size == _TOO_LARGE else f"{size} RE2 instructions"
        raise UnsafePatternError(
            f"compiles to {got}, the limit is {MAX_PROGRAM_SIZE} (a counted repeat such as "
            f"'\\W{{1000}}' costs one copy per count): {pattern[:60]!r}"
        )


def program_size(pattern: str) -> int:
    """Instructions of ``pattern``'s compiled RE2 program (what a pattern set pays for it).

    A pattern RE2 refuses as too large counts as ``_TOO_LARGE``.

    >>> program_size(r"^open ")
    4
    """
    re2 = _require_re2()
    try:
        return int(re2.compile(pattern, _re2_options()).programsize)
    except Exception:  # "pattern too large - compile failed"
        return _TOO_LARGE


class Matcher:
    """One compiled, checked, case-insensitive pattern with bounded ``search``.

    >>> m = compile_pattern(r"^take \\w+ \\d+ from")
    >>> m.search("Take apple 1 from countertop 1"), m.search("go to fridge 1")
    (True, False)
    >>> m.engine
    're2'
    """

    __slots__ = ("pattern", "engine", "_search")

    def __init__(self, pattern: str, engine: str, search: Any) -> None:
        self.pattern = pattern
        self.engine = engine
        self._search = search

    def search(self, text: str, *, limit: int = MAX_MATCH_CHARS) -> bool:
        """True if the pattern occurs in the first ``limit`` characters of ``text``
        (``MAX_MATCH_CHARS`` for triggers)."""
        return self._search(text[:limit]) is not None

    def __repr__(self) -> str:
        return f"Matcher({self.pattern!r}, engine={self.engine!r})"


def _re2_problem(pattern: str) -> str | None:
    """Why RE2 cannot compile ``pattern`` (None when it can)."""
    re2 = _re2_module()
    if re2 is None:  # pragma: no cover - google-re2 is a core dependency
        return "google-re2 is not installed"
    try:
        s = re2.Set.SearchSet(_re2_options())
        s.Add(pattern)
    except Exception:  # re2 raises its own error type for unsupported syntax
        try:  # the compiler says why (the Set only says that it failed)
            re2.compile(pattern, _re2_options())
        except Exception as exc:
            msg = exc.args[0] if exc.args else exc
            if isinstance(msg, bytes):
                msg = msg.decode("utf-8", "replace")
            return str(msg) or type(exc).__name__
        return "not supported in a pattern set"
    return None


def compile_pattern(pattern: str) -> Matcher:
    """Check ``pattern`` (see ``check_pattern``) and compile it with RE2."""
    check_pattern(pattern)
    re2 = _require_re2()
    try:
        compiled = re2.compile(pattern, _re2_options())
    except Exception as exc:  # e.g. over RE2's memory budget
        raise UnsafePatternError(f"RE2 cannot compile it ({exc}): {pattern!r}") from None
    return Matcher(pattern, "re2", compiled.search)


class PatternSetError(UnsafePatternError):
    """RE2 could not build a pattern set from patterns that each pass ``check_pattern``.

    ``patterns`` lists the set's members, so a caller can name the skills they belong to.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        shown = ", ".join(repr(p[:40]) for p in self.patterns[:6])
        more = f" and {len(self.patterns) - 6} more" if len(self.patterns) > 6 else ""
        super().__init__(
            f"RE2 cannot build one pattern set from {len(self.patterns)} patterns "
            f"({shown}{more}): over its memory budget; shorten the counted repeats"
        )


class PatternSet:
    """Many patterns matched in one pass: which of them occur in a text?

    All patterns go into ``re2.Set`` objects (a single linear scan reports every matching
    pattern); a pattern RE2 cannot run is rejected (``check_pattern``). Results are
    memoised per text in a small FIFO cache, because the agent's previous action and many
    observations repeat within and across episodes.

    >>> ps = PatternSet([r"^open ", r"fridge", r"go to desk"])
    >>> ps.match("OPEN fridge 1")
    (0, 1)
    >>> ps.match("go to desk 1")
    (2,)
    """

    def __init__(self, patterns: Sequence[str], cache_size: int = 4096) -> None:
        self.patterns = tuple(patterns)
        self._sets: list[tuple[Any, list[int]]] = []  # (compiled re2.Set, pattern ids)
        re2 = _require_re2()
        for p in self.patterns:
            check_pattern(p)  # rejects anything RE2 cannot run: no backtracking fallback
        # One RE2 set per chunk of at most _SET_CHUNK patterns and _SET_PROGRAM_BUDGET
        # instructions: one set of everything can exceed RE2's memory budget (its Compile
        # fails, and with it every reset); a few chunks cost a few linear scans.
        chunks: list[list[int]] = []
        used = _SET_PROGRAM_BUDGET
        for i, p in enumerate(self.patterns):
            size = program_size(p)
            if used + size > _SET_PROGRAM_BUDGET or len(chunks[-1]) >= _SET_CHUNK:
                chunks.append([])
                used = 0
            chunks[-1].append(i)
            used += size
        for chunk in chunks:
            s = re2.Set.SearchSet(_re2_options(max_mem=_SET_MAX_MEM))
            for i in chunk:
                s.Add(self.patterns[i])
            try:
                s.Compile()
            except Exception:  # re2.error: over the set's memory budget
                raise PatternSetError([self.patterns[i] for i in chunk]) from None
            self._sets.append((s, chunk))
        self._cache: dict[str, tuple[int, ...]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.patterns)

    def match(self, text: str) -> tuple[int, ...]:
        """Indices (ascending) of the patterns that occur in ``text``."""
        cache = self._cache
        hit = cache.get(text)
        if hit is not None:
            return hit
        bounded = text[:MAX_MATCH_CHARS]
        ids: list[int] = []
        for rset, members in self._sets:
            found = rset.Match(bounded)
            if found:
                ids.extend(members[j] for j in found)
        result = tuple(sorted(ids)) if len(ids) > 1 else tuple(ids)
        with self._lock:
            cache[text] = result
            if len(cache) > self._cache_size:
                del cache[next(iter(cache))]  # oldest insertion (FIFO)
        return result


class RetrievalIndex:
    """BM25 (``bm25s``) over each document's text; the top-k documents for a query.

    Built once per library view; queries (the task text) are memoised, so within an
    episode only the first turn pays for scoring.

    >>> idx = RetrievalIndex(["heat food with the microwave", "clean things at the sink"])
    >>> idx.top("heat the apple and put it on the table", top_k=[1, 1])
    (0,)
    """

    def __init__(self, documents: Sequence[str], cache_size: int = 1024) -> None:
        self.documents = tuple(documents)
        self._cache: OrderedDict[tuple[str, tuple[int, ...]], tuple[int, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._retriever: Any = None
        self._stemmer: Any = None
        self._stop: frozenset[str] = frozenset()
        if self.documents:
            import bm25s

            try:
                import Stemmer

                self._stemmer = Stemmer.Stemmer("english")
            except ImportError:  # pragma: no cover - PyStemmer is a core dependency
                self._stemmer = None
            from bm25s.stopwords import STOPWORDS_EN

            self._stop = frozenset(STOPWORDS_EN)
            tokens = bm25s.tokenize(
                list(self.documents), stopwords="en", stemmer=self._stemmer, show_progress=False
            )
            self._retriever = bm25s.BM25()
            self._retriever.index(tokens, show_progress=False)

    def _tokens(self, text: str) -> list[str]:
        # Same rules as bm25s.tokenize (lowercase, \w\w+ words, English stopwords,
        # Snowball stemming) without building a Tokenized object per query.
        words = [w for w in _WORD_RE.findall(text.lower()) if w not in self._stop]
        return self._stemmer.stemWords(words) if self._stemmer is not None else words

    def scores(self, query: str) -> list[float]:
        """BM25 score of every document for ``query`` (0.0 where no term overlaps)."""
        if self._retriever is None:
            return []
        tokens = self._tokens(query)
        if not tokens:
            return [0.0] * len(self.documents)
        return [float(s) for s in self._retriever.get_scores(tokens)]

    def top(self, query: str, top_k: Sequence[int] | int = DEFAULT_TOP_K) -> tuple[int, ...]:
        """Documents ranked within their own ``top_k`` with a positive score, ascending ids.

        ``top_k`` is one number for all documents or one per document (a skill's trigger
        may ask for a narrower or wider k than its neighbours).
        """
        ks = (top_k,) * len(self.documents) if isinstance(top_k, int) else tuple(top_k)
        key = (query, ks)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        scores = self.scores(query)
        order = sorted((i for i, s in enumerate(scores) if s > 0.0), key=lambda i: (-scores[i], i))
        result = tuple(sorted(i for rank, i in enumerate(order) if rank < ks[i]))
        with self._lock:
            self._cache[key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result
