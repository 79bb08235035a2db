"""The score-mode choice rule: token log-probs of every admissible command -> one command.

Exports ``ScoreChoice``, ``candidate_scores``, ``choice_probabilities`` and ``choose_action``.

Training (``reskill_local``), evaluation (``local:`` agents in ``reskill eval``) and the
efficacy benchmark all pick actions through :func:`choose_action`, so a policy is evaluated
under exactly the rule it was trained with:

1. a command's score is the sum (``score_norm: sum``, its sequence log-probability) or the
   mean (``mean``, length-normalised) of its tokens' log-probs, the stop token included;
2. probabilities are ``softmax(score / temperature)``; ``temperature=0`` puts all mass on the
   best command (the first of equals);
3. the command is drawn by inverse CDF from one uniform number ``u`` in [0, 1), so the caller
   owns the random source (a ``torch.Generator`` in training, a seeded numpy generator in
   evaluation) and a replay with the same ``u`` picks the same command.

>>> c = choose_action(["look", "go to desk 1"], [[-2.0], [-1.0, -1.0, -0.5, -0.5]],
...                   norm="mean", temperature=1.0, u=0.9)
>>> c.action, round(c.probs[1], 3)
('go to desk 1', 0.777)
>>> choose_action(["look", "go to desk 1"], [[-2.0], [-1.0, -1.0, -0.5, -0.5]],
...               norm="sum", temperature=0.0, u=0.9).action
'look'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ScoreChoice", "candidate_scores", "choice_probabilities", "choose_action"]


@dataclass(frozen=True)
class ScoreChoice:
    """The chosen command, its index, and the scores/probabilities of every candidate."""

    index: int
    action: str
    scores: list[float]
    probs: list[float]

    @property
    def prob(self) -> float:
        """Probability of the chosen command under the rule."""
        return self.probs[self.index]

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the choice distribution."""
        return float(-sum(p * math.log(p) for p in self.probs if p > 0))


def candidate_scores(token_logprobs: Sequence[Sequence[float]], norm: str) -> np.ndarray:
    """Per-candidate score: the sum or the mean of its token log-probs."""
    if norm not in ("sum", "mean"):
        raise ValueError(f"score_norm must be 'sum' or 'mean', got {norm!r}")
    out = np.empty(len(token_logprobs), dtype=np.float64)
    for i, lps in enumerate(token_logprobs):
        if len(lps) == 0:
            raise ValueError(f"candidate {i} has no tokens to score")
        total = float(np.sum(np.asarray(lps, dtype=np.float64)))
        out[i] = total if norm == "sum" else total / len(lps)
    return out


def choice_probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(scores / temperature)``; ``temperature=0``: one-hot on the first best score."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no candidates to choose from")
    if temperature == 0:
        probs = np.zeros_like(s)
        probs[int(np.argmax(s))] = 1.0
        return probs
    z = s / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def choose_action(
    candidates: Sequence[str],
    token_logprobs: Sequence[Sequence[float]],
    *,
    norm: str,
    temperature: float,
    u: float,
) -> ScoreChoice:
    """Pick one of ``candidates`` by the rule in the module docstring."""
    if len(candidates) != len(token_logprobs):
        raise ValueError(f"{len(candidates)} candidates but {len(token_logprobs)} log-prob lists")
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be in [0, 1), got {u}")
    scores = candidate_scores(token_logprobs, norm)
    probs = choice_probabilities(scores, temperature)
    k = int(np.searchsorted(np.cumsum(probs), u, side="right"))
    k = min(k, len(candidates) - 1)  # float round-off at the top end
    while probs[k] == 0.0 and k > 0:  # never land on a zero-probability candidate
        k -= 1
    return ScoreChoice(k, candidates[k], scores.tolist(), probs.tolist())
