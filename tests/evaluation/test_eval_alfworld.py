"""End-to-end on the real ALFWorld engine: a Python-callable policy (fast) and the local
default model in score mode (slow: a CPU forward pass per turn)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from reskill_gym.evaluation import EvalConfig, run_and_report, summarize
from reskill_gym.evaluation.runner import NO_SKILLS

SKILLS = Path(__file__).resolve().parents[2] / "skills" / "alfworld"


def _policy_module(tmp_path: Path) -> str:
    (tmp_path / "alf_policy_eval.py").write_text(
        "def act(messages, info):\n"
        "    text = messages[-1]['content']\n"
        "    acts = info['admissible_actions']\n"
        "    takes = [a for a in acts if a.startswith('take ')]\n"
        "    # with skills in the prompt, act on the object; without, look around\n"
        "    return 'I will ' + takes[0] if '## Skills' in text and takes else 'look'\n"
    )
    return "python:alf_policy_eval:act"


def test_callable_agent_on_alfworld(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = _policy_module(tmp_path)
    cfg = EvalConfig(
        env="alfworld",
        splits=["unseen"],
        skills=[str(SKILLS)],
        agent=spec,
        tasks=2,
        seeds=[0],
        workers=1,
        difficulty="tiny",
        max_turns=3,
    )
    run = run_and_report(cfg, tmp_path / "out")
    assert run.ran == 4 and run.errors == 0
    by = {(r.condition, r.task_id): r for r in run.records}
    lib = run.conditions[1].name
    for (cond, _), r in by.items():
        assert (
            r.task_type
            and r.turns >= 1
            and r.turn_log[0].skill_ids == ([] if cond == NO_SKILLS else r.turn_log[0].skill_ids)
        )
        if cond == NO_SKILLS:
            assert {t.action for t in r.turn_log} == {"look"} and r.parse_counts == {
                "exact": r.turns
            }
        else:
            assert r.turn_log[0].skill_ids and r.turn_log[0].action.startswith("take ")
            assert r.turn_log[0].parse == "contained"
    s = summarize(run.records, conditions=[NO_SKILLS, lib])
    assert s.diff(lib).diff.n == 2
    assert (tmp_path / "out" / "report.md").exists()


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
        assert r.parse_counts == {"score": r.turns}
        assert all(t.output_tokens == 0 for t in r.turn_log)  # scoring generates nothing
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
    tok, lm = b.tokenizer, b.lm
    prompt = tok.apply_chat_template(
        b._chat(normalize_messages(msgs), None), add_generation_prompt=True, tokenize=False
    )
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    for c, got in zip(cands, fast):
        ids = tok(c, add_special_tokens=False)["input_ids"] + b._stop_ids
        with torch.inference_mode():
            lp = torch.log_softmax(lm(torch.tensor([p + ids])).logits[0].float(), -1)
        want = sum(float(lp[len(p) - 1 + i, t]) for i, t in enumerate(ids))
        assert got == pytest.approx(want, abs=1e-3)
