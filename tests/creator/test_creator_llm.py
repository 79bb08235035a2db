"""The project pipeline's LLM creator end to end with the real openai/anthropic SDKs against
the loopback server, and every bad answer the issue lists: each becomes an event, never an
exception. (The published pipeline: test_creator_published.py.)"""

from __future__ import annotations

import json
import socket

import pytest

from reskill_gym.creator import CreatorConfig, Reservoir, SkillCreator
from reskill_gym.skills import LibraryView
from reskill_gym.testing.loopback import LoopbackError, LoopbackLLMServer

FAST = {"timeout_s": 5.0, "max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02}


def cfg(**kw) -> CreatorConfig:
    base = dict(
        pipeline="project",
        min_reservoir_size=20,
        max_analyzed_episodes=16,
        failing_assertion_min_rate=0.1,
        llm_options=dict(FAST),
    )
    base.update(kw)
    return CreatorConfig(**base)


GOOD = {
    "name": "use-action-tags",
    "description": "Reply with a tagged action, never bare text.",
    "when_to_use": "The engine said the previous action is invalid.",
    "content": "Your reply had no action tag. Write <search> names from the question </search> "
    "or <answer> short answer </answer>; nothing outside the tags counts.",
    "trigger_type": "observation_pattern",
    "trigger_pattern": r"previous action is invalid",
}


def skill_json(**changes) -> str:
    return json.dumps({**GOOD, **changes})


def run_pass(srv: LoopbackLLMServer, reservoir: Reservoir, view: LibraryView, **kw):
    creator = SkillCreator(cfg(**kw), backend=srv.spec())
    try:
        proposal = creator.propose(reservoir, view, step=7)
    finally:
        creator.close()
    return creator, proposal


def kinds(creator: SkillCreator) -> list[str]:
    return [e.kind for e in creator.events]


def test_openai_end_to_end(search_reservoir, search_view, creator_llm) -> None:
    llm = creator_llm()
    with LoopbackLLMServer(llm) as srv:
        creator, p = run_pass(srv, search_reservoir, search_view)
    assert p is not None, creator.last_result.reason
    assert p.summary() == "add use-action-tags"
    skill = p.operations[0].skill
    assert skill.trigger.type == "observation_pattern" and skill.created_at_step == 7
    rep = p.verification["use-action-tags"]
    assert rep.passed and rep.trigger_rate >= 0.5 and rep.targeted_episodes > 0
    assert [a.id for a in p.assertions] == ["A1"]
    assert "made-up-id" not in p.assertions[0].example_episode_ids  # ids outside the batch dropped
    assert p.proposed_by == "openai:loopback" and p.base_version == search_view.version
    assert p.cost.calls == 16 + 3 and p.cost.input_tokens > 0 and p.cost.wall_s > 0
    assert llm.calls["analyst"] == 16
    assert "rejected" in kinds(creator)  # the invented example id was reported
    assert creator.store.get("A1").failed > 0  # the store kept the diagnosis


def test_anthropic_end_to_end(search_reservoir, search_view, creator_llm) -> None:
    from reskill_gym.llm import make_backend

    with LoopbackLLMServer(creator_llm()) as srv:
        backend = make_backend("anthropic", base_url=srv.anthropic_base_url, api_key="k", **FAST)
        creator = SkillCreator(cfg(), backend=backend)
        p = creator.propose(search_reservoir, search_view, step=1)
        creator.close()
    assert p is not None and p.summary() == "add use-action-tags"
    assert p.cost.usd > 0  # priced by the default Sonnet price table


@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        ("Sure! Here is the skill: {name: use-action-tags", "output_invalid"),  # malformed JSON
        (json.dumps({"name": "x"}), "output_invalid"),  # schema-invalid
        (skill_json(name="../../etc/passwd"), "verification_failed"),  # path-like name
        (skill_json(trigger_pattern=r"(\w+\s?)*$"), "verification_failed"),  # unsafe regex
        (skill_json(content="Use tags. " * 80), "verification_failed"),  # over the length limit
        (skill_json(trigger_pattern=r"^zzz never matches"), "verification_failed"),  # never fires
    ],
)
def test_bad_author_answer_then_fixed(
    bad, expect, search_reservoir, search_view, creator_llm
) -> None:
    # The backend re-asks on unparsable output itself (max_output_retries): script enough bad
    # answers to exhaust that, so the creator sees the failure and feeds it back.
    bad_replies = [bad] * 3 if expect == "output_invalid" else [bad]
    llm = creator_llm(author=[*bad_replies, skill_json()])
    with LoopbackLLMServer(llm) as srv:
        creator, p = run_pass(srv, search_reservoir, search_view)
    assert p is not None and p.summary() == "add use-action-tags", creator.last_result.reason
    ev = [e for e in creator.events if e.kind == expect]
    assert ev and ev[0].raw_text  # the raw answer is kept for the log
    assert p.verification["use-action-tags"].attempts == 2
    last_author = [r for r in srv.requests if "You write one skill" in r.system][-1]
    assert "rejected by the verifier" in last_author.last_user_text or "could not be parsed" in (
        last_author.last_user_text
    )


