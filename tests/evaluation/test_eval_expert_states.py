"""Expert states on the real ALFWorld engine: the snapshot look-ahead equals brute-force
replay and leaves the episode untouched, trajectories are seeded and deduplicated, and a
replayed state gives the prompt a real episode gives (same wrapper, same builder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reskill_gym.envs.alfworld import ALFWorldEnv
from reskill_gym.evaluation.expert import state_prompt
from reskill_gym.evaluation.states import (
    ActionLabel,
    ExpertState,
    StateConfig,
    collect_states,
    label_by_replay,
    shuffled_task_texts,
)
from reskill_gym.rollout import RolloutSession, TurnConfig
from reskill_gym.skills import LibraryView
from reskill_gym.wrapper import SkillWrapper

SKILLS = Path(__file__).resolve().parents[2] / "skills" / "alfworld"


@pytest.fixture(scope="module")
def small_env():
    env = ALFWorldEnv(difficulty="small", source="generated", split="unseen")
    yield env
    env.close()


def test_snapshot_lookahead_equals_replay_and_keeps_the_episode(small_env):
    env = small_env
    tid = env.task_ids("unseen")[3]
    obs, info = env.reset(options={"task_id": tid, "expert": True})
    plan = info["expert_plan"]
    taken = []
    for step in range(3):
        la = env.lookahead()
        assert la["plan"] == info["expert_plan"]
        by = {x["action"]: x for x in la["lookahead"]}
        assert list(by) == info["admissible_actions"]
        # the planner's command brings the goal one step closer; 'look' changes nothing
        assert by[info["expert_action"]]["plan_len"] == len(info["expert_plan"]) - 1
        assert by["look"]["plan_len"] == len(info["expert_plan"]) and not by["look"]["won"]
        # the episode goes on exactly as without the look-ahead
        obs, _r, _te, _tr, info = env.step(info["expert_action"])
        taken.append(plan[step])
        assert info["expert_plan"] == plan[step + 1 :]
    # brute force: reset, replay the prefix, step each command, read the planner
    st = ExpertState(
        key="k",
        env="alfworld",
        split="unseen",
        task_id=tid,
        task=info["task"],
        task_type=info["task_type"],
        trajectory="expert",
        step=3,
        prefix=taken,
        observations=[""] * 4,
        admissible=info["admissible_actions"],
        expert_action=info["expert_action"],
        plan_len=len(info["expert_plan"]),
        labels=[],
    )
    snap = env.lookahead()["lookahead"]
    assert label_by_replay(env, st) == [
        ActionLabel(action=x["action"], plan_len=x["plan_len"]) for x in snap
    ]


def test_lookahead_needs_the_expert(small_env):
    small_env.reset(options={"task_id": small_env.task_ids("unseen")[0]})
    with pytest.raises(RuntimeError, match="expert"):
        small_env.lookahead()


def test_collect_states_is_seeded_labelled_and_selected():
    env = ALFWorldEnv(difficulty="tiny", source="generated")
    try:
        from reskill_gym.envs.alfworld.env import packaged_taskset

        specs = packaged_taskset().select(difficulty="tiny", split="seen")
        heat = next(t.task_id for t in specs if t.task_type == "pick_heat_then_place_in_recep")
        tasks = {"unseen": env.task_ids("unseen")[:1], "seen": [heat]}
        cfg = StateConfig(states_per_task=4, perturb_share=0.5, perturbed=1, seed=3, max_steps=8)
        a = collect_states(env, tasks, cfg)
        b = collect_states(env, tasks, cfg)
    finally:
        env.close()
    assert [s.model_dump(exclude={"label_s"}) for s in a] == [
        s.model_dump(exclude={"label_s"}) for s in b
    ]
    per_task: dict[str, int] = {}
    for s in a:
        per_task[s.task_id] = per_task.get(s.task_id, 0) + 1
        assert s.step == len(s.prefix) == len(s.observations) - 1
        assert [lb.action for lb in s.labels] == s.admissible
        assert s.expert_action in s.optimal and not s.inconsistent
        assert 1 <= len(s.optimal) < len(s.admissible)
        assert s.difficulty == "tiny" and s.cluster == f"{s.split}|{s.task_id}"
        if s.trajectory.startswith("perturbed"):
            assert s.off_path > 0
    assert set(per_task) == {*tasks["unseen"], *tasks["seen"]}
    assert max(per_task.values()) <= 4
    assert len({(s.task_id, tuple(s.prefix)) for s in a}) == len(a)  # no state twice
    assert any(s.off_path for s in a) and any(not s.off_path for s in a)
    donors = shuffled_task_texts(a)
    for s in a:
        other = next(x for x in a if x.task == donors[s.task_id])
        assert other.task_type != s.task_type


def test_a_replayed_state_prompts_like_the_real_episode():
    view = LibraryView.from_folder(SKILLS)
    cfg = TurnConfig(action_mode="score", history_turns=2)
    env = ALFWorldEnv(difficulty="small", source="generated", split="unseen")
    try:
        tid = env.task_ids("unseen")[5]
        obs, info = env.reset(options={"task_id": tid, "expert": True})
        observations, prefix = [obs], []
        for _ in range(3):  # the planner's first three commands, then the state to show
            prefix.append(info["expert_action"])
            obs, _r, _te, _tr, info = env.step(info["expert_action"])
            observations.append(obs)
        state = ExpertState(
            key="k",
            env="alfworld",
            split="unseen",
            task_id=tid,
            task=info["task"],
            task_type=info["task_type"],
            trajectory="expert",
            step=3,
            prefix=prefix,
            observations=observations,
            admissible=info["admissible_actions"],
            expert_action=info["expert_action"],
            plan_len=len(info["expert_plan"]),
            labels=[],
        )
        real = SkillWrapper(env, view)
        session = RolloutSession(real, cfg, episode_id="real")
        session.reset(task_id=state.task_id, options={"split": "unseen"})
        for a in state.prefix:
            session.act_command(a)
        replayed = state_prompt(state, view, cfg)
        assert replayed.messages == session.messages()
        assert replayed.skill_ids == [str(s) for s in session.info["skill_ids"]]
        assert replayed.info["admissible_actions"] == session.info["admissible_actions"]
        assert "Your last 2 of 3 earlier turns" in replayed.messages[-1]["content"]
    finally:
        env.close()
