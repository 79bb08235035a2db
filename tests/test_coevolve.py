"""CoEvolution end to end on the real Search env: creator -> candidate -> test -> decision."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from reskill_gym.coevolve import (
    CoEvolution,
    CoEvolutionConfig,
    CoEvolutionLike,
    CoEvolutionStatus,
    NoCoEvolution,
    coevolution_metrics,
)
from reskill_gym.creator import CreatorConfig
from reskill_gym.envs.search import SearchEnv
from reskill_gym.rollout import record_episode
from reskill_gym.skills import SkillLibrary
from reskill_gym.testing.agents import SearchMistakeAgent
from reskill_gym.versioning import TesterConfig
from reskill_gym.wrapper import SkillWrapper

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def search_env(tmp_path_factory: pytest.TempPathFactory) -> SearchEnv:
    env = SearchEnv(cache_dir=str(tmp_path_factory.mktemp("search-cache")))
    yield env
    env.close()


def _library(tmp_path: Path) -> SkillLibrary:
    root = tmp_path / "lib"
    shutil.copytree(REPO / "skills" / "search", root)
    return SkillLibrary.open(root, create=True)


def _config(tmp_path: Path, **creator: object) -> CoEvolutionConfig:
    return CoEvolutionConfig(
        async_creator=False,
        min_reservoir_size=24,
        checkpoint_dir=str(tmp_path / "ckpt"),
        tester=TesterConfig(min_steps=2, min_episodes=8),
        creator=CreatorConfig(min_reservoir_size=24, n_groups=6, **creator),
        seed=3,
    )


def _run_step(co: CoEvolution, env: SearchEnv, step: int, n_groups: int = 3, n: int = 4) -> list:
    tasks = env.task_ids("train")
    groups = [
        (f"s{step}g{g}", tasks[(step * n_groups + g) % len(tasks)], n) for g in range(n_groups)
    ]
    plan = co.plan_step(groups)
    agent = SearchMistakeAgent()
    episodes = []
    wrapper = SkillWrapper(env, co.view())
    for g, (gid, task_id, _) in enumerate(groups):
        for i, version in enumerate(plan.versions[g]):
            wrapper.set_skills(co.view(version))
            ep = record_episode(
                wrapper,
                agent,
                task_id=task_id,
                seed=1000 * step + 10 * g + i,
                group_id=gid,
                step=step,
            )
            assert ep.library_version == version
            episodes.append(ep)
    co.record(episodes)
    return plan, co.end_step(step)


def test_loop_proposes_tests_and_decides(tmp_path: Path, search_env: SearchEnv) -> None:
    lib = _library(tmp_path)
    seed_head = lib.head
    co = CoEvolution.create(lib, _config(tmp_path))
    kinds: list[str] = []
    decided = None
    for step in range(8):
        plan, events = _run_step(co, search_env, step)
        kinds += [e.kind for e in events]
        if plan.testing:
            for row in plan.versions:  # within-group comparison: both arms in every group
                assert len(set(row)) == 2
        started = [e for e in events if e.kind == "test_started"]
        if started:
            assert lib.head == seed_head  # the candidate is stored, HEAD stays until decided
        for e in events:
            if e.kind == "test_decided":
                decided = e
        if decided:
            break
    assert "candidate_committed" in kinds and "test_started" in kinds, kinds
    assert decided is not None, kinds
    assert lib.head == decided.data["accepted"]
    events = [h for h in lib.history() if h.kind == "event"]
    assert events and events[-1].extra["version_test"]["outcome"] == decided.data["outcome"]
    assert (tmp_path / "ckpt" / "coevolution.json").is_file()


def test_status_and_metrics_follow_the_loop(tmp_path: Path, search_env: SearchEnv) -> None:
    co = CoEvolution.create(_library(tmp_path), _config(tmp_path))
    assert co.creator is not None
    seen_test = False
    for step in range(8):
        _, events = _run_step(co, search_env, step)
        st = co.status()
        m = coevolution_metrics(co, events)
        assert st.testing == co.tester.active == (m["versions/testing"] == 1.0)
        assert st.reservoir_size == len(co.reservoir) == m["creator/reservoir"]
        assert st.creator_passes == co.creator.passes == m["creator/passes"]
        assert st.creator_busy == co.creator.busy == (m["creator/busy"] == 1.0)
        if st.testing:
            seen_test = True
            assert st.p_candidate is not None and 0.0 <= st.p_candidate <= 1.0
            assert m["versions/p_candidate"] == st.p_candidate
        else:
            assert st.p_candidate is None and math.isnan(m["versions/p_candidate"])
    assert seen_test and co.creator.passes >= 1


def test_resume_restores_state_and_head(tmp_path: Path, search_env: SearchEnv) -> None:
    lib = _library(tmp_path)
    co = CoEvolution.create(lib, _config(tmp_path))
    for step in range(3):
        _run_step(co, search_env, step)
    saved = json.loads((tmp_path / "ckpt" / "coevolution.json").read_text())
    head = lib.head
    # a write after the checkpoint (as if killed before the next one): HEAD drifts
    other = lib.commit([lib.view().skills[0].replace(content="Drifted.")], reason="drift")
    assert lib.head == other
    lib2 = SkillLibrary.open(lib.root)
    co2 = CoEvolution.create(lib2, _config(tmp_path))
    co2.load(tmp_path / "ckpt")
    assert lib2.head == head
    assert co2.state_dict() == saved
    groups = [("a", "t", 8), ("b", "u", 8)]
    assert co2.plan_step(groups).versions == co.plan_step(groups).versions  # RNG restored


def test_failing_creator_backend_never_stops_training(
    tmp_path: Path, search_env: SearchEnv
) -> None:
    lib = _library(tmp_path)
    cfg = _config(
        tmp_path,
        backend="openai:http://127.0.0.1:9/v1#nobody",
        llm_options={"max_retries": 0, "timeout_s": 2},
    )
    co = CoEvolution.create(lib, cfg)
    head = lib.head
    failed = []
    for step in range(3):
        _, events = _run_step(co, search_env, step)
        failed += [e for e in events if e.kind == "creator_failed"]
    assert failed, "the creator's failures must surface as events"
    assert "connection" in json.dumps(failed[0].data).lower()  # the event says why
    assert lib.head == head


def test_end_step_twice_is_ignored(tmp_path: Path, search_env: SearchEnv) -> None:
    co = CoEvolution.create(_library(tmp_path), _config(tmp_path))
    _run_step(co, search_env, 0)
    assert co.end_step(0) == []


def test_no_coevolution_pins_one_version(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    off = NoCoEvolution(lib)
    plan = off.plan_step([("g", "t", 3)])
    assert plan.versions == [[lib.head] * 3] and not plan.testing
    assert off.end_step(0) == [] and off.last_step == 0
    # the same API as CoEvolution; the parts it lacks are None, so no creator/* metrics
    co: CoEvolutionLike = off
    assert co.status() == CoEvolutionStatus(False, None, None, None, None)
    m = coevolution_metrics(co, [])
    assert not any(k.startswith("creator/") for k in m)
    assert m["skills/library_size"] == len(lib.view())
    assert co.save(tmp_path / "ckpt") is None and not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(("outcome", "successes"), [("reward", [1, 0]), ("won", [0, 1])])
def test_test_outcome_picks_what_the_tester_counts(
    tmp_path: Path, outcome: str, successes: list[int]
) -> None:
    """'won' counts the env's success (the published tester: env_manager.py success_rate),
    'reward' the return above the threshold: they differ for ScienceWorld's published reward
    (10 above a score of 70) and completion (score 100)."""
    from reskill_gym.episode import Episode
    from reskill_gym.skills import Operation

    lib = _library(tmp_path)
    head = lib.head
    cand = lib.commit([Operation.delete(lib.view().names[0])], reason="t", set_head=False)
    co = CoEvolution.create(lib, CoEvolutionConfig(creator_enabled=False, test_outcome=outcome))
    assert co.tester.start(head, cand, step=0) is None
    eps = [
        Episode(
            episode_id="a", env_id="x", task_id="t", library_version=head, reward=10.0, won=False
        ),
        Episode(
            episode_id="b", env_id="x", task_id="t", library_version=cand, reward=0.0, won=True
        ),
    ]
    co.record(eps)
    active = co.tester._active
    assert active is not None and active.pending_n == [1, 1]
    assert [int(s) for s in active.pending_s] == successes
