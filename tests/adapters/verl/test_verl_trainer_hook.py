"""The per-step hook: ``ReskillTrainer`` (veRL's sync V1 trainer) on a real local Ray actor."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

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


def test_verl_trainer_hook_end_step_metrics(smollm_dir, tmp_path, ray_session):
    from reskill_verl.coevolution_actor import get_client
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.utils.tracking import Tracking

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
    assert metrics["reskill/episodes"] == 2.0 and metrics["reskill/success"] == 0.5
    assert metrics["versions/success/head"] == 0.5 and metrics["versions/testing"] == 0.0
    assert metrics["skills/library_size"] > 0 and metrics["creator/reservoir"] == 2.0
    assert all(isinstance(v, float) for v in metrics.values())
    assert (tmp_path / "ckpt" / "reskill" / "coevolution.json").is_file()
    # veRL's logger takes them as they are
    Tracking(project_name="reskill-test", experiment_name="hook", default_backend=["console"]).log(
        data=metrics, step=1
    )
    # a second on_step_end in the same step does not close the step twice
    trainer.on_step_end()
    assert trainer._consume_sync_metrics() == {}
    trainer.on_train_end()
    ray_session.kill(trainer.reskill_hook.actor)
