"""veRL 0.9.1's real V1 ``fit()`` on CPU with the project's trainer (``reskill_sync``), agent
loop, co-evolution actor and advantage code; ``verl_fit_harness`` says what stands in for
GPUs (FSDP workers, vLLM). Each test is a few real training steps through veRL's batch path
(TensorDict -> chunk -> Ray agent-loop worker -> TransferQueue -> replay buffer -> padding ->
old/ref log-probs -> rollout-correction step -> advantages -> update -> checkpoint ->
validation -> metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.verl, pytest.mark.slow]

verl = pytest.importorskip("verl")

import verl_fit_harness as fh  # noqa: E402  (conftest puts this folder on sys.path)
from verl_harness import prepare_search  # noqa: E402

VAL_ACC = "val-core/reskill/search/seen/synthetic/acc/mean@1"
"""veRL's own validation metric for the search rows (``data_source`` names the benchmark)."""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fh.build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="module")
def search_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search-data")
    return prepare_search(root / "data", root / "cache", train=2, val=2), root / "cache"


@pytest.fixture(scope="module")
def transfer_queue(ray_session: Any) -> Any:
    pytest.importorskip("transfer_queue")
    tq = fh.start_transfer_queue()
    yield tq
    tq.close()


def check_token_alignment(run: fh.FitRun, step: int) -> None:
    """veRL's own comparison of the rollout's log-probs with the trainer's recomputation of
    the same tokens: equal up to float noise only if every response token, mask and
    log-prob the agent loop packed lines up with what the trainer reads."""
    assert run.metric(step, "training/rollout_probs_diff_max") < 1e-5
    assert abs(run.metric(step, "rollout_corr/log_ppl_diff")) < 1e-4


def test_verl_fit_per_turn_penalty_whitening_validation_kill_and_resume(
    tmp_path, tiny_model, search_data, transfer_queue
):
    """per_turn samples, the invalid-action penalty and double normalisation through three
    veRL steps; validation at step 2; checkpoints at 2 and 3; the job killed in step 3's
    update, then resumed from step 2 (policy, dataloader and co-evolution from the same step)
    and finished."""
    cfg = fh.fit_config(
        tmp_path,
        tiny_model,
        *search_data,
        [
            "data.max_response_length=32",
            "reskill.rollout.layout=per_turn",
            "reskill.rollout.invalid_action_penalty=0.1",
            "reskill.grpo_double_normalize=true",
            "trainer.total_training_steps=3",
            "trainer.save_freq=2",
            "trainer.test_freq=2",
        ],
    )
    run = fh.run_fit(cfg, tmp_path / "weights", crash_at_update=3)
    assert isinstance(run.error, fh.SimulatedCrash), run.error
    root = tmp_path / "ckpt"
    for step in (1, 2):
        check_token_alignment(run, step)
        # per_turn: one row per turn (2 tasks x 2 sessions x <= 2 turns), the penalty on the
        # invalid replies of the tiny random policy, the batch whitened
        assert 4 <= run.metric(step, "reskill/rows") <= 8
        assert run.metric(step, "reskill/invalid_token_share") > 0
        assert abs(run.metric(step, "critic/advantages/mean")) < 0.2
        assert run.metric(step, "episode/count") == 4.0
        assert run.metric(step, "episode/dropped") == 0.0
        assert (
            "actor/pg_loss" in run.logged[step - 1][1]
            and "actor/kl_loss" in run.logged[step - 1][1]
        )
    assert run.metric(2, VAL_ACC) == 0.0, "veRL's own val metric"
    assert [c[:2] for c in run.stubs.actor.calls if c[0] == "update"] == [
        ("update", 1),
        ("update", 2),
        ("update", 3),
    ], "killed inside step 3's update"
    assert run.stubs.sync.synced == [0, 1, 2], "weights synced after every finished step"
    # the co-evolution snapshot of step 2 sits in veRL's step-2 checkpoint
    snap = json.loads((root / "global_step_2" / "reskill" / "coevolution.json").read_text())
    assert snap["last_step"] == 2
    assert (root / "latest_checkpointed_iteration.txt").read_text() == "2"
    live = json.loads((root / "reskill" / "coevolution.json").read_text())
    assert live["last_step"] == 2, "step 3 died before co-evolution closed it"
    import ray

    hook = run.trainer.reskill_hook
    assert ray.get(hook.actor.__ray_call__.remote(lambda svc: svc.closed)) is True
    run.kill()

    resumed = fh.run_fit(cfg, tmp_path / "weights")
    assert resumed.error is None, resumed.error
    assert resumed.trainer.global_steps == 4  # fit counts past the last step
    assert ("load", -1, 0) in resumed.stubs.actor.calls, "veRL loaded the step-2 actor"
    assert [s for s, _ in resumed.logged] == [3]
    check_token_alignment(resumed, 3)
    assert resumed.metric(3, VAL_ACC) == 0.0
    rows = [json.loads(x) for x in (root / "reskill" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3], "the run log resumed after step 2"
    assert (
        json.loads((root / "global_step_3" / "reskill" / "coevolution.json").read_text())[
            "last_step"
        ]
        == 3
    )
    # fit returned normally after its last step: the co-evolution actor was still closed
    actor = resumed.trainer.reskill_hook.actor
    assert ray.get(actor.__ray_call__.remote(lambda svc: svc.closed)) is True
    resumed.kill()


def test_verl_fit_frozen_policy_concat(tmp_path, tiny_model, search_data, transfer_queue):
    """reskill.update_policy=false with the concat layout: veRL's rollout-correction step
    reads old_log_probs every step (calculate_log_probs), so the frozen trainer hands it the
    rollout's (veRL's bypass); no update, no reference model; the penalty's spans and the
    whitening still run; two steps and a validation complete."""
    cfg = fh.fit_config(
        tmp_path,
        tiny_model,
        *search_data,
        [
            "data.max_response_length=256",
            "reskill.rollout.layout=concat",
            "reskill.update_policy=false",
            "reskill.rollout.invalid_action_penalty=0.1",
            "reskill.grpo_double_normalize=true",
            "trainer.total_training_steps=2",
            "trainer.save_freq=-1",
            "trainer.test_freq=2",
        ],
    )
    run = fh.run_fit(cfg, tmp_path / "weights")
    assert run.error is None, run.error
    assert run.stubs.ref is None, "no reference worker for a frozen policy"
    assert not run.stubs.actor.calls, "no actor forward or update at all"
    for step in (1, 2):
        # old_log_probs are the rollout's: veRL's mismatch metrics are exactly zero
        assert run.metric(step, "rollout_corr/log_ppl_diff") == 0.0
        assert run.metric(step, "reskill/rows") == 4.0, "concat: one row per episode"
        assert run.metric(step, "episode/count") == 4.0
        assert "actor/pg_loss" not in run.logged[step - 1][1]
    assert VAL_ACC in run.logged[-1][1]
    # the pass's success per split / task type, in veRL's logger and validation.jsonl
    logged = run.logged[-1][1]
    assert logged["reskill/val/seen/success_rate"] == logged[VAL_ACC]
    assert any(k.startswith("reskill/val/seen/task_type/") for k in logged)
    passes = (tmp_path / "ckpt" / "reskill" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(p)["step"] for p in passes][-1] == 2
    run.kill()
