"""The published creator pipeline end to end: the real openai SDK against the loopback server,
a scripted answer for every stage, and checks of what the pipeline itself computes (graded
assertions, trigger rates, recommender inputs, artifacts) against independent recomputation
over the same reservoir."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reskill_gym.creator import (
    CreatorConfig,
    Reservoir,
    SkillCreator,
    VersionTestRecord,
    version_test_history,
)
from reskill_gym.episode import Episode
from reskill_gym.skills import Operation, Skill, SkillLibrary, Trigger
from reskill_gym.testing.loopback import LoopbackError, LoopbackLLMServer
from reskill_gym.versioning import TesterConfig, VersionTester

FAST = {"timeout_s": 5.0, "max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}


def reservoir_of(episodes: list[Episode]) -> Reservoir:
    r = Reservoir(200, dedup_by="task_arm_outcome")
    # A live test's candidate arm on a few tasks, so groups show both arms.
    marked = [
        e.model_copy(update={"arm": "candidate"}) if k % 7 == 0 else e
        for k, e in enumerate(episodes)
    ]
    r.add(marked)
    return r


def run_pass(llm, reservoir, view, tmp_path: Path, history=(), **kw):
    cfg = CreatorConfig(
        min_reservoir_size=20,
        n_groups=12,
        analysis_workers=4,
        artifacts_dir=tmp_path / "creator",
        llm_options=dict(FAST),
        **kw,
    )
    with LoopbackLLMServer(llm) as srv:
        creator = SkillCreator(cfg, backend=srv.spec())
        try:
            proposal = creator.propose(reservoir, view, step=7, history=history)
        finally:
            creator.close()
    return creator, proposal, srv


def first_index(actions: list[str], pattern: str) -> int | None:
    return next((i for i, a in enumerate(actions) if re.search(pattern, a, re.I)), None)


HISTORY = [
    VersionTestRecord(step=3, accepted=False, new_mean=0.25, old_mean=0.5, operations=["ADD: x"]),
    VersionTestRecord(step=5, accepted=True, new_mean=0.6, old_mean=0.4, operations=["DELETE: y"]),
]


def test_published_pass_end_to_end(tmp_path, search_episodes, search_view, published_llm) -> None:
    PublishedLLM, GOOD, role, first_user = (
        published_llm,
        published_llm.GOOD,
        published_llm.role,
        published_llm.first_user,
    )
    res = reservoir_of(search_episodes)
    eps = res.episodes()
    bad = json.dumps({"operations": [{"type": "add", "skill": {**GOOD, "trigger_pattern": "zzz"}}]})
    llm = PublishedLLM(author=[bad, json.dumps({"operations": [{"type": "add", "skill": GOOD}]})])
    creator, p, srv = run_pass(llm, res, search_view, tmp_path, history=HISTORY)
    assert p is not None, creator.last_result.reason
    assert p.summary() == "add read-before-answering" and p.proposed_by == "openai:loopback"
    skill = p.operations[0].skill
    assert skill.when_to_use.startswith("Apply right after") and skill.examples.startswith("DO:")

    # Verification measured the trigger over the WHOLE reservoir, as published.
    expected = sum(any(re.search("<search>", t.action, re.I) for t in e.turns[:-1]) for e in eps)
    rep = p.verification["read-before-answering"]
    assert rep.targeted_episodes == len(eps) and rep.trigger_rate == pytest.approx(
        expected / len(eps)
    )
    assert rep.attempts == 2  # the first revision (pattern 'zzz') fired nowhere and was retried
    author_reqs = [r for r in srv.requests if role(r) == "author"]
    assert len(author_reqs) == 2
    assert "Previous attempt failed" in first_user(author_reqs[1])
    assert "fires in 0% of" in first_user(author_reqs[1])

    # One analysis per sampled group; the group without a usable answer got a heuristic insight.
    step = tmp_path / "creator" / "step_000007"
    insights = json.loads((step / "01_insights.json").read_text())
    assert len(insights) == 12 and llm.calls["analyst"] >= 12
    assert [i["source"] for i in insights].count("heuristic") == 1
    fb = [e for e in creator.events if e.kind == "output_invalid" and e.stage == "analysis"]
    assert fb and fb[0].raw_text == "I think the agent should search more."
    assert all("(a+)+" not in i["trigger_relevant_actions"] for i in insights)  # unsafe dropped
    assert any(i["confidence"] == "high" for i in insights)  # 'High' normalised

    # Rule-graded assertions: two accepted, the unsafe regex and the unknown param refused.
    graded = {g["id"]: g for g in json.loads((step / "05_assertions_graded.json").read_text())}
    assert sorted(graded) == ["A1", "A2"] and len(creator.rule_assertions) == 2
    refused = [e.message for e in creator.events if e.stage == "diagnosis" and e.kind == "rejected"]
    assert any("nested quantifier" in m for m in refused)
    assert any("not used by max_steps" in m for m in refused)
    before_after = 0
    no_untagged = 0
    for e in eps:
        acts = [t.action for t in e.turns]
        i, j = first_index(acts, "<search>"), first_index(acts, "<answer>")
        before_after += i is not None and j is not None and i < j
        no_untagged += first_index(acts, "^I need to") is None
    assert graded["A1"]["n"] == len(eps) and graded["A1"]["passed"] == before_after
    assert graded["A2"]["passed"] == no_untagged
    wins = [e for e in eps if e.success]
    assert graded["A1"]["n_success"] == len(wins)
    assert 0 < graded["A2"]["pass_rate"] < 1 and graded["A2"]["failing_episode_ids"]
    ev = graded["A2"]["evidence"][graded["A2"]["failing_episode_ids"][0]]
    assert "should not exist" in ev

    # The recommender saw everything the published recommender sees.
    rec_user = first_user(next(r for r in srv.requests if role(r) == "recommender"))
    assert "FAILURE PATTERN GROUPS" in rec_user and "Representative (#" in rec_user
    assert "DIAG-MARKER" in rec_user and "Priority modes: untagged_reply" in rec_user
    assert "**A1** (type=action_before" in rec_user and "pass_rate=" in rec_user
    assert "Version History (last 2 of 2):" in rec_user
    assert "Step 3: REJECTED (new=0.250 vs old=0.500) -- ADD: x" in rec_user
    assert "<search> query </search>" in rec_user  # the search action vocabulary
    assert "Most frequent actions in the reservoir" in rec_user
    inputs = json.loads((step / "06_recommender_inputs.json").read_text())
    lib = {s["name"]: s for s in inputs["library"]}
    assert set(lib) == set(search_view.names)
    assert lib["search-before-answering"]["trigger_rate"] == 1.0  # 'beginning' fires every episode
    info = sum(any(re.search("<information>", t.observation, re.I) for t in e.turns) for e in eps)
    assert lib["read-then-refine"]["trigger_rate"] == pytest.approx(info / len(eps))
    assert all(s["age_steps"] == 7 for s in lib.values())  # seeds were created at step 0
    assert (
        f"read-then-refine: trigger=observation_pattern (pattern: <information>) [trigger_rate={info / len(eps):.0%}, age=7 steps]"
        in rec_user
    )
    groups = inputs["insight_groups"]
    covered = sorted(i for g in groups for i in g["insight_indices"])
    assert covered == list(range(12))  # a partition; index 999 dropped
    assert all(g["representative_index"] in g["insight_indices"] for g in groups)
    assert any(e.stage == "recommend" and "no-such-skill" in e.message for e in creator.events)

    # Every stage left its inputs, prompts and raw answers.
    names = {f.name for f in step.iterdir()}
    for expected_file in (
        "00_sample.json",
        "01_analysis.json",
        "02_insight_index.md",
        "03_assertions_before.json",
        "04_diagnosis_prompt.md",
        "04_diagnosis_response.txt",
        "05_diagnosis.json",
        "06_recommender_prompt.md",
        "06_recommender_response.txt",
        "06_recommendations.json",
        "07_author_try1_prompt.md",
        "07_author_try2_response.txt",
        "08_verify_try1.json",
        "08_verify_try2.json",
        "09_result.json",
    ):
        assert expected_file in names, expected_file
    assert (step / "04_diagnosis_response.txt").read_text() == llm.replies["diagnoser"][0]
    assert (step / "07_author_try1_response.txt").read_text() == bad
    assert json.loads((step / "03_assertions_before.json").read_text()) == []  # none live yet
    assert "INSIGHT SUMMARIES (12 episode analyses)" in (step / "02_insight_index.md").read_text()
    result = json.loads((step / "09_result.json").read_text())
    assert (
        result["pipeline"] == "published"
        and result["proposal"]["operations"][0]["name"] == "read-before-answering"
    )
    sample = json.loads((step / "00_sample.json").read_text())
    assert any(e["arm"] == "new" for g in sample["groups"] for e in g["episodes"])
    analyst_users = [first_user(r) for r in srv.requests if role(r) == "analyst"]
    assert any("[new, " in u for u in analyst_users) and any("[old, " in u for u in analyst_users)

    # The assertions live on: checkpointed with the creator, graded again next pass.
    state = json.loads(json.dumps(creator.state_dict()))
    again = SkillCreator(CreatorConfig())
    again.load_state_dict(state)
    assert [a.id for a in again.rule_assertions.all()] == ["A1", "A2"]


def test_diagnosis_failure_falls_back_and_force_general(
    tmp_path, search_episodes, search_view, published_llm
) -> None:
    PublishedLLM, role, first_user = published_llm, published_llm.role, published_llm.first_user
    res = reservoir_of(search_episodes)
    llm = PublishedLLM(fail={"diagnoser": LoopbackError(400, "bad request")})
    creator, p, srv = run_pass(llm, res, search_view, tmp_path, force_general_trigger=True)
    assert p is not None, creator.last_result.reason
    assert p.operations[0].skill.trigger.type == "general"  # forced, pattern dropped
    assert p.verification["read-before-answering"].trigger_rate == 1.0
    kinds = [(e.stage, e.kind) for e in creator.events]
    assert ("diagnosis", "llm_error") in kinds and ("diagnosis", "fallback") in kinds
    step = tmp_path / "creator" / "step_000007"
    diag = json.loads((step / "05_diagnosis.json").read_text())
    assert diag["source"] == "heuristic" and diag["insight_groups"]
    rec_user = first_user(next(r for r in srv.requests if role(r) == "recommender"))
    assert "FAILURE PATTERN GROUPS" in rec_user and "No version history." in rec_user
    author_sys = next(r for r in srv.requests if role(r) == "author").system
    assert "All skills use the **general** trigger" in author_sys
    assert "Valid trigger types: general\n" in rec_user


def test_recommender_failure_ends_pass_without_raising(
    tmp_path, search_episodes, search_view, published_llm
) -> None:
    PublishedLLM = published_llm
    res = reservoir_of(search_episodes)
    llm = PublishedLLM(fail={"recommender": "no json here"})
    creator, p, _ = run_pass(llm, res, search_view, tmp_path)
    assert p is None and creator.last_result.reason.startswith("recommendation failed")
    ev = next(e for e in creator.events if e.stage == "recommend" and e.kind == "output_invalid")
    assert ev.raw_text == "no json here"
    step = tmp_path / "creator" / "step_000007"
    assert (step / "06_recommender_response.txt").read_text() == "no json here"
    assert json.loads((step / "09_result.json").read_text())["proposal"] is None
    assert len(creator.rule_assertions) == 2  # the diagnosis of this pass is kept


def test_author_never_verifies_and_library_cap(
    tmp_path, search_episodes, search_view, published_llm
) -> None:
    PublishedLLM, GOOD, role = published_llm, published_llm.GOOD, published_llm.role
    res = reservoir_of(search_episodes)
    too_long = {**GOOD, "content": {**GOOD["content"], "action": "Read the passages. " * 40}}
    llm = PublishedLLM(author=[json.dumps({"operations": [{"type": "add", "skill": too_long}]})])
    creator, p, srv = run_pass(llm, res, search_view, tmp_path, max_library_skills=5)
    assert p is None and "after 3 tries" in creator.last_result.reason
    failed = [e for e in creator.events if e.kind == "verification_failed"]
    assert len(failed) == 3 and all(e.raw_text for e in failed)
    assert "when_to_use + action + examples" in failed[0].message
    assert "the library would hold 6 skills (limit 5)" in failed[0].message
    assert sum(role(r) == "author" for r in srv.requests) == 3


def test_version_test_history_from_library(tmp_path) -> None:
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    a = lib.head
    s = Skill(
        name="open-first", description="d", content="Open it.", trigger=Trigger(type="general")
    )
    b = lib.commit([Operation.add(s)], reason="r", step=2, set_head=False)
    tester = VersionTester(TesterConfig(min_steps=1, min_episodes=4), rng=0)
    assert tester.start(a, b, 2) is None
    for v, r in [(a, 1.0), (a, 0.0), (b, 1.0), (b, 1.0)]:
        tester.record(v, r)
    decision = tester.end_step(3)
    assert decision is not None
    lib.append_event(
        {"version_test": decision.to_dict()}, reason="x", step=3, version=decision.accepted
    )
    hist = version_test_history(lib, last=5)
    assert len(hist) == 1
    h = hist[0]
    assert h.step == 3 and h.candidate == b and h.operations == ["ADD: open-first"]
    assert (h.new_mean, h.old_mean, h.new_episodes, h.old_episodes) == (1.0, 0.5, 2, 2)
    assert h.accepted == (decision.outcome == "accept")


def test_coevolution_wires_dedup_history_and_artifacts(
    tmp_path, search_episodes, published_llm
) -> None:
    import shutil

    from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig

    root = tmp_path / "lib"
    shutil.copytree(Path(__file__).resolve().parents[2] / "skills" / "search", root)
    lib = SkillLibrary.open(root, create=True)
    old = CoEvolutionConfig(n_version_history=3)  # the old name still means versions kept
    assert old.keep_versions == 3 and old.creator.n_version_history == 5
    with pytest.raises(ValueError, match="renamed to keep_versions"):
        CoEvolutionConfig(n_version_history=3, keep_versions=2)
    llm = published_llm()
    with LoopbackLLMServer(llm) as srv:
        cfg = CoEvolutionConfig(
            async_creator=False,
            min_reservoir_size=20,
            reservoir_dedup_by="task_arm_outcome",
            checkpoint_dir=str(tmp_path / "ckpt"),
            creator=CreatorConfig(
                backend=srv.spec(), min_reservoir_size=20, n_groups=6, llm_options=dict(FAST)
            ),
        )
        co = CoEvolution.create(lib, cfg)
        assert co.reservoir.dedup_by == "task_arm_outcome"
        co.record(search_episodes)
        assert len(co.reservoir) < len(search_episodes)  # one per (task, arm, outcome)
        events = co.end_step(0)
        rec = next(r for r in srv.requests if published_llm.role(r) == "recommender")
    kinds = [e.kind for e in events]
    assert "candidate_committed" in kinds and "test_started" in kinds, kinds
    assert "No version history." in published_llm.first_user(rec)
    step = tmp_path / "ckpt" / "creator" / "step_000000"
    assert (step / "06_recommender_inputs.json").is_file()
    assert (step / "09_result.json").is_file()


def test_authored_modify_merges_and_add_edge_cases() -> None:
    from reskill_gym.creator.published import apply_changes, skill_from_spec
    from reskill_gym.creator.schemas import AuthoredSkillSpec, SkillChanges

    old = Skill(
        name="open-first",
        description="Open first.",
        when_to_use="A take failed.",
        content="Open the receptacle.",
        examples="DO: open drawer 1",
        trigger=Trigger(type="general"),
        created_at_step=2,
    )
    ch = SkillChanges.model_validate(
        {"content": {"action": "Open it, then take."}, "trigger_pattern": "^take "}
    )
    new = apply_changes(old, ch, proposed_by="m", rationale="r")
    assert new.content == "Open it, then take." and new.when_to_use == "A take failed."
    assert new.examples == old.examples and new.created_at_step == 2  # age is kept
    assert (new.trigger.type, new.trigger.pattern) == ("action_pattern", "^take ")
    forced = apply_changes(old, ch, proposed_by="m", rationale="r", force_general=True)
    assert forced.trigger.type == "general" and forced.trigger.pattern is None
    when = SkillChanges.model_validate({"content": {"when_to_use": "After a failed take. Yes."}})
    assert apply_changes(old, when, proposed_by="m", rationale="").description == (
        "After a failed take."
    )
    spec = AuthoredSkillSpec.model_validate(
        {
            "name": "look-around",
            "content": {"action": "Look.", "examples": "DO: look"},
            "trigger_type": "action_pattern",
        }
    )
    s = skill_from_spec(spec, step=1, proposed_by="m", rationale="")
    assert s.trigger.type == "general" and s.examples == "DO: look"  # no pattern -> general
    assert s.description == "Look around."
    with pytest.raises(ValueError, match="nested quantifier"):
        skill_from_spec(
            spec.model_copy(update={"trigger_pattern": "(a+)+"}),
            step=1,
            proposed_by="m",
            rationale="",
        )


def test_published_sampling_per_stage_reaches_the_llm(
    tmp_path, search_episodes, search_view, published_llm
) -> None:
    """CreatorConfig.published(): each stage's temperature and max_tokens as in the published
    files (episode_analyzer.py / batch_diagnoser.py 0.2; skill_recommender.py /
    skill_author.py 0.3; 4096 tokens everywhere); unset stages use the backend's defaults."""
    from reskill_gym.creator import CreatorSampling

    assert CreatorSampling.published().model_dump() == {
        "analysis": {"temperature": 0.2, "max_tokens": 4096},
        "diagnosis": {"temperature": 0.2, "max_tokens": 4096},
        "recommend": {"temperature": 0.3, "max_tokens": 4096},
        "author": {"temperature": 0.3, "max_tokens": 4096},
    }
    pub = CreatorConfig.published()
    assert pub.pipeline == "published" and pub.assertion_text == "published"
    assert (
        pub.sampling == CreatorSampling.published() and CreatorConfig().assertion_text == "parsed"
    )
    role = published_llm.role
    expected = {"analyst": (0.2, 4096), "diagnoser": (0.2, 4096), "recommender": (0.3, 4096),
                "author": (0.3, 4096)}  # fmt: skip
    res = reservoir_of(search_episodes)
    _, p, srv = run_pass(
        published_llm(), res, search_view, tmp_path / "pub", sampling=CreatorSampling.published()
    )
    assert p is not None
    seen = {role(r): (r.body.get("temperature"), r.body.get("max_tokens")) for r in srv.requests}
    assert seen == expected
    _, _, srv = run_pass(published_llm(), res, search_view, tmp_path / "default")
    assert {(r.body.get("temperature"), r.body.get("max_tokens")) for r in srv.requests} == {
        (0.0, 1024)
    }


