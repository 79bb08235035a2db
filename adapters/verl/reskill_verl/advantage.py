"""GRPO advantages for turn samples with the invalid-action penalty and batch whitening.

Exports ``per_turn_grpo_advantages``, ``invalid_token_mask`` and ``masked_whiten``.

veRL 0.9.1's V1 trainer already does episode-level GRPO on multi-sample trajectories
(``compute_advantage_for_multi_trajectories``): rows are keyed ``{uid}_{session}_{index}``,
the group of a task is its ``uid``, only each session's final row enters the group
statistics and its advantage is broadcast to every row of the session. Two things of the
published system sit on top of that and need the rows' turn records, so they are computed
here, as a pure function of the batch, after veRL's own pass (``ReskillTrainer._compute_advantage``):

- **invalid-action penalty** (``reskill.rollout.invalid_action_penalty``): the advantage of
  the tokens of a reply that carried no valid action is lowered by the penalty, after the
  group normalisation (group statistics stay over the episodes' returns, one per session);
  nothing else changes, and the env return the version tester sees is never changed. The
  published code subtracts the penalty from the reward *before* normalising, which divides
  it by the group std: in a group whose episodes all scored alike (std 0) an invalid turn
  then gets an advantage of ``-penalty / eps`` (-1e5 with veRL's eps). Subtracting it in
  advantage units keeps it bounded; the local trainer does the same
  (``reskill_local.grpo``). In the ``concat`` layout one row holds all replies of an
  episode: the penalty goes to the tokens of the invalid replies (``invalid_spans``).
- **double normalisation** (``reskill.grpo_double_normalize``): after the group
  normalisation, whiten the advantages over all trained tokens of the batch (mean 0,
  variance 1, veRL's ``masked_whiten`` statistics).

With ``penalty=0`` and no whitening the result equals veRL's own GRPO (tested).

>>> import torch
>>> keys = ["a_0_0", "a_0_1", "a_1_0", "b_0_0"]        # task a: sessions 0 (2 turns) and 1
>>> scores = torch.tensor([1.0, 1.0, 0.0, 1.0])      # every turn row carries its episode return
>>> mask = torch.ones(4, 2)
>>> invalid = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
>>> adv = per_turn_grpo_advantages(keys, scores, mask, invalid, penalty=0.1)
>>> [round(x, 3) for x in adv[:, 0].tolist()]        # b is a group of one: mean 0, std 1
[0.707, 0.607, -0.707, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from reskill_gym.rollout import penalize_invalid

__all__ = ["per_turn_grpo_advantages", "invalid_token_mask", "masked_whiten"]


def _session_of(key: str) -> tuple[str, str, int]:
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(f"batch key {key!r}: expected veRL's '{{uid}}_{{session}}_{{index}}'")
    return parts[0], f"{parts[0]}_{parts[1]}", int(parts[2])


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(values - mean) / sqrt(var + eps)`` with mean and unbiased variance over ``mask``
    (veRL's ``verl.utils.torch_functional.masked_whiten``); masked-out entries become 0.

    Fewer than two masked entries: returned unchanged (times the mask).

    >>> masked_whiten(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    tensor([[-0.7071,  0.7071,  0.0000]])
    """
    m = mask.to(values.dtype)
    n = m.sum()
    if n < 2:
        return values * m
    mean = (values * m).sum() / n
    var = (((values - mean) ** 2) * m).sum() / n * (n / (n - 1))
    return (values - mean) * torch.rsqrt(var + eps) * m


def invalid_token_mask(
    extra_fields: Sequence[Mapping[str, Any] | None], response_mask: torch.Tensor
) -> torch.Tensor:
    """Per row, 1.0 on the response tokens of replies that carried no valid action.

    Reads ``extra_fields["invalid_spans"]`` (``[[start, end), ...]`` in response-token
    coordinates, written by the agent loop); rows without it (veRL's padding rows carry a
    copy of a real row's fields but an all-zero mask) count as valid. Multiplied by the mask.
    """
    out = torch.zeros_like(response_mask, dtype=torch.float32)
    width = response_mask.shape[1]
    for i, extra in enumerate(extra_fields):
        spans = (extra or {}).get("invalid_spans") or []
        for span in spans:
            start, end = int(span[0]), min(int(span[1]), width)
            if end > start >= 0:
                out[i, start:end] = 1.0
    return out * response_mask.to(out.dtype)


def per_turn_grpo_advantages(
    keys: Sequence[str],
    scores: torch.Tensor,
    response_mask: torch.Tensor,
    invalid: torch.Tensor | None = None,
    *,
    penalty: float = 0.0,
    norm_by_std: bool = True,
    eps: float = 1e-6,
    double_normalize: bool = False,
) -> torch.Tensor:
    """Token advantages ``(rows, response_len)`` of a V1 batch (see the module docstring).

    Args:
        keys: veRL's row keys ``{uid}_{session}_{index}`` (padding rows included).
        scores: each row's summed reward (``rm_scores.sum(-1)``: the episode return on
            every turn row of the session).
        response_mask: ``(rows, L)`` 1 on trained tokens.
        invalid: ``(rows, L)`` 1 on tokens of invalid replies (:func:`invalid_token_mask`).
        penalty: subtracted from the advantage of the tokens of invalid replies.
        norm_by_std: divide by the group std (veRL's ``norm_adv_by_std_in_grpo``).
        eps: veRL's GRPO epsilon.
        double_normalize: whiten over all masked tokens of the batch afterwards.
    """
    rows = len(keys)
    if scores.shape[0] != rows or response_mask.shape[0] != rows:
        raise ValueError(
            f"{rows} keys but scores {tuple(scores.shape)} / mask {tuple(response_mask.shape)}"
        )
    final: dict[str, tuple[int, int]] = {}  # session -> (highest index, its row)
    sessions: list[str] = []
    uids: dict[str, str] = {}
    for i, key in enumerate(keys):
        uid, session, index = _session_of(key)
        sessions.append(session)
        uids[session] = uid
        if session not in final or final[session][0] < index:
            final[session] = (index, i)
    # group statistics over one return per session (veRL: the final row's score)
    scores = scores.detach().to(torch.float32)
    by_uid: dict[str, list[torch.Tensor]] = {}
    for session, (_, row) in final.items():
        by_uid.setdefault(uids[session], []).append(scores[row])
    mean: dict[str, torch.Tensor] = {}
    std: dict[str, torch.Tensor] = {}
    for uid, vals in by_uid.items():
        if len(vals) == 1:
            mean[uid], std[uid] = torch.tensor(0.0), torch.tensor(1.0)
        else:
            stacked = torch.stack(vals)
            mean[uid], std[uid] = torch.mean(stacked), torch.std(stacked)
    base = torch.empty(rows, dtype=torch.float32)
    for i, session in enumerate(sessions):
        uid = uids[session]
        s = scores[final[session][1]]
        if norm_by_std:
            base[i] = (s - mean[uid]) / (std[uid] + eps)
        else:
            base[i] = s - mean[uid]
    mask = response_mask.to(torch.float32)
    adv = base.unsqueeze(-1) * mask
    if penalty and invalid is not None:
        adv = penalize_invalid(adv, invalid.to(torch.float32) * mask, penalty)
    if double_normalize:
        adv = masked_whiten(adv, mask)
    return adv
