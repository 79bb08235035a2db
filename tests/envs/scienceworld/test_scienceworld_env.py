"""ScienceWorldEnv against the real engine (needs Java and the scienceworld wheel).

One JVM is shared per module where a test allows it: starting one takes seconds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("scienceworld", reason="needs the scienceworld extra")
if shutil.which("java") is None:
    pytest.skip("ScienceWorld needs Java on PATH", allow_module_level=True)

from reskill_gym.envs.base import EngineCrashedError  # noqa: E402
from reskill_gym.envs.scienceworld import ScienceWorldEnv  # noqa: E402
from reskill_gym.envs.scienceworld.engine import ScienceWorldEngine, java_pids  # noqa: E402
from reskill_gym.envs.scienceworld.tasks import (  # noqa: E402
    TASK_TABLE_PATH,
    build_task_table,
    load_task_table,
)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def jvms_before() -> set[int]:
    return set(java_pids())


@pytest.fixture(scope="module")
def env(jvms_before: set[int]) -> Iterator[ScienceWorldEnv]:
    e = ScienceWorldEnv(max_turns=40)
    yield e
    e.close()


def _play(env: gym.Env, plan: list[str]) -> tuple[float, dict, bool]:
    total, info, terminated = 0.0, {}, False
    for action in plan:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return total, info, terminated


@pytest.mark.parametrize("task_id", ["find-living-thing:0", "use-thermometer:405"])
def test_gold_plan_wins_with_reward_one(env: ScienceWorldEnv, task_id: str) -> None:
    obs, info = env.reset(seed=0, options={"task_id": task_id, "expert": True})
    assert info["task"] in obs and info["task_id"] == task_id
    assert info["task_type"] == task_id.split(":")[0]
    plan = info["expert_plan"]
    assert plan and all(isinstance(a, str) for a in plan)
    total, last, terminated = _play(env, plan)
    assert terminated and last["won"] is True
    assert total == pytest.approx(1.0) and last["score"] == 1.0 and last["raw_score"] == 100


def test_random_agent_does_not_win(env: ScienceWorldEnv) -> None:
    rng = np.random.default_rng(0)
    for episode in range(2):
        env.reset(seed=episode, options={"task_id": f"find-plant:{episode}"})
        total, won = 0.0, False
        for _ in range(15):
            actions = env.admissible_actions()
            _, reward, terminated, truncated, info = env.step(
                actions[int(rng.integers(len(actions)))]
            )
            total, won = total + reward, info["won"]
            if terminated or truncated:
                break
        assert not won and total < 1.0


def test_failure_terminates_with_zero_score_and_raw_score_kept(env: ScienceWorldEnv) -> None:
    env.reset(options={"task_id": "find-animal:0"})
    _, r1, term1, _, _ = env.step("open door to greenhouse")
    assert r1 > 0 and not term1
    _, r2, terminated, truncated, info = env.step("focus on agent")  # wrong focus = failure
    assert terminated and not truncated
    assert info["won"] is False and info["failed"] is True
    assert info["raw_score"] == -100 and info["score"] == 0.0
    assert r1 + r2 == pytest.approx(0.0)


def test_seeded_resets_and_engine_are_deterministic(env: ScienceWorldEnv) -> None:
    first = env.reset(seed=123)
    again = env.reset(seed=123)
    assert first == again
    ids = {env.reset(seed=s)[1]["task_id"] for s in range(5)}
    assert len(ids) > 1  # the seed does choose the task
    plan = ["open door to kitchen", "go to kitchen", "look around", "pick up thermometer", "wait1"]

    def rollout() -> list:
        env.reset(seed=7, options={"task_id": "use-thermometer:3"})
        return [env.step(a)[:4] for a in plan]

    assert rollout() == rollout()


def test_invalid_empty_and_overlong_actions(
    env: ScienceWorldEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env.reset(options={"task_id": "boil:0"})
    for action in ["", "   ", "xyzzy plugh", "focus on the moon"]:
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["invalid_action"] is True, action
        assert obs == "No known action matches that input."
        assert reward == 0.0 and not terminated and not truncated
    with caplog.at_level(logging.WARNING, logger="reskill_gym.envs.base"):
        obs, _, _, _, info = env.step("look " * 500)
    assert info["invalid_action"] is True and "truncated" in caplog.text
    obs, _, _, _, info = env.step("open door")  # several doors: the engine asks which one
    assert info["ambiguous"] is True and info["invalid_action"] is False
    assert obs.startswith("Ambiguous request") and "0:" in obs
    obs, _, _, _, info = env.step("0")
    assert info["invalid_action"] is False and "open" in obs
    obs, _, _, _, info = env.step("look around")
    assert info["invalid_action"] is False and "hallway" in obs


def test_admissible_actions_only_when_asked(env: ScienceWorldEnv) -> None:
    _, info = env.reset(options={"task_id": "boil:0"})
    assert "admissible_actions" not in info
    assert "admissible_actions" not in env.step("look around")[4]
    actions = env.admissible_actions()
    assert "open door to kitchen" in actions and len(actions) > 20
    env.with_admissible = True  # the constructor flag admissible_actions=True sets this
    try:
        _, info = env.reset(options={"task_id": "boil:0"})
        assert "open door to kitchen" in info["admissible_actions"]
        *_, info = env.step("open door to kitchen")
        assert "go to kitchen" in info["admissible_actions"]
    finally:
        env.with_admissible = False
    assert ScienceWorldEnv(admissible_actions=True).with_admissible is True


def test_max_turns_truncates(env: ScienceWorldEnv) -> None:
    short = env.max_turns
    env.max_turns = 3
    try:
        env.reset(options={"task_id": "boil:0"})
        flags = [env.step("look around")[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
        with pytest.raises(RuntimeError, match="reset"):
            env.step("look around")
    finally:
        env.max_turns = short


def test_check_env_passes(env: ScienceWorldEnv) -> None:
    check_env(env, skip_render_check=True)


def test_killed_jvm_raises_then_reset_recovers(env: ScienceWorldEnv) -> None:
    env.reset(options={"task_id": "find-animal:0"})
    env.step("look around")
    old = env.engine.pid
    assert old is not None and _alive(old)
    os.kill(old, signal.SIGKILL)
    began = time.perf_counter()
    with pytest.raises(EngineCrashedError, match=rf"pid {old}.*reset\(\)"):
        env.step("open door to greenhouse")
    assert time.perf_counter() - began < 10
    assert not _alive(old)  # reaped, not a zombie
    with pytest.raises(EngineCrashedError, match="reset"):
        env.step("look around")  # still no engine: never a silent restart mid-episode
    obs, info = env.reset(options={"task_id": "find-animal:0"})
    assert env.engine.pid not in (None, old) and "hallway" in obs
    assert env.step("open door to greenhouse")[0] == "The door is now open."


def test_gym_make_plays_the_gold_plan() -> None:
    made = gym.make("ReSkill-ScienceWorld-v0", skills=None, max_turns=30)
    try:
        _, info = made.reset(seed=1, options={"task_id": "find-non-living-thing:3", "expert": True})
        total, last, terminated = _play(made, info["expert_plan"])
        assert terminated and last["won"] and total == pytest.approx(1.0)
        pid = made.unwrapped.engine.pid
        assert pid in java_pids(parent=os.getpid())
    finally:
        made.close()
    made.close()  # idempotent
    assert made.unwrapped.engine.pid is None and not _alive(pid)


@pytest.mark.filterwarnings("ignore::UserWarning:gymnasium.vector.async_vector_env")
def test_async_vector_env_of_two_and_crash_in_a_worker(jvms_before: set[int]) -> None:
    before = set(java_pids())
    envs = gym.vector.AsyncVectorEnv(
        [lambda: ScienceWorldEnv(split="seen", max_turns=10) for _ in range(2)],
        shared_memory=False,  # text observations
    )
    try:
        obs, infos = envs.reset(seed=3)
        assert len(obs) == 2 and all("Your task is to" in o for o in obs)
        assert all(s == "seen" for s in infos["split"])
        obs, rewards, terminated, truncated, infos = envs.step(["look around", "xyzzy"])
        assert list(infos["invalid_action"]) == [False, True]
        workers = [p.pid for p in envs.processes]
        jvms = [pid for w in workers for pid in java_pids(parent=w)]
        assert len(jvms) == 2
        os.kill(jvms[0], signal.SIGKILL)
        with pytest.raises(EngineCrashedError, match="reset"):
            envs.step(["look around", "look around"])
    finally:
        envs.close(terminate=True)
    deadline = time.time() + 15
    while set(java_pids()) - before and time.time() < deadline:
        time.sleep(0.2)
    assert set(java_pids()) - before == set()


def test_table_matches_the_engine_for_sample_tasks(env: ScienceWorldEnv) -> None:
    env.reset(options={"task_id": "boil:0"})  # makes sure the shared JVM is up
    engine, table = env.engine, load_task_table()
    assert sorted(engine.task_names()) == sorted(table)
    for name in ("boil", "find-animal", "mendelian-genetics-unknown-plant"):
        engine.load(name, 0)
        assert engine.max_variations(name) == table[name].max_variations
        for which, values in zip(("train", "dev", "test"), engine.variation_sets(), strict=True):
            assert values == list(table[name].variations(which)), (name, which)


@pytest.mark.slow
def test_shipped_table_is_what_the_engine_reports() -> None:
    engine = ScienceWorldEngine()
    engine.start()
    try:
        built = build_task_table(engine)
    finally:
        engine.close()
    assert built == json.loads(TASK_TABLE_PATH.read_text())


def test_zz_no_leaked_jvms(env: ScienceWorldEnv, jvms_before: set[int]) -> None:
    """Runs last in this module: everything but the shared env's JVM is gone."""
    mine = set(java_pids(parent=os.getpid())) - jvms_before
    assert mine <= {env.engine.pid}
    env.close()
    assert set(java_pids(parent=os.getpid())) - jvms_before == set()
