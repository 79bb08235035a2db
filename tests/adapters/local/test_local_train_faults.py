"""Faults of a `reskill train` run, on the real ALFWorld engine and the real SmolLM2 model.

- kill -9 in the middle of a step, then resume: the coevolution state (library HEAD, tester,
  reservoir, creator assertions) equals the last checkpoint, no library version is lost or
  duplicated, and metrics/events hold every step exactly once;
- a creator backend that fails every call: training goes on and the events say why;
- an env worker killed mid-rollout: that episode is dropped and logged, the step completes;
- a config with an unknown key fails before any model loads (tests/training/).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("alfworld")

from reskill_local.policy import Policy  # noqa: E402
from reskill_local.train import TrainingRun, latest_checkpoint, load_config  # noqa: E402

SHORT_TASKS = "[tiny/train/0001,tiny/train/0007,tiny/train/0000,tiny/train/0006]"


def _tiny(out_dir: Path, name: str, steps: int, *extra: str) -> list[str]:
    """The smallest real run: 2 groups x 2 rollouts, 3 turns, 2 trained samples per step."""
    return [
        f"run.out_dir={out_dir}",
        f"run.name={name}",
        f"run.steps={steps}",
        "run.progress=false",
        "run.report=false",
        "run.keep_checkpoints=3",
        f"env.tasks={SHORT_TASKS}",
        "env.max_active_skills=2",
        "env.skill_budget_chars=400",
        "env.kwargs.difficulty=tiny",
        "env.kwargs.max_turns=3",
        "rollout.score_norm=mean",
        "trainer.group_size=2",
        "trainer.groups_per_step=2",
        "rollout.history_turns=0",
        "trainer.kl_coef=0",
        "trainer.max_samples_per_step=2",
        "coevolution.async_creator=false",
        "coevolution.creator.min_reservoir_size=4",
        "coevolution.creator.rules_min_support=1",
        "coevolution.creator.rules_loop_length=2",
        "coevolution.tester.min_steps=1",
        "coevolution.tester.min_episodes=2",
        *extra,
    ]


def _copy(policy: Policy) -> Policy:
    return Policy(copy.deepcopy(policy.model), policy.tokenizer, policy.device, policy.stop_id)


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


# ----- kill -9 mid-step, resume ------------------------------------------------------------
@pytest.mark.slow  # ~3 min on 2 idle cores (a real training subprocess, killed and resumed)
def test_kill9_mid_step_then_resume_is_exact(base_policy, tmp_path: Path) -> None:
    steps = 3
    overrides = _tiny(tmp_path, "killed", steps)
    cmd = [sys.executable, "-c", "from reskill_gym.cli import main; main()", "train"]
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text("run:\n  exp_name: kill\n")
    proc = subprocess.Popen(
        [*cmd, "--config", str(cfg_file), *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    run_dir = tmp_path / "killed"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:  # wait for the first complete checkpoint
            ckpt = latest_checkpoint(run_dir)
            if ckpt is not None or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert ckpt is not None and ckpt.name == "step_000001", "timed out waiting for step 0"
        time.sleep(2.0)  # step 1 is under way (a step takes several seconds here)
        assert proc.poll() is None and latest_checkpoint(run_dir) == ckpt, "killed too late"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None and ckpt.name == "step_000001"
    saved = json.loads((ckpt / "coevolution.json").read_text())
    meta = json.loads((ckpt / "run.json").read_text())

    assert len(saved["reservoir"]["episodes"]) == 4  # step 0's episodes, nothing of step 1
    run = TrainingRun.resume(run_dir, policy=_copy(base_policy))
    assert run.restore() == 1
    assert run.coevo.state_dict() == saved  # HEAD, tester (with RNG), reservoir, assertions
    assert run.library.head == saved["head"] == meta["head"]
    assert set(meta["versions"]) <= set(run.library.versions()), "a library version was lost"
    run.train(progress=False)

    rows = _rows(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(steps)), "a step is missing or doubled"
    events = _rows(run_dir / "events.jsonl")
    per_step = Counter((e["kind"], e["step"]) for e in events if e["kind"] != "episode_dropped")
    assert all(n == 1 for n in per_step.values()), per_step
    versions = run.library.versions()
    assert len(versions) == len(set(versions))
    committed = [e["data"]["candidate"] for e in events if e["kind"] == "candidate_committed"]
    assert len(committed) == len(set(committed)), "a candidate was committed twice"
    assert set(committed) <= set(versions), "a committed candidate was lost"
    final = json.loads((latest_checkpoint(run_dir) / "run.json").read_text())
    assert final["steps_done"] == steps and final["head"] == run.library.head
    # the checkpoint files: a policy folder in each kept one, the optimizer in the newest only
    kept = sorted((run_dir / "checkpoints").glob("step_*"))
    assert [c.name for c in kept] == [f"step_{s:06d}" for s in range(1, steps + 1)]
    assert all((c / "policy" / "model.safetensors").is_file() for c in kept)
    assert [c.name for c in kept if (c / "optimizer.pt").exists()] == [kept[-1].name]
    assert not list((run_dir / "checkpoints").glob(".step_*")), "a temp folder was left"
    assert (run_dir / "policy" / "reskill-policy.json").is_file()


# ----- a creator backend that always fails -------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~1.5 min: several training steps against a failing creator endpoint
def test_failing_creator_backend_does_not_stop_training(base_policy, tmp_path: Path) -> None:
    backend = f"openai:http://127.0.0.1:{_closed_port()}/v1#nobody"
    cfg = load_config(
        None,
        _tiny(
            tmp_path,
            "nocreator",
            2,
            f"coevolution.creator.backend={backend}",
            "coevolution.creator.llm_options={max_retries: 0, timeout_s: 2}",
            "coevolution.creator.max_analyzed_episodes=2",
            "coevolution.creator.n_groups=1",
        ),
    )
    run = TrainingRun.create(cfg, policy=_copy(base_policy))
    head = run.library.head if run.library else None
    summary = run.train(progress=False)
    assert summary.steps_done == 2
    events = _rows(run.run_dir / "events.jsonl")
    failed = [e for e in events if e["kind"] == "creator_failed"]
    assert failed, [e["kind"] for e in events]
    assert "connect" in json.dumps(failed[0]).lower()  # the event says why
    assert summary.head == (head or summary.head) and summary.tests_started == 0


# ----- an env worker killed mid-rollout -----------------------------------------------------
class _KillWorkerAt(gym.Wrapper):
    """Kills the real ALFWorld worker process (SIGKILL) right before step ``at``."""

    def __init__(self, env: gym.Env, at: int) -> None:
        super().__init__(env)
        self.at, self.turn, self.killed = at, 0, None

    def reset(self, **kw):
        self.turn = 0
        return self.env.reset(**kw)

    def step(self, action):
        if self.turn == self.at and self.killed is None:
            self.killed = self.env.unwrapped.engine_pid
            os.kill(self.killed, signal.SIGKILL)
        self.turn += 1
        return self.env.step(action)


def test_worker_crash_drops_one_episode_and_the_step_completes(base_policy) -> None:
    from reskill_local.grpo import GRPOConfig, GRPOTrainer

    from reskill_gym.coevolve import NoCoEvolution
    from reskill_gym.envs.alfworld import ALFWorldEnv
    from reskill_gym.rollout import EnvPool, TurnConfig
    from reskill_gym.wrapper import SkillWrapper

    killers: list[_KillWorkerAt] = []

    def build(key) -> SkillWrapper:
        env = ALFWorldEnv(difficulty="tiny", max_turns=3)
        if not killers:  # only the first engine dies
            killers.append(_KillWorkerAt(env, at=1))
            return SkillWrapper(killers[0], None)
        return SkillWrapper(env, None)

    pool = EnvPool(build)
    cfg = GRPOConfig(group_size=2, groups_per_step=1, kl_coef=0.0, max_samples_per_step=2, seed=3)
    trainer = GRPOTrainer(
        cfg,
        lambda task_id, version: pool.lease(skills=None),
        ["tiny/train/0000"],
        turn=TurnConfig(action_mode="score", score_norm="mean", history_turns=0),
        coevo=NoCoEvolution(None),
        policy=_copy(base_policy),
    )
    try:
        result = trainer.step()
        assert killers[0].killed is not None
        assert result.metrics["episode/dropped"] == 1.0 and len(result.episodes) == 1
        dropped = [e for e in result.events if e.kind == "episode_dropped"]
        assert len(dropped) == 1 and "EngineCrashedError" in dropped[0].message
        assert result.dropped[0].error and "step 1" in result.dropped[0].error
        assert pool.discarded == 1
        again = trainer.step()  # a fresh engine replaces the dead one
        assert again.metrics["episode/dropped"] == 0.0 and pool.built == 3
    finally:
        pool.close()
