"""The co-evolution service and its named Ray actor (real CoEvolution, real local Ray)."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig
from reskill_gym.episode import Episode, Turn
from reskill_gym.versioning import TesterConfig

pytestmark = pytest.mark.verl


def _service(tmp_path: Path, make_lib, *, testing: bool = True):
    from reskill_verl.coevolution_actor import CoEvolutionService

    lib, head, candidate = make_lib(tmp_path / "lib")
    co = CoEvolution.create(
        lib,
        CoEvolutionConfig(
            creator_enabled=False,
            tester=TesterConfig(min_steps=2, min_episodes=4),
            checkpoint_dir=str(tmp_path / "ckpt"),
        ),
    )
    if testing:
        assert co.tester.start(head, candidate, step=0) is None
    return CoEvolutionService(co), head, candidate


def _episode(
    uid: str, index: int, version: str, arm: str, won: bool, skills=("plan@1",)
) -> Episode:
    return Episode(
        episode_id=f"{uid}/{index}",
        env_id="alfworld",
        task_id="t1",
        task="put a mug in the cabinet",
        library_version=version,
        arm=arm,
        group_id=uid,
        turns=[
            Turn(
                observation="You are in a room.",
                action="look",
                skill_ids=list(skills),
                parse="exact",
            )
        ],
        reward=1.0 if won else 0.0,
        won=won,
    )


def test_verl_group_split_is_planned_once_per_uid(tmp_path, make_lib):
    svc, head, candidate = _service(tmp_path, make_lib)
    n = 8
    # rollouts of one group arrive in any order; each index keeps its version
    got = {i: svc.assign("uid-a", "t1", n, index=i) for i in (5, 0, 7, 3, 1, 2, 6, 4)}
    versions = [got[i].version for i in range(n)]
    assert set(versions) == {head, candidate}, "a live test splits every group of n >= 2"
    assert all(got[i].arm == ("incumbent" if got[i].version == head else "candidate") for i in got)
    assert all(a.testing and a.p_candidate is not None for a in got.values())
    assert [svc.assign("uid-a", "t1", n, index=i).version for i in range(n)] == versions
    # legacy trainer: no session id, arrival order numbers the rollouts
    seq = [svc.assign("uid-b", "t1", 4, index=None) for _ in range(4)]
    assert [a.index for a in seq] == [0, 1, 2, 3]
    assert {a.version for a in seq} == {head, candidate}


def test_verl_published_validation_draws_test_arms_never_recorded(tmp_path, make_lib):
    """``reskill.validation: published``: while a test runs, validation rollouts draw an arm
    per rollout from the tester's probabilities (the published val envs' per-slot draw); the
    tester never sees them; without a test they play HEAD (arm ``eval``)."""
    from reskill_verl.config import ReskillVerlConfig

    assert ReskillVerlConfig().validation == "project"
    svc, head, candidate = _service(tmp_path, make_lib)
    counts = svc.coevo.tester.state_dict()
    got = [svc.assign_eval("val-uid", "t1", i) for i in range(40)]
    assert {a.arm for a in got} == {"incumbent", "candidate"}, "both arms drawn"
    assert all(a.version == (head if a.arm == "incumbent" else candidate) for a in got)
    assert all(a.testing for a in got)
    svc.record_eval([_episode("val-uid", a.index, a.version, a.arm, won=True) for a in got])
    assert svc.coevo.tester.state_dict()["active"] == counts["active"], "nothing recorded"
    m = svc.take_eval()["metrics"]
    assert m["val/all/episodes"] == 40 and m["val/all/arm/candidate/success_rate"] == 1.0
    idle, head2, _ = _service(tmp_path / "idle", make_lib, testing=False)
    a = idle.assign_eval("val-uid", "t1", 0)
    assert (a.version, a.arm, a.testing) == (head2, "eval", False)


def test_verl_record_and_end_step_metrics(tmp_path, make_lib):
    svc, head, candidate = _service(tmp_path, make_lib)
    plan = [svc.assign("u", "t1", 4, index=i) for i in range(4)]
    eps = [_episode("u", a.index, a.version, a.arm, won=(a.arm == "candidate")) for a in plan]
    eps.append(Episode(episode_id="bad", env_id="alfworld", task_id="t1", task="x", error="boom"))
    assert svc.record([e.model_dump() for e in eps[:2]] + eps[2:]) == 4
    out = svc.end_step(1)
    m = out["metrics"]
    n_cand = sum(a.arm == "candidate" for a in plan)
    # the shared namespace (reskill_gym.rollout.episode_metrics + coevolution_metrics)
    assert m["episode/count"] == 4 and m["episode/dropped"] == 1
    assert m["episode/success_rate"] == n_cand / 5, "a failed session counts as a failure"
    assert m["arms/candidate/episodes"] == n_cand
    assert m["arms/candidate/success_rate"] == 1.0 and m["arms/incumbent/success_rate"] == 0.0
    assert m["versions/testing"] == 1.0 and 0.15 <= m["versions/p_candidate"] <= 0.85
    assert m["skills/fired/plan"] == 1.0 and m["episode/parse/exact"] == 1.0
    assert m["episode/valid_action_ratio"] == 1.0
    dropped = [e for e in out["events"] if e["kind"] == "episode_dropped"]
    assert len(dropped) == 1 and "boom" in dropped[0]["message"] and dropped[0]["step"] == 1
    assert m["skills/library_size"] == len(svc.coevo.view())
    assert (tmp_path / "ckpt" / "coevolution.json").is_file()
    # plans are per step: the same uid in the next step is planned afresh, the step advanced
    assert svc.current_step == 2 and svc._plans == {}
    assert svc.end_step(1)["metrics"]["episode/count"] == 0  # repeated step: ignored by core


def test_verl_service_keeps_the_steps_episodes(tmp_path, make_lib):
    from reskill_gym.step_episodes import StepEpisodes

    svc, head, candidate = _service(tmp_path, make_lib)
    svc.episodes_root = tmp_path / "reskill"
    plan = [svc.assign("u", "t1", 4, index=i) for i in range(4)]
    sid = f"plan-from-task@{svc.coevo.view().get('plan-from-task').version}"
    svc.record(
        [
            _episode("u", a.index, a.version, a.arm, won=a.arm == "candidate", skills=(sid,))
            for a in plan
        ]
    )
    svc.end_step(1)
    log = StepEpisodes(tmp_path / "reskill")
    assert log.steps() == [1] and [e.arm for e in log.entries()] == [a.arm for a in plan]
    assert log.read(log.entries()[0]).turns[0].skill_ids == [sid]
    assert "name: plan-from-task" in (log.skill_text(1, sid) or "")  # the text shown
    svc.end_step(1)  # a repeated step with nothing recorded leaves the file alone
    assert len(StepEpisodes(tmp_path / "reskill").entries()) == 4


def test_verl_test_decides_through_the_service(tmp_path, make_lib):
    svc, head, candidate = _service(tmp_path, make_lib)
    decided = []
    for step in range(1, 5):
        plan = [svc.assign(f"s{step}", "t1", 4, index=i) for i in range(4)]
        svc.record(
            [_episode(f"s{step}", a.index, a.version, a.arm, a.arm == "candidate") for a in plan]
        )
        out = svc.end_step(step)
        decided += [e for e in out["events"] if e["kind"] == "test_decided"]
        if decided:
            assert out["metrics"]["versions/decisions"] == 1.0
            assert out["metrics"]["versions/accepted"] == 1.0
            break
    assert decided and svc.head() == candidate, "a candidate that always wins is accepted"


def test_verl_views_are_inline_and_resume_replays(tmp_path, make_lib):
    from reskill_verl.coevolution_actor import CoEvolutionService

    svc, head, candidate = _service(tmp_path, make_lib)
    view = svc.view(candidate)
    blob = pickle.dumps(view)
    assert str(tmp_path) not in blob.decode("latin-1"), "views travel by content, not by path"
    again = pickle.loads(blob)
    assert again.version == candidate and "always-look-first" in again
    svc.end_step(3)
    # veRL resumed from step 1 while co-evolution checkpointed step 3: steps 2.. run again
    resumed = CoEvolutionService(svc.coevo, resume_step=1)
    assert resumed.current_step == 2


def test_verl_build_service_initialises_library_and_resumes(tmp_path):
    from reskill_verl.coevolution_actor import build_service
    from reskill_verl.config import ReskillVerlConfig

    settings = ReskillVerlConfig.model_validate(
        {"env": "alfworld", "coevolution": {"config": {"creator": {"backend": "rules"}}}}
    )
    svc = build_service(settings, default_root=tmp_path / "run")
    head = svc.head()
    assert (tmp_path / "run" / "library" / ".reskill" / "HEAD").is_file()
    assert len(svc.coevo.view()) > 0, "seeded from skills/alfworld"
    svc.end_step(1)
    again = build_service(settings, default_root=tmp_path / "run", resume_step=1)
    assert again.head() == head and again.current_step == 2
    with pytest.raises(ValueError, match="checkpoint_dir"):
        ReskillVerlConfig.model_validate(
            {"coevolution": {"config": {"checkpoint_dir": "/x"}}}
        ).coevolution.coevolution_config(None)


def test_verl_disabled_coevolution_still_collects_episodes(tmp_path):
    """coevolution.enabled=false: the fixed library for every rollout, metrics still flow."""
    from reskill_verl.coevolution_actor import build_service
    from reskill_verl.config import ReskillVerlConfig

    from reskill_gym.coevolve import NoCoEvolution

    settings = ReskillVerlConfig.model_validate(
        {"env": "alfworld", "coevolution": {"enabled": False}}
    )
    svc = build_service(settings, default_root=tmp_path / "run")
    assert isinstance(svc.coevo, NoCoEvolution) and svc.head() is not None
    plan = [svc.assign("u", "t1", 2, index=i) for i in range(2)]
    assert {(a.version, a.arm) for a in plan} == {(svc.head(), "head")}
    assert svc.view(plan[0].version).version == svc.head()
    svc.record([_episode("u", a.index, a.version, a.arm, won=a.index == 0) for a in plan])
    m = svc.end_step(1)["metrics"]
    assert m["arms/head/episodes"] == 2 and m["episode/success_rate"] == 0.5
    assert m["versions/testing"] == 0.0
    assert svc.current_step == 2 and svc.assign("v", "t1", 1).step == 2  # steps still count
    assert not (tmp_path / "run" / "library").exists(), "no working library is made"
    none = ReskillVerlConfig.model_validate(
        {"env": "alfworld", "skills": None, "coevolution": {"enabled": False}}
    )
    empty = build_service(none, default_root=tmp_path / "run2")
    a = empty.assign("v", "t1", 1, index=0)
    assert empty.head() is None and a.version == "" and empty.view(None) is None


def test_verl_named_actor_round_trip(tmp_path, ray_session):
    from reskill_verl.coevolution_actor import (
        RayCoEvolutionClient,
        get_client,
        get_or_create_actor,
    )
    from reskill_verl.config import ReskillVerlConfig
    from reskill_verl.trainer import CoEvolutionStepHook

    ray = ray_session
    settings = ReskillVerlConfig.model_validate(
        {"env": "search", "coevolution": {"actor_name": "reskill_test_roundtrip"}}
    )
    actor = get_or_create_actor(settings, default_root=tmp_path / "run", resume_step=0)
    head = ray.get(actor.head.remote())
    same = get_or_create_actor(settings, default_root=tmp_path / "elsewhere")
    assert ray.get(same.head.remote()) == head, "get_if_exists: one actor per name"

    client = get_client(settings)
    assert isinstance(client, RayCoEvolutionClient)

    async def roll() -> tuple:
        a = await client.assign("g1", "q1", 5, 2)
        b = await client.assign("g1", "q1", 5, 2)
        view = await client.view(a.version)
        cached = await client.view(a.version)
        await client.record([_episode("g1", 2, a.version, a.arm, won=True)])
        return a, b, view, cached

    a, b, view, cached = asyncio.run(roll())
    assert a == b and a.version == head and a.arm == "head" and not a.testing
    assert view.version == head and cached is view, "views are cached per process"
    hook = CoEvolutionStepHook(actor, ray.get)
    metrics = hook.end_step(1)
    assert metrics["episode/count"] == 1.0 and metrics["arms/head/success_rate"] == 1.0
    assert hook.end_step(1) == {}, "a second on_step_end in one step is ignored"
    assert (tmp_path / "run" / "coevolution.json").is_file()
    hook.close()
    ray.kill(actor)


def test_verl_snapshot_versions_survive_pruning_and_resume(tmp_path, make_lib):
    """A co-evolution checkpoint saved with veRL's step k keeps its versions: later steps
    replace HEAD and prune to one version, and resuming from step k still finds them."""
    from reskill_gym.skills import Skill, Trigger

    svc, head, candidate = _service(tmp_path, make_lib, testing=False)
    svc.coevo.config = svc.coevo.config.model_copy(update={"keep_versions": 1})
    svc.end_step(1)
    snapshot = tmp_path / "global_step_1" / "reskill"
    svc.save_checkpoint(str(snapshot))
    lib = svc.coevo.library
    for i in range(3):  # later steps move HEAD on: the step-1 HEAD is neither HEAD nor newest
        extra = Skill(
            name=f"later-{i}",
            description="d",
            content=f"Later advice {i}.",
            trigger=Trigger(type="general"),
        )
        lib.commit([extra], reason="later", step=2 + i)
        svc.end_step(2 + i)
    assert lib.head != head and head in lib.versions(), "kept for the saved checkpoint"
    assert candidate not in lib.versions(), "nothing else is kept past keep_versions"
    resumed = CoEvolution.create(lib, svc.coevo.config)
    resumed.load(snapshot)
    assert resumed.head == head and resumed.last_step == 1
    assert resumed.view().version == head