def test_analyst_sees_the_reasoning_of_the_last_steps() -> None:
    """As published (``format_contrastive_group``): the last two steps show the reasoning
    before the action tag; replies that are only their action show the observation."""
    from reskill_gym.creator.insights import render_group
    from reskill_gym.creator.reservoir import EpisodeGroup
    from reskill_gym.episode import Turn

    turns = [
        Turn(observation="You are in a room.", action="go to fridge 1",
             reply="I apply plan-from-task. <action>go to fridge 1</action>"),
        Turn(observation="The fridge 1 is closed.", action="open fridge 1",
             reply="The fridge is closed, so I apply open-first. <action>open fridge 1</action>"),
        Turn(observation="You open the fridge 1.", action="look", reply="look", parse="score"),
    ]  # fmt: skip
    ep = Episode(episode_id="e", env_id="x", task_id="t", task="t", turns=turns,
                 final_observation="Nothing happens.")  # fmt: skip
    text = render_group(EpisodeGroup("t", (ep,)))
    assert (
        "2. ACTION: open fridge 1\n       REASONING: The fridge is closed, so I apply open-first."
        in text
    )
    assert "3. ACTION: look\n       OBSERVATION: Nothing happens." in text
    assert "plan-from-task" not in text  # only the last two steps carry their reasoning
