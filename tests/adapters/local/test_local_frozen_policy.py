"""`trainer.update_policy: false` (the published skip_policy_update) in the local trainer.

Rollouts, co-evolution (record / end_step), metrics and checkpoints run as usual; no
advantages, loss, optimizer or reference model, and the weights never move. The real
SmolLM2-135M and the chain env of conftest.py; one short run on the real ALFWorld engine
(slow: ~20 s of CPU).
"""

from __future__ import annotations

import json

import pytest
import torch
from reskill_local.grpo import GRPOConfig, GRPOTrainer

from reskill_gym.rollout import TurnConfig

TURN = TurnConfig(action_mode="score", score_norm="sum", history_turns=1)


class _Recording:
    """A real (minimal) co-evolution protocol implementation that remembers its calls."""

    def __init__(self) -> None:
        self.recorded: list = []
        self.ended: list[int] = []

    def plan_step(self, groups):
        from reskill_gym.coevolve import StepPlan

        return StepPlan(
            versions=[["vA"] * n for _g, _t, n in groups],
            arms=[["head"] * n for *_, n in groups],
            head="vA",
            testing=False,
        )

    def record(self, episodes) -> None:
        self.recorded.extend(episodes)

    def end_step(self, step: int):
        self.ended.append(step)
        return []


def _fingerprint(model) -> dict[str, tuple[float, list[float]]]:
    """Per parameter: its sum and its first values (any optimizer step moves both)."""
    with torch.no_grad():
        return {n: (float(p.sum()), p.flatten()[:32].tolist()) for n, p in model.named_parameters()}


def test_frozen_step_rolls_out_and_records_without_learning(
    base_policy, chain_env_cls, tmp_path
) -> None:
    before = _fingerprint(base_policy.model)
    co = _Recording()
    cfg = GRPOConfig(
        group_size=4, groups_per_step=1, temperature=1000.0, kl_coef=0.05, update_policy=False
    )
    trainer = GRPOTrainer(
        cfg,
        lambda task, version: chain_env_cls(max_turns=2),
        ["door", "lamp"],
        turn=TURN,
        coevo=co,
        policy=base_policy,
    )
    assert trainer.optimizer is None and trainer.ref_model is None  # nothing to learn with
    results = trainer.train(2)
    assert co.ended == [0, 1] and len(co.recorded) == 8
    m = results[-1].metrics
    assert not [k for k in m if k.startswith("losses/")], "a frozen step has no loss"
    assert m["episode/count"] == 4 and m["rollouts/samples"] > 0 and m["time/update_s"] == 0.0
    assert _fingerprint(base_policy.model) == before
    with pytest.raises(RuntimeError, match="frozen policy"):
        trainer.update([(object(), 1.0)])  # type: ignore[list-item]

    # checkpoints carry no weights and no optimizer; the RNG streams round-trip
    path = tmp_path / "trainer.pt"
    trainer.save(path)
    state = torch.load(path, weights_only=False)
    assert state["weights"] == {} and state["optimizer"] is None and state["step"] == 2
    draws = trainer.rng.integers(1000, size=4).tolist()
    trainer.load(path)
    assert trainer.rng.integers(1000, size=4).tolist() == draws and trainer.step_count == 2


@pytest.mark.slow
def test_frozen_training_run_on_alfworld(base_policy, tmp_path) -> None:
    pytest.importorskip("alfworld")
    from reskill_local.train import TrainingRun, latest_checkpoint, load_config

    before = _fingerprint(base_policy.model)
    cfg = load_config(
        None,
        [
            f"run.out_dir={tmp_path}",
            "run.name=frozen",
            "run.steps=2",
            "run.progress=false",
            "env.tasks=[tiny/train/0000,tiny/train/0006]",
            "env.kwargs.difficulty=tiny",
            "env.kwargs.max_turns=2",
            "env.max_active_skills=2",
            "rollout.history_turns=0",
            "trainer.update_policy=false",
            "trainer.group_size=2",
            "trainer.groups_per_step=2",
            "coevolution.async_creator=false",
            "coevolution.creator.min_reservoir_size=4",
            "coevolution.creator.rules_min_support=1",
            "coevolution.creator.rules_loop_length=2",
        ],
    )
    summary = TrainingRun.create(cfg, policy=base_policy).train()
    run = tmp_path / "frozen"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert summary.steps_done == 2 and [r["step"] for r in rows] == [0, 1]
    assert all("losses/total" not in r and r["episode/count"] == 4 for r in rows)
    assert rows[-1]["creator/passes"] >= 1  # the creator ran on the frozen policy's rollouts
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.name == "step_000002"
    assert (ckpt / "trainer.pt").stat().st_size < 1_000_000  # no weights in it
    assert summary.report is not None and summary.report.is_file()
    assert _fingerprint(base_policy.model) == before
