"""``per_turn_grpo_advantages``: equal to veRL's own multi-trajectory GRPO without penalty and
whitening; the invalid-action penalty touches only invalid replies; whitening is veRL's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.verl

verl = pytest.importorskip("verl")

from reskill_verl.advantage import (  # noqa: E402
    invalid_token_mask,
    masked_whiten,
    per_turn_grpo_advantages,
)


def random_batch(seed: int, *, pad_rows: int = 2) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Turn rows of several tasks (uids), sessions of 1-4 turns, the episode return on the
    last token of every row (as the agent loop writes it), plus veRL padding rows."""
    rng = np.random.default_rng(seed)
    keys, rewards, masks = [], [], []
    width = 6
    for u in range(4):
        uid = f"uid-{u}"
        for session in range(int(rng.integers(1, 5))):
            ret = float(rng.choice([0.0, 1.0, 0.5]))
            for turn in range(int(rng.integers(1, 5))):
                n = int(rng.integers(1, width + 1))
                mask = [1] * n + [0] * (width - n)
                row = [0.0] * width
                row[n - 1] = ret
                keys.append(f"{uid}_{session}_{turn}")
                rewards.append(row)
                masks.append(mask)
    for i in range(pad_rows):  # upsample_batch_to_divisible_size: own uid, mask 0, reward 0
        keys.append(f"padabc_{i}_0")
        rewards.append([0.0] * width)
        masks.append([0] * width)
    return keys, torch.tensor(rewards), torch.tensor(masks, dtype=torch.long)


def verl_grpo(keys: list[str], rewards: torch.Tensor, mask: torch.Tensor, norm: bool) -> Any:
    from verl.protocol import DataProto
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards.clone(), "response_mask": mask.clone()},
        non_tensors={"uid": np.array([k.rsplit("_", 2)[0] for k in keys], dtype=object)},
    )
    out = compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator=AdvantageEstimator.GRPO, norm_adv_by_std_in_grpo=norm
    )
    return out.batch["advantages"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("norm", [True, False])
def test_verl_advantage_equals_verl_grpo_without_penalty(seed: int, norm: bool) -> None:
    keys, rewards, mask = random_batch(seed)
    ours = per_turn_grpo_advantages(keys, rewards.sum(-1), mask, norm_by_std=norm)
    theirs = verl_grpo(keys, rewards, mask, norm)
    assert torch.allclose(ours, theirs, atol=1e-6), (ours - theirs).abs().max()
    assert ours[-2:].abs().sum() == 0, "padding rows get nothing"
    # veRL's own fixture: several rewards per row, the final row of a session decides
    vr = torch.tensor(
        [[100, 0, 0, 0], [1, 2, 3, 4], [200, 200, 0, 0], [150, 0, 0, 150], [4, 5, 6, 7]],
        dtype=torch.float32,
    )
    vm = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 1]])
    vk = ["prompt_a_0_0", "prompt_a_0_1", "prompt_a_2_0", "prompt_a_2_1", "prompt_a_3_0"]
    assert torch.allclose(
        per_turn_grpo_advantages(vk, vr.sum(-1), vm, norm_by_std=norm),
        verl_grpo(vk, vr, vm, norm),
        atol=1e-5,
    )


def test_verl_advantage_penalty_only_on_invalid_replies() -> None:
    keys, rewards, mask = random_batch(3, pad_rows=0)
    scores = rewards.sum(-1)
    base = per_turn_grpo_advantages(keys, scores, mask)
    invalid = torch.zeros_like(mask, dtype=torch.float32)
    bad_rows = [1, 4, 7]
    invalid[bad_rows] = 1.0
    invalid[2, :3] = 1.0  # a concat-style span inside a row
    invalid = invalid * mask
    pen = per_turn_grpo_advantages(keys, scores, mask, invalid, penalty=0.1)
    diff = base - pen
    assert (diff[invalid == 0] == 0).all(), "valid tokens are untouched"
    # the penalty is subtracted in advantage units: exactly 0.1, whatever the group std
    assert torch.allclose(diff[invalid > 0], torch.tensor(0.1))
    # a group whose episodes all scored alike (std 0) does not blow up
    same = torch.ones_like(scores)
    flat = per_turn_grpo_advantages(keys, same, mask, invalid, penalty=0.1)
    assert flat.abs().max() <= 1.0 + 1e-6
    # the same without std scaling; zero penalty changes nothing
    raw = per_turn_grpo_advantages(keys, scores, mask, invalid, penalty=0.1, norm_by_std=False)
    plain = per_turn_grpo_advantages(keys, scores, mask, norm_by_std=False)
    assert torch.allclose((plain - raw)[invalid > 0], torch.tensor(0.1))
    assert torch.equal(per_turn_grpo_advantages(keys, scores, mask, invalid, penalty=0.0), base)


def test_verl_advantage_whitening_and_order() -> None:
    from verl.utils.torch_functional import masked_whiten as verl_whiten

    keys, rewards, mask = random_batch(4)
    scores = rewards.sum(-1)
    grpo = per_turn_grpo_advantages(keys, scores, mask)
    both = per_turn_grpo_advantages(keys, scores, mask, double_normalize=True)
    expected = verl_whiten(grpo, mask.float()) * mask
    assert torch.allclose(both, expected, atol=1e-5)
    m = mask.bool()
    assert abs(float(both[m].mean())) < 1e-5 and abs(float(both[m].var()) - 1.0) < 1e-4
    assert both[~m].abs().sum() == 0
    # a group whose episodes all got the same return has 0 before, the batch shift after
    # (the published runs' behaviour)
    assert torch.allclose(masked_whiten(torch.zeros(1, 2), torch.ones(1, 2)), torch.zeros(1, 2))
    # the order of rows does not matter
    perm = torch.randperm(len(keys), generator=torch.Generator().manual_seed(0))
    shuffled = per_turn_grpo_advantages(
        [keys[i] for i in perm], scores[perm], mask[perm], double_normalize=True
    )
    assert torch.allclose(shuffled, both[perm], atol=1e-6)


def test_verl_invalid_token_mask_and_bad_keys() -> None:
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    extra = [
        {"invalid_spans": [[0, 3]]},  # a per_turn invalid reply
        {"invalid_spans": [[1, 2], [3, 99]]},  # concat: two invalid replies, one cut
        {"invalid_spans": [[0, 4]]},  # veRL padding row: copied fields, mask 0
    ]
    got = invalid_token_mask(extra, mask)
    assert got.tolist() == [[1, 1, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]]
    assert invalid_token_mask([None, {}, {"invalid_spans": []}], mask).sum() == 0
    with pytest.raises(ValueError, match="uid"):
        per_turn_grpo_advantages(["nounderscore"], torch.ones(1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="keys"):
        per_turn_grpo_advantages(["a_0_0"], torch.ones(2), torch.ones(2, 1))
