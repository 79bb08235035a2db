"""Paired evaluation through a real OpenAI-compatible server (loopback) and the real Search env.

The scripted model answers correctly only when the oracle skill's text is in its prompt, so
the paired difference is known in advance: +100 points for the oracle library, 0 for the
misleading one. Errors (429/500 forever for some tasks) must become error episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reskill_gym.evaluation import EvalConfig, run_and_report, run_eval, summarize
from reskill_gym.evaluation.config import NO_SKILLS, EvalAbortedError
from reskill_gym.evaluation.runner import select_tasks
from reskill_gym.skills import Skill, Trigger, write_skill
from reskill_gym.testing.loopback import LoopbackError, LoopbackLLMServer, LoopbackRequest

ORACLE = "ORACLE-SKILL: answer with the exact gold answer."
MISLEAD = "MISLEAD-SKILL: always answer unknown."


def make_library(root: Path, name: str, content: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_skill(
        Skill(
            name=name,
            description=f"Test skill {name}.",
            content=content,
            trigger=Trigger(type="general"),
        ),
        root,
    )
    return root


@pytest.fixture
def oracle_lib(tmp_path: Path) -> Path:
    return make_library(tmp_path / "oracle", "oracle", ORACLE)


@pytest.fixture
def mislead_lib(tmp_path: Path) -> Path:
    return make_library(tmp_path / "mislead", "mislead", MISLEAD)


@pytest.fixture(scope="session")
def search_gold() -> dict[str, str]:
    """question text -> first gold answer, for the unseen split of the synthetic Search env."""
    from reskill_gym.envs.search import SearchEnv

    env = SearchEnv(split="unseen")
    try:
        return {env.example(t).question: env.example(t).answers[0] for t in env.task_ids("unseen")}
    finally:
        env.close()


FAST_LLM = {"max_retries": 1, "backoff_base_s": 0.0, "backoff_max_s": 0.0, "timeout_s": 10.0}


def question_of(req: LoopbackRequest) -> str:
    for line in req.last_user_text.splitlines():
        if line.startswith("Task: "):
            return line[len("Task: ") :]
    raise AssertionError(f"no Task line in prompt: {req.last_user_text[:200]}")


def skill_following(gold: dict[str, str], failing: dict[str, LoopbackError] | None = None):
    def responder(req: LoopbackRequest) -> str | LoopbackError:
        q = question_of(req)
        if failing and q in failing:
            return failing[q]
        text = req.last_user_text
        if ORACLE in text and MISLEAD not in text:
            return f"<think>the skill says so</think><answer>{gold[q]}</answer>"
        return "<answer>unknown</answer>"

    return responder


def config(srv: LoopbackLLMServer, libs: list[Path], **kw) -> EvalConfig:
    base = dict(
        env="search",
        splits=["unseen"],
        skills=[str(p) for p in libs],
        agent=srv.spec(),
        tasks=4,
        seeds=[0],
        llm=FAST_LLM,
        retry_backoff_s=0.0,
        turn_retries=1,
    )
    return EvalConfig(**(base | kw))


def test_paired_difference_is_the_scripted_one(tmp_path, oracle_lib, mislead_lib, search_gold):
    with LoopbackLLMServer(skill_following(search_gold)) as srv:
        cfg = config(srv, [oracle_lib, mislead_lib], seeds=[0, 1], workers=2)
        run = run_and_report(cfg, tmp_path / "out")
        n_requests = len(srv.requests)
    assert run.ran == 3 * 4 * 2 and run.errors == 0 and run.skipped == 0
    assert n_requests == run.ran  # one answer per episode: the model answers at once
    names = [c.name for c in run.conditions]
    assert (
        names[0] == NO_SKILLS and names[1].startswith("oracle@") and names[2].startswith("mislead@")
    )
    s = summarize(run.records, conditions=names)
    assert s.stat(NO_SKILLS).success.mean == 0.0
    assert s.stat(names[1]).success.mean == 1.0
    assert s.stat(names[2]).success.mean == 0.0
    d = s.diff(names[1])
    # seeds 0 and 1 replay the same question with a deterministic model: exact duplicates,
    # counted once (4 distinct pairs in 4 tasks, not 8 independent units)
    assert (d.diff.mean, d.diff.lo, d.diff.hi, d.diff.n, d.diff.clusters, d.wins, d.losses) == (
        1.0,
        1.0,
        1.0,
        4,
        4,
        4,
        0,
    )
    assert s.stat(names[1]).episodes == 8 and s.stat(names[1]).distinct == 4
    assert s.diff(names[2]).diff.mean == 0.0
    oracle_skill = [k for k in s.skills if k.condition == names[1]]
    assert [(k.skill, k.episodes_fired, k.success_when_fired) for k in oracle_skill] == [
        ("oracle@1", 4, 1.0)
    ]
    # JSONL: one line per episode with the documented fields
    lines = [json.loads(x) for x in (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == 24 and len({x["key"] for x in lines}) == 24
    rec = next(x for x in lines if x["condition"] == names[1])
    assert rec["won"] and len(rec["turns"]) == 1 and rec["task_type"] and rec["split"] == "unseen"
    turn = rec["turns"][0]
    assert turn["skill_ids"] == ["oracle@1"] and turn["parse"] == "passthrough" and turn["valid"]
    assert turn["reply"].startswith("<think>the skill says so</think><answer>")
    assert turn["input_tokens"] > 0 and turn["output_tokens"] > 0
    assert rec["library_version"] == run.conditions[1].version
    assert rec["episode_id"] == rec["key"] and rec["stop_reason"] == "done"
    assert (
        "ORACLE-SKILL" not in turn["observation"]
    )  # records are bare; skills are their own segment
    for name in (
        "report.md",
        "summary.json",
        "success_by_split.png",
        "success_by_task_type.png",
        "skill_usage.png",
        "paired_difference.png",
    ):
        assert (tmp_path / "out" / name).stat().st_size > 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "+100.0 [+100.0, +100.0]" in report and "oracle@1" in report


def test_error_episodes_are_counted_not_fatal(tmp_path, oracle_lib, search_gold):
    from reskill_gym.envs.search import SearchEnv

    env = SearchEnv(split="unseen")
    picked = select_tasks(env.task_ids("unseen"), 4)
    failing = {
        env.example(picked[0]).question: LoopbackError(429, "slow down", retry_after=0.0),
        env.example(picked[1]).question: LoopbackError(500, "boom"),
    }
    env.close()
    with LoopbackLLMServer(skill_following(search_gold, failing)) as srv:
        run = run_eval(config(srv, [oracle_lib]), tmp_path / "out", sleep=lambda s: None)
    assert run.ran == 8 and run.errors == 4
    by_type = sorted((r.task_id, r.condition, r.error_type) for r in run.records if r.error)
    assert {t for _, _, t in by_type} == {"rate_limit", "server"}
    assert all(r.retries == 1 for r in run.records if r.error)  # turn_retries=1 used up
    s = summarize(run.records, conditions=[c.name for c in run.conditions])
    oracle = run.conditions[1].name
    assert s.stat(oracle).errors == 2 and s.stat(oracle).success.n == 2
    assert s.stat(oracle).success.mean == 1.0 and s.diff(oracle).diff.n == 2
    # a rerun skips them; --retry-errors runs them again (and they fail again here)
    with LoopbackLLMServer(skill_following(search_gold, failing)) as srv:
        again = run_eval(config(srv, [oracle_lib]), tmp_path / "out")
        assert again.ran == 0 and len(srv.requests) == 0
        retried = run_eval(
            config(srv, [oracle_lib], retry_errors=True), tmp_path / "out", sleep=lambda s: None
        )
    assert retried.ran == 4 and len(retried.records) == 8


def test_auth_error_aborts_with_a_clear_message(tmp_path, oracle_lib, search_gold):
    with LoopbackLLMServer(skill_following(search_gold), api_key="right") as srv:
        with pytest.raises(EvalAbortedError, match="invalid api key"):
            run_eval(config(srv, [oracle_lib]), tmp_path / "out")


def test_resume_after_planned_stop_and_torn_line(tmp_path, oracle_lib, search_gold):
    out = tmp_path / "out"
    with LoopbackLLMServer(skill_following(search_gold)) as srv:
        first = run_eval(config(srv, [oracle_lib]), out, stop_after=3)
        assert first.ran == 3 and len(srv.requests) == 3
        with open(out / "episodes.jsonl", "ab") as f:  # a crash in the middle of a write
            f.write(b'{"key": "no-skills|unseen|x|0", "condi')
        second = run_eval(config(srv, [oracle_lib]), out)
        assert second.skipped == 3 and second.ran == 5
        assert len(srv.requests) == 8  # no episode asked twice
    keys = [json.loads(x)["key"] for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 8


def test_resume_after_interrupt_inside_an_episode(tmp_path, oracle_lib, search_gold):
    calls = {"n": 0}

    def flaky(req: LoopbackRequest) -> str:
        calls["n"] += 1
        return skill_following(search_gold)(req)

    out = tmp_path / "out"
    from reskill_gym.evaluation.agents import make_agent

    class Interrupting:
        def __init__(self, inner, after):
            self.inner, self.after, self.name, self.n = inner, after, inner.name, 0

        def act(self, messages, info, rng):
            self.n += 1
            if self.n > self.after:
                raise KeyboardInterrupt
            return self.inner.act(messages, info, rng)

        def close(self):
            self.inner.close()

    with LoopbackLLMServer(flaky) as srv:
        cfg = config(srv, [oracle_lib])
        agent = make_agent(cfg.agent, llm_overrides=FAST_LLM)
        with pytest.raises(KeyboardInterrupt):
            run_eval(cfg, out, agent=Interrupting(agent, after=5))
        done = (out / "episodes.jsonl").read_text().splitlines()
        assert len(done) == 5
        rest = run_eval(cfg, out)
        assert rest.skipped == 5 and rest.ran == 3
    keys = [json.loads(x)["key"] for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 8


def test_changed_setting_refuses_to_resume(tmp_path, oracle_lib, search_gold):
    with LoopbackLLMServer(skill_following(search_gold)) as srv:
        run_eval(config(srv, [oracle_lib], tasks=1), tmp_path / "out")
        with pytest.raises(EvalAbortedError, match="'max_turns'"):
            run_eval(config(srv, [oracle_lib], tasks=1, max_turns=2), tmp_path / "out")
