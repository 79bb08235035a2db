"""ReSkill-ALFWorld-v0 against the real engine (alfworld 0.4.2 + TextWorld PDDL + fast-downward)."""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("textworld")
pytest.importorskip("alfworld")

from reskill_gym.envs.alfworld import ALFWorldEnv  # noqa: E402
from reskill_gym.envs.alfworld.env import packaged_taskset  # noqa: E402
from reskill_gym.envs.alfworld.spec import TASK_TYPES, TaskSet  # noqa: E402
from reskill_gym.envs.alfworld.taskset import export_official_layout  # noqa: E402
from reskill_gym.envs.base import EngineCrashedError  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alfworld-cache")


@pytest.fixture(scope="module")
def tiny(cache: Path) -> Iterator[ALFWorldEnv]:
    env = ALFWorldEnv(difficulty="tiny", source="generated", cache_dir=cache)
    yield env
    env.close()


def _gone(pid: int) -> bool:
    """True if ``pid`` no longer exists (and so is not a zombie either)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "X"
    except FileNotFoundError:
        return True


def _play_expert(env: ALFWorldEnv, task_id: str, **reset_kw: object) -> tuple[int, dict]:
    _, info = env.reset(options={"task_id": task_id, "expert": True}, **reset_kw)
    steps = 0
    while True:
        _, reward, term, trunc, info = env.step(info["expert_action"])
        steps += 1
        if term or trunc:
            return steps, {**info, "reward": reward}


def test_expert_wins_every_task_type(tiny: ALFWorldEnv) -> None:
    tasks = packaged_taskset().select(difficulty="tiny", split="train")
    for task_type in TASK_TYPES:
        spec = next(t for t in tasks if t.task_type == task_type)
        steps, info = _play_expert(tiny, spec.task_id)
        assert info["won"] and info["reward"] == 1.0 and info["score"] == 1.0, spec.task_id
        assert steps == len(spec.plan)
        assert (
            info["task_type"] == task_type
            and info["task"] == spec.goal
            and info["split"] == "train"
        )


def test_info_contract_and_invalid_actions(
    tiny: ALFWorldEnv, caplog: pytest.LogCaptureFixture
) -> None:
    obs, info = tiny.reset(seed=1)
    assert "Your task is to:" in obs and info["turn"] == 0
    assert "expert_plan" not in info, "the plan is only given when asked for"
    for key in ("won", "task", "task_id", "task_type", "split", "admissible_actions", "turn"):
        assert key in info
    obs, reward, term, trunc, info = tiny.step("fly to the moon")
    assert obs == "Nothing happens." and info["invalid_action"] and reward == 0.0 and not term
    obs, _, _, _, info = tiny.step("   ")
    assert obs == "Nothing happens." and info["invalid_action"] and info["turn"] == 2
    with caplog.at_level(logging.WARNING):
        obs, _, _, _, info = tiny.step("go to " + "x" * 2000)
    assert obs == "Nothing happens." and info["invalid_action"] and "truncated" in caplog.text
    valid = info["admissible_actions"][0]
    _, _, _, _, info = tiny.step(valid)
    assert not info["invalid_action"] and "expert_plan" not in info


def test_truncation_at_max_turns(cache: Path) -> None:
    env = ALFWorldEnv(difficulty="tiny", source="generated", cache_dir=cache, max_turns=3)
    try:
        env.reset(seed=0)
        results = [env.step("look") for _ in range(3)]
        assert [r[3] for r in results] == [False, False, True] and not any(r[2] for r in results)
    finally:
        env.close()


def test_seeded_determinism(tiny: ALFWorldEnv) -> None:
    def rollout(seed: int) -> list[str]:
        rng = random.Random(seed)
        obs, info = tiny.reset(seed=seed)
        out = [info["task_id"], obs]
        for _ in range(6):
            obs, _, term, trunc, info = tiny.step(rng.choice(info["admissible_actions"]))
            out.append(obs)
            if term or trunc:
                break
        return out

    assert rollout(11) == rollout(11)
    ids = {tiny.reset(seed=s)[1]["task_id"] for s in range(12)}
    assert len(ids) > 3, "different seeds pick different tasks"


def test_random_agent_mostly_loses_on_std(cache: Path) -> None:
    env = ALFWorldEnv(difficulty="std", source="generated", cache_dir=cache, max_turns=20)
    rng = random.Random(0)
    wins = 0
    try:
        for ep in range(3):
            _, info = env.reset(seed=ep)
            done = False
            while not done:
                _, _, term, trunc, info = env.step(rng.choice(info["admissible_actions"]))
                done = term or trunc
            wins += int(info["won"])
    finally:
        env.close()
    assert wins <= 1


def test_killed_worker_raises_then_reset_recovers(cache: Path) -> None:
    env = ALFWorldEnv(difficulty="tiny", source="generated", cache_dir=cache)
    try:
        _, info = env.reset(seed=0, options={"expert": True})
        pid = env.engine_pid
        assert pid is not None and info["engine_pid"] == pid
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineCrashedError, match=r"(?s)killed by SIGKILL.*reset\(\)"):
            env.step(info["expert_action"])
        assert _gone(pid), "the dead worker was reaped (no zombie)"
        with pytest.raises(RuntimeError, match="reset"):
            env.step("look")
        task_id = env.task_ids()[0]
        steps, info = _play_expert(env, task_id)
        assert info["won"] and env.engine_pid not in (None, pid)
    finally:
        new_pid = env.engine_pid
        env.close()
    assert new_pid is not None and _gone(new_pid), "close() ends the worker"


def test_two_envs_interleaved(cache: Path) -> None:
    """fast-downward state is per process; two envs stepped alternately must both be right."""
    specs = packaged_taskset().select(difficulty="std", split="seen")[:2]
    envs = [
        ALFWorldEnv(difficulty="std", split="seen", source="generated", cache_dir=cache)
        for _ in specs
    ]
    try:
        infos = [
            env.reset(options={"task_id": s.task_id, "expert": True})[1]
            for env, s in zip(envs, specs)
        ]
        assert envs[0].engine_pid != envs[1].engine_pid
        done = [False, False]
        steps = [0, 0]
        while not all(done):
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                assert infos[i]["expert_action"] == specs[i].plan[steps[i]]
                _, _, term, trunc, infos[i] = env.step(infos[i]["expert_action"])
                steps[i] += 1
                done[i] = term or trunc
        assert all(info["won"] for info in infos)
        assert steps == [len(s.plan) for s in specs]
    finally:
        for env in envs:
            env.close()


def test_check_env(cache: Path) -> None:
    from gymnasium.utils.env_checker import check_env

    env = ALFWorldEnv(difficulty="tiny", source="generated", cache_dir=cache)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_gym_make_default_plays_a_generated_game_to_a_win(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    monkeypatch.setenv("RESKILL_CACHE", str(cache))
    env = gym.make("ReSkill-ALFWorld-v0")
    try:
        assert env.unwrapped.source == "generated" and env.unwrapped.difficulty == "std"
        _, info = env.reset(seed=0, options={"expert": True})
        done = False
        while not done:
            _, reward, term, trunc, info = env.step(info["expert_action"])
            done = term or trunc
        assert info["won"] and reward == 1.0
    finally:
        env.close()


def test_async_vector_env_of_two(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESKILL_CACHE", str(cache))
    vec = gym.vector.AsyncVectorEnv(
        [lambda: gym.make("ReSkill-ALFWorld-v0", difficulty="tiny", source="generated")] * 2,
        shared_memory=False,
    )
    try:
        obs, infos = vec.reset(seed=[3, 4], options={"expert": True})
        assert len(obs) == 2 and all("Your task is to:" in o for o in obs)
        won = [False, False]
        for _ in range(6):
            actions = tuple(a or "look" for a in infos["expert_action"])
            obs, rewards, term, trunc, infos = vec.step(actions)
            for i in range(2):
                won[i] = won[i] or bool(term[i] and rewards[i] == 1.0)
            if all(won):
                break
        assert all(won)
    finally:
        vec.close()


def test_official_layout_tree_loads_through_the_same_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ts = packaged_taskset()
    picked = [ts.select(difficulty="small", split=s)[1] for s in ("train", "seen", "unseen")]
    export_official_layout(TaskSet.of(picked), tmp_path / "alfworld-data")
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "alfworld-data"))
    env = ALFWorldEnv(split="unseen", cache_dir=tmp_path / "cache")
    try:
        assert env.source == "official"
        assert [len(env.task_ids(s)) for s in ("train", "seen", "unseen")] == [1, 1, 1]
        task_id = env.task_ids()[0]
        assert task_id.startswith("valid_unseen/")
        steps, info = _play_expert(env, task_id)
        assert info["won"] and steps == len(picked[2].plan)
        assert info["task"] == picked[2].goal and info["task_type"] == picked[2].task_type
    finally:
        env.close()
    with pytest.raises(FileNotFoundError, match="json_2.1.1"):
        ALFWorldEnv(source="official", data_dir=tmp_path / "nowhere")
    # asked for by setting $ALFWORLD_DATA: source='auto' must not fall back silently either
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ALFWorldEnv()
    assert ALFWorldEnv(source="generated").source == "generated"
    # importing alfworld sets $ALFWORLD_DATA to its default cache: not a request by itself
    monkeypatch.setenv("ALFWORLD_DATA", str(Path("~/.cache/alfworld").expanduser()))
    assert ALFWorldEnv(cache_dir=tmp_path / "cache").source == "generated"
