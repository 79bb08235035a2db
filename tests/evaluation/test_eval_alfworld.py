"""End-to-end on the real ALFWorld engine through the turn contract: a Python-callable policy
(tagged replies parsed, untagged ones invalid with feedback, identical to a RolloutSession
replay), lenient parsing on request, and the local default model in score mode (the one
choice rule, with candidates and scores in the records)."""

from __future__ import annotations

import importlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reskill_gym.evaluation import EvalConfig, run_and_report, run_eval, summarize
from reskill_gym.evaluation.config import NO_SKILLS
from reskill_gym.rollout import RolloutSession, choose_action

SKILLS = Path(__file__).resolve().parents[2] / "skills" / "alfworld"

POLICY = """
SEEN = []

def act(messages, info):
    SEEN.append([dict(m) for m in messages])
    text = messages[-1]['content']
    takes = [a for a in info['admissible_actions'] if a.startswith('take ')]
    # with skills in the prompt: act on the object, tagged (in capitals: the parser maps it
    # to the env's spelling); without: an untagged reply, invalid under the tagged format
    if '## Skills' in text and takes:
        return '<think>The skill says to take it.</think><action>' + takes[0].upper() + '</action>'
    return 'look'
"""


@pytest.fixture
def policy(tmp_path, monkeypatch):
    (tmp_path / "alf_policy_eval.py").write_text(POLICY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("alf_policy_eval", None)
    module = importlib.import_module("alf_policy_eval")
    yield module
    sys.modules.pop("alf_policy_eval", None)


def test_callable_agent_on_alfworld_through_the_contract(tmp_path, policy):
    cfg = EvalConfig(
        env="alfworld",
        splits=["unseen"],
        skills=[str(SKILLS)],
        agent="python:alf_policy_eval:act",
        tasks=2,
        seeds=[0],
        difficulty="tiny",
        max_turns=3,
    )
    assert cfg.mode == "generate" and cfg.rollout.resolve("alfworld").action_format == "tagged"
    run = run_and_report(cfg, tmp_path / "out")
    assert run.ran == 4 and run.errors == 0
    lib = run.conditions[1].name
    for r in run.records:
        assert r.task_type and r.turns and r.group_id == f"unseen|{r.task_id}|0"
        if r.condition == NO_SKILLS:
            # untagged 'look' is never executed: three invalid turns, then the turn cap
            assert [t.valid for t in r.turns] == [False] * 3 and r.stop_reason == "turn_cap"
            assert r.parse_counts == {"empty": 3} and r.actions == []
            assert all(t.reply == "look" and t.action == "" for t in r.turns)
        else:
            t0 = r.turns[0]
            assert t0.skill_ids and t0.valid and t0.parse == "tagged"
            assert t0.action.startswith("take ") and t0.action == t0.action.lower()
    # the second prompt of a no-skills episode carries the feedback of the invalid reply
    second = policy.SEEN[1][-1]["content"]
    assert "Your previous reply was not executed: no <action>...</action> in the reply" in second
    assert "<action>" in policy.SEEN[0][0]["content"]  # the system message asks for the tags
    s = summarize(run.records, conditions=[NO_SKILLS, lib])
    assert s.diff(lib).diff.n == 2 and s.stat(NO_SKILLS).valid_action_ratio == 0.0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "valid actions" in md and "| 0% | empty 6 |" in md

    # the eval record is exactly what a RolloutSession gives for the same replies
    from reskill_gym.envs.alfworld import ALFWorldEnv
    from reskill_gym.skills import LibraryView
    from reskill_gym.wrapper import SkillWrapper

    rec = next(r for r in run.records if r.condition == lib)
    env = SkillWrapper(
        ALFWorldEnv(difficulty="tiny", split="unseen", max_turns=3),
        LibraryView.from_folder(SKILLS),
    )
    try:
        s = RolloutSession(env, cfg.rollout, episode_id=rec.key, group_id=rec.group_id)
        s.reset(task_id=rec.task_id, seed=rec.seed, options={"split": "unseen"})
        while not s.done:
            s.act(policy.act(s.messages(), s.info))
        replay = s.episode()
    finally:
        env.close()
    assert replay.turns == rec.turns
    # every Episode field is the session's; EvalEpisode only adds its place in the design
    assert replay.model_dump() == rec.model_dump(include=set(type(replay).model_fields))


def test_lenient_format_on_request(tmp_path, policy):
    cfg = EvalConfig(
        env="alfworld",
        agent="python:alf_policy_eval:act",
        tasks=1,
        difficulty="tiny",
        max_turns=2,
        rollout={"action_format": "lenient"},
    )
    run = run_eval(cfg, tmp_path / "out")
    (r,) = run.records
    assert [(t.action, t.parse, t.valid) for t in r.turns] == [("look", "exact", True)] * 2
    assert "<action>" not in policy.SEEN[0][0]["content"]


# ----- score mode with the real local model -----------------------------------------------
PROMPT = [
    {"role": "system", "content": "You are an agent in a household. Reply with one action."},
    {
        "role": "user",
        "content": "Task: put a mug in cabinet 1.\n\nCurrent observation (turn 1):\nYou are in "
        "the middle of a room. Looking quickly around you, you see a cabinet 1, a desk 1 and a "
        "drawer 1.",
    },
]


@pytest.fixture(scope="module")
def smol():
    pytest.importorskip("torch")
    from reskill_gym.llm import make_backend

    backend = make_backend("local:default")
    yield backend
    backend.close()


@pytest.mark.slow
def test_score_agent_applies_the_training_choice_rule(smol):
    from reskill_gym.evaluation.agents import ScoreAgent

    cands = ["inventory", "take mug 1 from desk 1"]
    lps = smol.token_logprobs(PROMPT, cands)
    assert [len(x) for x in lps] == [len(smol.tokenizer(c)["input_ids"]) + 1 for c in cands]
    assert smol.score(PROMPT, cands) == pytest.approx([sum(x) for x in lps], abs=1e-4)
    picks = {}
    for norm in ("mean", "sum"):
        out = ScoreAgent(smol, score_norm=norm).act(
            PROMPT, {"admissible_actions": cands}, np.random.default_rng(0)
        )
        want = choose_action(cands, lps, norm=norm, temperature=0.0, u=0.5)
        assert out.choice.action == want.action and out.input_tokens > 0
        assert out.choice.scores == pytest.approx(want.scores, abs=1e-4)
        picks[norm] = out.choice.action
    # summed log-probs favour the short command; the training default (mean) does not
    assert picks == {"mean": "take mug 1 from desk 1", "sum": "inventory"}
    # temperature > 0: u is the next draw of the episode's generator (replayable)
    u = float(np.random.default_rng([3, 7]).random())
    out = ScoreAgent(smol, temperature=1.0).act(
        PROMPT, {"admissible_actions": cands}, np.random.default_rng([3, 7])
    )
    want = choose_action(cands, lps, norm="mean", temperature=1.0, u=u)
    assert out.choice.index == want.index and out.choice.prob == pytest.approx(want.prob)


@pytest.mark.slow
def test_score_mode_records_candidates_and_scores(tmp_path, smol):
    from reskill_gym.evaluation.agents import ScoreAgent

    t0 = time.monotonic()
    cfg = EvalConfig(
        env="alfworld",
        skills=[str(SKILLS)],
        agent="local:default",
        tasks=1,
        difficulty="tiny",
        max_turns=3,
        temperature=1.0,
    )
    assert cfg.mode == "score" and cfg.rollout.score_norm == "mean"
    run = run_eval(cfg, tmp_path / "out", agent=ScoreAgent(smol, temperature=1.0))
    assert run.ran == 2 and run.errors == 0
    for r in run.records:
        assert r.parse_counts == {"score": len(r.turns)} and r.output_tokens == 0
        for t in r.turns:
            assert t.candidates and len(t.scores) == len(t.candidates)
            # every probability can be recomputed from the record: softmax(scores / T)
            z = np.exp(np.asarray(t.scores) - max(t.scores))
            assert t.choice_prob == pytest.approx(z[t.candidates.index(t.action)] / z.sum())
            assert t.input_tokens > 0 and t.valid and math.isfinite(t.choice_prob)
    print(f"score-mode eval, 2 episodes: {time.monotonic() - t0:.1f}s", file=sys.stderr)


@pytest.mark.slow
def test_local_default_score_mode_on_alfworld(tmp_path):
    pytest.importorskip("torch")
    t0 = time.monotonic()
    cfg = EvalConfig(
        env="alfworld",
        splits=["unseen"],
        skills=[str(SKILLS)],
        agent="local:default",
        tasks=2,
        seeds=[0],
        difficulty="tiny",
        max_turns=3,
    )
    assert cfg.mode == "score"
    run = run_and_report(cfg, tmp_path / "out")
    assert run.ran == 4 and run.errors == 0
    for r in run.records:
        assert r.parse_counts == {"score": len(r.turns)}
        assert all(t.output_tokens == 0 and t.choice_prob == 1.0 for t in r.turns)  # greedy
    print(f"local:default, 4 episodes x <=3 turns: {time.monotonic() - t0:.1f}s", file=sys.stderr)


@pytest.mark.slow
def test_local_score_equals_full_sequence_logprob():
    torch = pytest.importorskip("torch")
    from reskill_gym.llm import make_backend
    from reskill_gym.llm.protocol import normalize_messages

    b = make_backend("local:default")
    msgs = [{"role": "user", "content": "Task: put a mug in cabinet 1. Next action?"}]
    cands = ["go to cabinet 1", "go to cabinet 10", "take mug 1 from desk 1", "look"]
    fast = b.score(msgs, cands, max_batch=3)  # two chunks
    per_token = b.token_logprobs(msgs, cands, max_batch=2)
    tok, lm = b.tokenizer, b.lm
    prompt = tok.apply_chat_template(
        b._chat(normalize_messages(msgs), None), add_generation_prompt=True, tokenize=False
    )
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    for c, got, lps in zip(cands, fast, per_token):
        # scoring appends the turn end only (generation may also stop at EOS)
        ids = tok(c, add_special_tokens=False)["input_ids"] + b._stop_ids[:1]
        with torch.inference_mode():
            lp = torch.log_softmax(lm(torch.tensor([p + ids])).logits[0].float(), -1)
        want = [float(lp[len(p) - 1 + i, t]) for i, t in enumerate(ids)]
        assert got == pytest.approx(sum(want), abs=1e-3)
        assert lps == pytest.approx(want, abs=1e-3)
