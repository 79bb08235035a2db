"""The per-step hook: ``ReskillTrainer`` (veRL's sync V1 trainer) on a real local Ray actor, its
advantage pass on a real TransferQueue, and the run folder ``reskill report`` reads."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.verl

verl = pytest.importorskip("verl")

from reskill_gym.episode import Episode, Turn  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


class WeightSyncRecorder:
    """Stands in for veRL's checkpoint manager (weight sync to vLLM replicas needs GPUs)."""

    def __init__(self) -> None:
        self.synced: list[int] = []

    def update_weights(self, global_steps: int) -> None:
        self.synced.append(int(global_steps))

    def sleep_replicas(self) -> None:
        return None


def compose(name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        return hydra_compose(config_name=name, overrides=overrides)


def test_verl_trainer_registered_and_stays_sync(smollm_dir, tmp_path):
    from reskill_verl.trainer import TRAINER_MODE, ReskillTrainer
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls, register_trainer
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    cfg = compose("alfworld", [f"actor_rollout_ref.model.path={smollm_dir}"])
    assert cfg.trainer.v1.trainer_mode == TRAINER_MODE
    cls = get_trainer_cls(cfg.trainer.v1.trainer_mode)
    assert cls is ReskillTrainer and issubclass(cls, PPOTrainerSync)
    trainer = cls(cfg)
    # veRL compares trainer_mode with "sync" literally; our subclass must not fall off that path
    assert trainer.trainer_mode == "sync" and trainer.parameter_sync_step == 1
    assert type(trainer.replay_buffer) is ReplayBuffer
    with pytest.raises(ValueError):
        register_trainer("sync")(ReskillTrainer)  # why we need our own mode name
    # the penalty / whitening are defined on GRPO with env rewards: other setups fail at start
    assert trainer.reskill_settings.rollout.invalid_action_penalty == 0.1
    trainer._check_algorithm()
    trainer.config.algorithm.adv_estimator = "gae"
    with pytest.raises(ValueError, match="adv_estimator=gae"):
        trainer._check_algorithm()
    trainer.config.algorithm.adv_estimator = "grpo"
    trainer.config.algorithm.use_kl_in_reward = True
    with pytest.raises(ValueError, match="use_kl_in_reward"):
        trainer._check_algorithm()


def test_verl_trainer_hook_end_step_metrics(smollm_dir, tmp_path, ray_session, monkeypatch):
    from reskill_verl.coevolution_actor import get_client
    from typer.testing import CliRunner
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls
    from verl.utils.tracking import Tracking

    from reskill_gym.cli import app

    actor = f"reskill_test_trainer_{uuid.uuid4().hex[:6]}"
    cfg = compose(
        "search",
        [
            f"actor_rollout_ref.model.path={smollm_dir}",
            f"trainer.default_local_dir={tmp_path / 'ckpt'}",
            f"reskill.coevolution.actor_name={actor}",
        ],
    )
    trainer = get_trainer_cls(cfg.trainer.v1.trainer_mode)(cfg)
    sync = trainer.checkpoint_manager = WeightSyncRecorder()
    trainer.global_steps = 0  # what _load_checkpoint leaves on a fresh run
    trainer.on_init_end()
    assert sync.synced == [0], "PPOTrainerSync.on_init_end (weight sync) still runs"
    assert trainer.reskill_hook is not None

    # step 1: two rollouts of one group ask for versions and report episodes (as agent loops do)
    client = get_client(trainer.reskill)

    async def rollouts() -> list:
        out = []
        for i in range(2):
            a = await client.assign("uid-step1", "q-1", 2, i)
            out.append(a)
            await client.record(
                [
                    Episode(
                        episode_id=f"uid-step1/{i}",
                        env_id="search",
                        task_id="q-1",
                        task="Who wrote it?",
                        library_version=a.version,
                        arm=a.arm,
                        group_id="uid-step1",
                        turns=[Turn(observation="Question: who?", action="<answer>x</answer>")],
                        reward=float(i),
                        won=bool(i),
                    )
                ]
            )
        return out

    assigned = asyncio.run(rollouts())
    assert {a.arm for a in assigned} == {"head"}
    trainer.global_steps = 1
    trainer.timing_raw = {}
    trainer.on_step_begin()
    trainer.on_step_end()
    assert sync.synced == [0, 1], "weight sync kept (super().on_step_end())"
    assert "reskill_end_step" in trainer.timing_raw and "update_weights" in trainer.timing_raw
    metrics: dict = {}
    metrics.update(trainer._consume_sync_metrics())  # exactly what fit() does after on_step_end
    assert metrics["episode/count"] == 2.0 and metrics["episode/success_rate"] == 0.5
    assert metrics["arms/head/success_rate"] == 0.5 and metrics["versions/testing"] == 0.0
    assert metrics["skills/library_size"] > 0 and metrics["creator/reservoir"] == 2.0
    assert all(isinstance(v, float) for v in metrics.values())
    root = tmp_path / "ckpt" / "reskill"
    assert (root / "coevolution.json").is_file()
    # the same row went to the run folder
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["step"] == 1 and rows[0]["time/step_s"] >= 0
    for key, value in metrics.items():
        assert rows[0][key] == value or (math.isnan(value) and math.isnan(rows[0][key])), key
    # veRL's logger takes them as they are
    Tracking(project_name="reskill-test", experiment_name="hook", default_backend=["console"]).log(
        data=metrics, step=1
    )
    # a second on_step_end in the same step does not close the step twice
    trainer.on_step_end()
    assert trainer._consume_sync_metrics() == {}
    assert len((root / "metrics.jsonl").read_text().splitlines()) == 1

    # a validation pass: veRL's metrics plus the pass's success per split / task type / topic
    async def validation_rollouts() -> None:
        for i, (split, family, won) in enumerate(
            [("dev", "boil", True), ("dev", "melt", False), ("test", "power-component", False)]
        ):
            await client.record_eval(
                [
                    Episode(
                        episode_id=f"val/{i}",
                        env_id="ReSkill-ScienceWorld-v0",
                        task_id=f"{family}:{i}",
                        task_type=family,
                        split=split,
                        arm="eval",
                        won=won,
                    )
                ]
            )

    asyncio.run(validation_rollouts())
    monkeypatch.setattr(PPOTrainerSync, "_validate", lambda self: {"val-core/acc": 1 / 3})
    val = trainer._validate()
    assert val["val-core/acc"] == 1 / 3, "veRL's own validation metrics kept"
    assert val["reskill/val/all/success_rate"] == 1 / 3 and val["reskill/val/dev/episodes"] == 2
    assert val["reskill/val/dev/task_type/boil/success_rate"] == 1.0
    assert val["reskill/val/all/topic/Matter/success_rate"] == 0.5
    assert val["reskill/val/test/topic/Electricity/success_rate"] == 0.0
    passes = [json.loads(line) for line in (root / "validation.jsonl").read_text().splitlines()]
    assert len(passes) == 1 and passes[0]["step"] == 1
    assert passes[0]["val/all/topic/Matter/success_rate"] == 0.5
    assert trainer._validate()["val-core/acc"] == 1 / 3, "an empty pass adds nothing"
    # `reskill report` reads the run folder the hook wrote (config, metrics, events, library)
    result = CliRunner().invoke(app, ["report", str(root)])
    assert result.exit_code == 0, result.output
    report = (root / "report.md").read_text()
    assert "# Run report: reskill" in report and "| 1 | 0.50 | 0.50 | 0.50 |" in report
    assert "env: `search`" in report and "skills mode `coevolve`" in report
    assert (root / "plots" / "reward_per_arm.png").stat().st_size > 0
    assert "library HEAD: `None`" not in report, "the report found the working library"
    assert "## Validation" in report and "| step | all | dev | test |" in report
    assert "| topic `Matter` | 0.50 | 0.50 | - |" in report
    assert "| task_type `power-component` | 0.00 | - | 0.00 |" in report
    trainer.on_train_end()
    ray_session.kill(trainer.reskill_hook.actor)


@pytest.fixture
def transfer_queue(ray_session: Any) -> Any:
    """A real TransferQueue (controller + one storage unit) on the session's Ray."""
    tq = pytest.importorskip("transfer_queue")
    from omegaconf import OmegaConf

    tq.init(
        OmegaConf.create(
            {"backend": {"SimpleStorage": {"num_data_storage_units": 1, "total_storage_size": 200}}}
        )
    )
    yield tq
    tq.close()


@pytest.mark.slow  # ~25 s: TransferQueue start + a Search group generated on CPU
def test_verl_per_turn_step_advantage_run_folder_and_report(
    tmp_path, smollm_dir, server_factory, ray_session, transfer_queue
):
    """One veRL step on CPU, per_turn: the V1 worker plays a Search group into a real
    TransferQueue (episodes go to the co-evolution actor), veRL pads the batch, the trainer's
    advantage pass applies the penalty and the whitening, on_step_end writes the run folder,
    and ``reskill report`` renders it."""
    import torch
    import verl_harness as h  # conftest puts this folder on sys.path
    from reskill_verl.advantage import invalid_token_mask, per_turn_grpo_advantages
    from typer.testing import CliRunner
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size
    from verl.trainer.ppo.v1 import agent_loop_tq, get_trainer_cls

    from reskill_gym.cli import app
    from reskill_gym.envs.registration import make_env

    tq = transfer_queue
    cache = tmp_path / "search-cache"
    raw = make_env("search", cache_dir=str(cache))
    task_id = raw.task_ids("train")[2]
    raw.close()
    actor = f"reskill_test_step_{uuid.uuid4().hex[:6]}"
    cfg = compose(
        "search",
        [
            f"actor_rollout_ref.model.path={smollm_dir}",
            f"trainer.default_local_dir={tmp_path / 'ckpt'}",
            f"reskill.coevolution.actor_name={actor}",
            "trainer.total_training_steps=1",
            f"data.max_prompt_length={h.PL}",
            f"data.max_response_length={h.RL}",
            "data.train_files=[]",
            "data.val_files=[]",
            "actor_rollout_ref.rollout.n=2",
            "reskill.max_tokens_per_turn=8",
            f"+reskill.env_kwargs.cache_dir={cache}",
            "reskill.env_kwargs.max_turns=2",
            "reskill.max_turns=2",
            "reskill.rollout.layout=per_turn",
            "reskill.rollout.history_turns=30",
            f"actor_rollout_ref.rollout.agent.agent_loop_config_path={h.AGENT_LOOPS_YAML}",
        ],
    )
    trainer = get_trainer_cls(cfg.trainer.v1.trainer_mode)(cfg)
    trainer.checkpoint_manager = WeightSyncRecorder()
    trainer.global_steps = 0
    trainer.on_init_end()
    root = tmp_path / "ckpt" / "reskill"
    config_yaml = (root / "config.yaml").read_text()
    assert "layout: per_turn" in config_yaml and "trainer: verl" in config_yaml

    worker = agent_loop_tq.AgentLoopWorkerTQ.__ray_actor_class__(cfg, llm_client=None)
    worker.llm_client = server_factory(worker.tokenizer)
    trainer.global_steps = 1
    trainer.timing_raw = {}
    trainer.on_step_begin()
    uid = asyncio.run(h.run_v1_group(worker, h.rows_for("search", [task_id])[0]))
    listing = tq.kv_list("train")["train"]
    assert listing[uid]["status"] == "finished"
    keys = sorted(k for k in listing if k.startswith(f"{uid}_"))
    from transfer_queue.metadata import KVBatchMeta

    meta = KVBatchMeta(keys=keys, tags=[listing[k] for k in keys], partition_id="train")
    meta = upsample_batch_to_divisible_size(meta, 8, worker.tokenizer.eos_token_id)
    assert len(meta) % 8 == 0 and any(t.get("is_padding") for t in meta.tags)

    # the step before the advantage recomputes old log-probs with the actor (FSDP on GPUs);
    # the weights are the rollout's, so its log-probs stand in for them here
    from tensordict import TensorDict

    lps = tq.kv_batch_get(keys=meta.keys, partition_id="train", select_fields="rollout_log_probs")
    tq.kv_batch_put(
        keys=meta.keys,
        partition_id="train",
        fields=TensorDict({"old_log_probs": lps["rollout_log_probs"]}, batch_size=len(meta)),
    )
    metrics: dict = {}
    meta = trainer._compute_advantage(meta, metrics)
    got = tq.kv_batch_get(
        keys=meta.keys,
        partition_id="train",
        select_fields=["advantages", "returns", "response_mask", "rm_scores", "extra_fields"],
    )
    extra = got.pop("extra_fields").tolist()
    padded = got.to_padded_tensor()
    mask = padded["response_mask"]
    invalid = invalid_token_mask(extra, mask)
    expected = per_turn_grpo_advantages(
        meta.keys,
        padded["rm_scores"].sum(-1),
        mask,
        invalid,
        penalty=0.1,
        double_normalize=True,
    )
    assert torch.allclose(padded["advantages"] * mask, expected, atol=1e-5)
    assert torch.allclose(padded["returns"] * mask, expected, atol=1e-5)
    m = mask.bool()
    assert abs(float(expected[m].mean())) < 1e-4, "double normalisation: whitened batch"
    real = [not t.get("is_padding") for t in meta.tags]
    assert metrics["reskill/rows"] == sum(real) == len(keys)
    n_invalid = sum(bool(e["turn_invalid"]) for e, r in zip(extra, real) if r)
    assert metrics["reskill/invalid_row_share"] == pytest.approx(n_invalid / len(keys))

    trainer.on_step_end()
    row = json.loads((root / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 1 and row["episode/count"] == 2.0, row
    assert row["arms/head/episodes"] == 2.0 and row["reskill/rows"] == len(keys)
    assert 0.0 <= row["episode/valid_action_ratio"] <= 1.0
    assert row["episode/turns_mean"] == pytest.approx(len(keys) / 2)

    result = CliRunner().invoke(app, ["report", str(root)])
    assert result.exit_code == 0, result.output
    report = (root / "report.md").read_text()
    assert "| 1 |" in report and "env: `search`" in report and "skills mode `coevolve`" in report
    assert (root / "plots" / "reward_per_arm.png").stat().st_size > 0
    assert "library HEAD: `None`" not in report, "the report found the working library"
    trainer.on_train_end()
    ray_session.kill(trainer.reskill_hook.actor)
