"""``record_episode`` plays scripted agents through the turn contract (real engines): the
records are the ones trainers and ``reskill eval`` write."""

from __future__ import annotations

from pathlib import Path

import pytest

from reskill_gym.rollout import RolloutSession, TurnConfig, record_episode
from reskill_gym.skills import LibraryView
from reskill_gym.testing.agents import ALFWorldMistakeAgent, SearchMistakeAgent
from reskill_gym.wrapper import SkillWrapper

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def search_env(tmp_path_factory: pytest.TempPathFactory):
    from reskill_gym.envs.search import SearchEnv

    base = SearchEnv(split="train", cache_dir=tmp_path_factory.mktemp("cache"))
    env = SkillWrapper(base, LibraryView.from_folder(REPO / "skills" / "search"))
    yield env
    env.close()


def test_search_records_match_a_session_replay(search_env) -> None:
    tid = search_env.unwrapped.task_ids()[0]
    agent = SearchMistakeAgent({"untagged": 1.0})
    ep = record_episode(search_env, agent, task_id=tid, seed=3, episode_id="e3", group_id="g")
    assert ep.env_id == "ReSkill-Search-v0" and ep.task_id == tid and ep.seed == 3
    assert ep.library_version and ep.group_id == "g" and ep.stop_reason in ("done", "truncated")
    first = ep.turns[0]
    # an untagged reply is sent as is: the engine rejects it, the scripted turn stays valid
    assert first.parse == "scripted" and first.valid and first.invalid_action
    assert first.reply == first.action and first.skill_ids
    bundle = next(t for t in ep.turns if t.skill_ids)
    assert "## Skills" not in bundle.observation  # records are bare

    # the same commands through a RolloutSession give the same record
    s = RolloutSession(search_env, TurnConfig(), episode_id="e3", group_id="g")
    s.reset(task_id=tid, seed=3)
    for t in ep.turns:
        s.act_command(t.action)
    assert s.episode() == ep


def test_alfworld_reset_options_reach_the_engine() -> None:
    try:
        from reskill_gym.envs.alfworld import ALFWorldEnv

        base = ALFWorldEnv(difficulty="tiny", source="generated", max_turns=12)
    except (ImportError, FileNotFoundError) as e:  # engine or task set not installed
        pytest.skip(f"ALFWorld unavailable: {e}")
    try:
        tid = base.task_ids("train")[0]
        ep = record_episode(base, ALFWorldMistakeAgent({"expert": 1.0}), task_id=tid, seed=0)
    finally:
        base.close()
    # the planner expert (requested by reset option) leads the scripted agent to a win
    assert ep.won and ep.stop_reason == "done" and ep.reward > 0
    assert ep.env_id == "ReSkill-ALFWorld-v0" and all(t.parse == "scripted" for t in ep.turns)
    assert ep.actions == [t.action for t in ep.turns] and ep.valid_action_ratio == 1.0