def test_verifier_feedback_names_the_problem(search_reservoir, search_view, creator_llm) -> None:
    llm = creator_llm(author=[skill_json(name="../evil")] * 3)
    with LoopbackLLMServer(llm) as srv:
        creator, p = run_pass(srv, search_reservoir, search_view)
        second = [r for r in srv.requests if "You write one skill" in r.system][1]
    assert p is None
    assert "no candidate passed verification" in creator.last_result.reason
    assert "not a valid skill name" in second.last_user_text
    assert kinds(creator).count("verification_failed") == 3


def test_429_then_success(search_reservoir, search_view, creator_llm) -> None:
    llm = creator_llm(
        overrides={"diagnostician": [LoopbackError(429, "slow down", retry_after=0.01)]}
    )
    with LoopbackLLMServer(llm) as srv:
        creator, p = run_pass(srv, search_reservoir, search_view)
    assert p is not None
    assert llm.calls["diagnostician"] == 2


def test_timeout_becomes_events(search_reservoir, search_view, creator_llm) -> None:
    with LoopbackLLMServer(creator_llm(delay_s=1.0)) as srv:
        creator, p = run_pass(
            srv,
            search_reservoir,
            search_view,
            max_analyzed_episodes=4,
            llm_options={**FAST, "timeout_s": 0.2, "max_retries": 0},
        )
    assert p is None
    assert "analyses failed" in creator.last_result.reason
    errs = [e for e in creator.events if e.kind == "llm_error" and e.episode_id]
    assert len(errs) == 4 and all("LLMTimeoutError" in e.message for e in errs)


def test_connection_refused_becomes_events(search_reservoir, search_view) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    creator = SkillCreator(
        cfg(max_analyzed_episodes=3, llm_options={**FAST, "max_retries": 1}),
        backend=f"openai:http://127.0.0.1:{port}/v1#m",
    )
    p = creator.propose(search_reservoir, search_view, step=0)
    assert p is None
    assert any("LLMConnectionError" in e.message for e in creator.events)


def test_bad_backend_spec_is_an_event(search_reservoir, search_view) -> None:
    creator = SkillCreator(cfg(), backend="openai:not-a-url")
    assert creator.propose(search_reservoir, search_view, step=0) is None
    assert creator.events[-2].kind == "error" and "could not be built" in creator.last_result.reason


def test_diagnosis_answer_never_valid(search_reservoir, search_view, creator_llm) -> None:
    llm = creator_llm(overrides={"diagnostician": ['{"changes": "lots"}'] * 3})
    with LoopbackLLMServer(llm) as srv:
        creator, p = run_pass(srv, search_reservoir, search_view)
    assert p is None and creator.last_result.reason.startswith("diagnosis failed")
    ev = next(e for e in creator.events if e.kind == "output_invalid")
    assert ev.raw_text == '{"changes": "lots"}' and ev.errors


def test_no_failures_returns_none_with_reason(search_episodes, search_view, creator_llm) -> None:
    r = Reservoir(200)
    r.add([e for e in search_episodes if e.success])
    with LoopbackLLMServer(creator_llm()) as srv:
        creator, p = run_pass(srv, r, search_view)
        assert srv.requests == []  # nothing paid for
    assert p is None and "no failed episodes" in creator.last_result.reason


def test_prompts_dir_override(tmp_path, search_reservoir, search_view, creator_llm) -> None:
    (tmp_path / "analyst.md").write_text(
        "# System\nYou are the episode analyst. CUSTOM-MARKER\n\n# User\nEpisode $episode_id (x)\n$episode\n"
    )
    with LoopbackLLMServer(creator_llm()) as srv:
        creator, p = run_pass(srv, search_reservoir, search_view, prompts_dir=tmp_path)
        assert any("CUSTOM-MARKER" in r.system for r in srv.requests)
    (tmp_path / "author.md").write_text("# User\n$unknown_thing\n")
    with pytest.raises(ValueError, match=r"author.md: unknown placeholder\(s\) \$unknown_thing"):
        SkillCreator(cfg(prompts_dir=tmp_path), backend="openai:http://127.0.0.1:1/v1#m")
