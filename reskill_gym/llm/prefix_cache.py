"""Reuse of prompt KV caches across score calls that share a token prefix.

Exports ``PrefixCache``, ``PrefixHit`` and ``CandidateTree``.

Why: in score mode every condition of an expert-metric state (none, library, placebo,
shuffled) shows the same prompt up to the skill block at its end, and consecutive turns of an
episode share the system prompt, the task and most of the history. Re-running the whole
prompt for each call made a 1.5B model cost 6-12 s per call on two CPU cores. The cache keeps
the key/value tensors of recent prompts, keyed by their token ids; a new prompt runs only the
tokens after its longest common prefix with a kept one.

``PrefixCache`` is torch-free bookkeeping: it stores whatever per-layer ``(key, value)``
tensors it is given (shape ``[1, heads, tokens, dim]``; only their ``shape[-2]`` is read) and
hands back the longest match. It is bounded by the total number of tokens it keeps (least
recently used entries go first) and guarded by a lock, so one backend can serve threads.

``CandidateTree`` packs the candidate replies of one call into a token trie: shared leading
tokens (``go to cabinet`` in ``go to cabinet 1`` … ``go to cabinet 12``) are run once, and
every node attends to the prompt and to its own ancestors only (a tree attention mask), so
all candidates go through the model in one row without repeating the prompt's cache per
candidate.

>>> cache = PrefixCache(max_tokens=10)
>>> cache.put([1, 2, 3, 4], [("k", "v")])
>>> hit = cache.match([1, 2, 3, 9, 9])
>>> hit.length, hit.entry_tokens
(3, 4)
>>> cache.match([7]).length
0
>>> tree = CandidateTree([[5, 6, 0], [5, 7, 0], [8, 0]])
>>> tree.tokens, tree.depths, tree.parents
([5, 6, 7, 8], [0, 1, 1, 0], [-1, 0, 0, -1])
>>> tree.ancestors(2)
[2, 0]
>>> tree.logit_rows([5, 7, 0])
[None, 0, 2]
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PrefixCache", "PrefixHit", "CandidateTree"]


@dataclass(frozen=True)
class PrefixHit:
    """The longest kept prefix of a prompt: ``length`` shared tokens and the kept entry's
    per-layer ``(key, value)`` tensors (``entry_tokens`` long; slice them to ``length``)."""

    length: int
    layers: Sequence[tuple[Any, Any]] | None
    entry_tokens: int = 0


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    # compare in blocks first: prompts share hundreds of tokens
    step = 64
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """Bounded LRU of prompt KV caches keyed by their token ids (see the module docstring).

    ``max_tokens`` bounds the tokens kept over all entries (0 disables the cache: ``put``
    keeps nothing). An entry longer than the bound is not kept.
    """

    def __init__(self, max_tokens: int) -> None:
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], Sequence[tuple[Any, Any]]] = OrderedDict()
        self._tokens = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.reused_tokens = 0
        self.lookups = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def tokens(self) -> int:
        """Tokens kept over all entries."""
        return self._tokens

    def match(self, ids: Sequence[int]) -> PrefixHit:
        """The kept entry sharing the longest prefix with ``ids`` (marked recently used)."""
        with self._lock:
            self.lookups += 1
            best_key: tuple[int, ...] | None = None
            best = 0
            for key in self._entries:
                n = _common_prefix(key, ids)
                if n > best:
                    best, best_key = n, key
            if best_key is None:
                return PrefixHit(0, None)
            self._entries.move_to_end(best_key)
            self.hits += 1
            self.reused_tokens += best
            return PrefixHit(best, self._entries[best_key], len(best_key))

    def put(self, ids: Sequence[int], layers: Sequence[tuple[Any, Any]]) -> None:
        """Keep ``layers`` (the KV of exactly ``ids``), evicting least recently used entries."""
        key = tuple(ids)
        if not key or len(key) > self.max_tokens:
            return
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            # an entry that is a prefix of the new one is redundant
            for old in [k for k in self._entries if len(k) <= len(key) and key[: len(k)] == k]:
                del self._entries[old]
                self._tokens -= len(old)
            while self._entries and self._tokens + len(key) > self.max_tokens:
                dropped, _ = self._entries.popitem(last=False)
                self._tokens -= len(dropped)
            self._entries[key] = tuple(layers)
            self._tokens += len(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._tokens = 0


class CandidateTree:
    """A token trie over candidate replies, in first-seen order (see the module docstring).

    Each candidate's last token (the stop token) predicts nothing, so it gets no node: a
    candidate of ``k`` tokens needs the logits of its first ``k - 1`` prefixes, the first of
    which (the empty prefix) are the prompt's last logits.
    """

    def __init__(self, candidates: Sequence[Sequence[int]]) -> None:
        self.tokens: list[int] = []
        self.depths: list[int] = []
        self.parents: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}
        for cand in candidates:
            parent = -1
            for i in range(len(cand) - 1):
                key = tuple(cand[: i + 1])
                node = self._index.get(key)
                if node is None:
                    node = len(self.tokens)
                    self._index[key] = node
                    self.tokens.append(int(cand[i]))
                    self.depths.append(i)
                    self.parents.append(parent)
                parent = node

    def __len__(self) -> int:
        return len(self.tokens)

    def ancestors(self, node: int) -> list[int]:
        """``node`` and every node above it (what it may attend to besides the prompt)."""
        out = []
        while node >= 0:
            out.append(node)
            node = self.parents[node]
        return out

    def logit_rows(self, cand: Sequence[int]) -> list[int | None]:
        """Per token of ``cand``, the node whose logits predict it (``None``: the prompt's)."""
        return [None] + [self._index[tuple(cand[:i])] for i in range(1, len(cand))]
