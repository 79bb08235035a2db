"""submit / poll / cancel: the pass runs while the caller keeps working; a cancelled pass
leaves the library and the assertion store as they were."""

from __future__ import annotations

import time

from reskill_gym.creator import CreatorConfig, SkillCreator
from reskill_gym.skills import SkillLibrary
from reskill_gym.testing.loopback import LoopbackLLMServer

FAST = {"timeout_s": 10.0, "max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}


def cfg(**kw) -> CreatorConfig:
    return CreatorConfig(
        **{
            "pipeline": "project",
            "min_reservoir_size": 20,
            "max_analyzed_episodes": 16,
            "failing_assertion_min_rate": 0.1,
            "llm_options": FAST,
            **kw,
        }
    )


def test_submit_poll_runs_in_background(search_reservoir, search_view, creator_llm) -> None:
    with LoopbackLLMServer(creator_llm(delay_s=0.3)) as srv:
        creator = SkillCreator(cfg(), backend=srv.spec())
        t0 = time.monotonic()
        # step 7: the sampled batch (seeded by config.seed and step) holds untagged replies
        assert creator.submit(search_reservoir, search_view, step=7)
        assert time.monotonic() - t0 < 0.2  # returned at once
        assert creator.busy and creator.poll() is None
        assert not creator.submit(search_reservoir, search_view, step=5)  # one pass at a time
        # The caller keeps adding episodes: the pass works on a snapshot.
        search_reservoir.add(list(search_reservoir.episodes())[:3])
        work = 0
        while creator.busy:
            work += 1
            time.sleep(0.01)
        result = creator.poll()
        creator.close()
    assert work > 10  # the caller ran while the pass was in flight
    assert result is not None and result.proposal is not None and result.step == 7
    assert result.proposal.summary() == "add use-action-tags"
    assert creator.poll() is None  # handed over once
    assert any(e.kind == "busy" for e in creator.events)


def test_cancel_leaves_library_and_store_untouched(
    tmp_path, search_reservoir, search_view, creator_llm
) -> None:
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    lib.commit(list(search_view.skills), reason="seed")
    head, history = lib.head, len(lib.history())
    with LoopbackLLMServer(creator_llm(delay_s=0.5)) as srv:
        creator = SkillCreator(cfg(), backend=srv.spec())
        before = creator.state_dict()
        creator.submit(search_reservoir, lib.view(), step=1)
        time.sleep(0.2)
        creator.cancel(wait=True, timeout=30)
        result = creator.poll()
        n_requests = len(srv.requests)
        creator.close()
    assert result is not None and result.cancelled and result.proposal is None
    assert any(e.kind == "cancelled" for e in result.events)
    assert n_requests <= 16  # stopped after the analysis stage: no diagnosis, no author
    assert (
        lib.head == head
        and len(lib.history()) == history
        and lib.status() == {k: [] for k in lib.status()}
    )
    assert creator.state_dict() == before  # no half-updated assertions


def test_rules_submit_and_state_roundtrip(search_reservoir, search_view) -> None:
    creator = SkillCreator(cfg())
    creator.submit(search_reservoir, search_view, step=2)
    result = creator.wait(timeout=60)
    assert result is not None and result.proposal is not None
    state = creator.state_dict()
    other = SkillCreator(cfg())
    other.load_state_dict(state)
    assert other.state_dict() == state and len(other.store) == len(creator.store) > 0
