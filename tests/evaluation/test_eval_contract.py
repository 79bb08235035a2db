"""``reskill eval`` plays by the turn contract: config mapping onto the rollout block, score
mode through the one choice rule (replayed turn by turn), agent failures as error episodes,
and config pinning only by runs that recorded episodes."""

from __future__ import annotations

import importlib
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from reskill_gym.evaluation import EvalConfig, run_eval, summarize
from reskill_gym.evaluation.config import EvalAbortedError
from reskill_gym.rollout import RolloutSession, candidate_scores, choose_action
from reskill_gym.testing.loopback import LoopbackLLMServer

REPO = Path(__file__).resolve().parents[2]


# ----- config ---------------------------------------------------------------------------------
def test_flat_keys_map_onto_the_rollout_block():
    cfg = EvalConfig(
        env="alfworld", agent="python:m:f", history_turns=7, show_admissible=False, mode=None
    )
    assert cfg.mode == "generate" and cfg.rollout.history_turns == 7
    assert cfg.rollout.show_admissible is False and cfg.rollout.record_scores
    assert EvalConfig(env="alfworld", agent="local:default").mode == "score"
    assert EvalConfig(env="search", agent="local:default").mode == "generate"
    explicit = EvalConfig(
        env="alfworld", agent="local:default", rollout={"action_mode": "generate"}
    )
    assert explicit.mode == "generate"
    # the dump (config.json) validates back to the same config
    assert EvalConfig.model_validate(explicit.model_dump()) == explicit
    with pytest.raises(ValueError, match="contradicts rollout.history_turns"):
        EvalConfig(env="search", agent="python:m:f", history_turns=2, rollout={"history_turns": 4})
    with pytest.raises(ValueError, match="difficulty: 'huge' is not one of"):
        EvalConfig(env="alfworld", agent="python:m:f", difficulty="huge")
    with pytest.raises(ValueError, match="score needs a local"):
        EvalConfig(env="alfworld", agent="python:m:f", mode="score")
    with pytest.raises(ValueError, match="rollout"):
        EvalConfig(env="alfworld", agent="python:m:f", rollout={"layuot": "concat"})


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks" / "configs").glob("eval_*.yaml")))
def test_benchmark_configs_validate(path):
    data = yaml.safe_load(path.read_text())
    data.pop("out", None)
    cfg = EvalConfig(**data)
    assert cfg.rollout.score_norm == "mean" and cfg.mode in ("generate", "score")


# ----- score mode through the one choice rule -------------------------------------------------
@pytest.mark.parametrize("norm", ["mean", "sum"])
def test_score_mode_is_choose_action_with_the_episode_generator(tmp_path, tiny_backend, norm):
    from reskill_gym.envs.alfworld import ALFWorldEnv
    from reskill_gym.evaluation.agents import ScoreAgent
    from reskill_gym.wrapper import SkillWrapper

    cfg = EvalConfig(
        env="alfworld",
        agent="local:default",
        tasks=1,
        difficulty="tiny",
        max_turns=3,
        temperature=0.7,
        score_norm=norm,
    )
    agent = ScoreAgent(tiny_backend, temperature=0.7, score_norm=norm)
    (rec,) = run_eval(cfg, tmp_path / "out", agent=agent).records
    assert rec.mode == "score" and len(rec.turns) == 3 and rec.error is None
    # replay: the prompt of each turn, the model's token log-probs, the one choice rule with
    # u drawn from the episode's generator -> the recorded candidates, scores and action
    rng = np.random.default_rng([rec.seed, zlib.crc32(rec.task_id.encode())])
    env = SkillWrapper(ALFWorldEnv(difficulty="tiny", split="unseen", max_turns=3))
    try:
        s = RolloutSession(env, cfg.rollout, episode_id=rec.key)
        s.reset(task_id=rec.task_id, seed=rec.seed, options={"split": "unseen"})
        assert "actions" not in [x.kind for x in s.prompt().user_segments]
        for t in rec.turns:
            lps = tiny_backend.token_logprobs(s.messages(), s.admissible)
            assert t.candidates == s.admissible
            assert t.scores == pytest.approx(candidate_scores(lps, norm).tolist(), abs=1e-5)
            c = choose_action(s.admissible, lps, norm=norm, temperature=0.7, u=float(rng.random()))
            assert (t.action, t.parse) == (c.action, "score")
            assert t.choice_prob == pytest.approx(c.prob, abs=1e-6)
            s.act_choice(c)
    finally:
        env.close()


# ----- agent failures and config pinning ------------------------------------------------------
FLAKY_POLICY = """
CALLS = []

def act(messages, info):
    CALLS.append(1)
    if len(CALLS) == 1:
        raise RuntimeError("policy bug")
    if len(CALLS) == 2:
        return None
    return "<answer> Paris </answer>"
"""


def test_agent_raising_or_returning_none_is_an_error_episode(tmp_path, monkeypatch):
    (tmp_path / "flaky_eval_policy.py").write_text(FLAKY_POLICY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("flaky_eval_policy", None)
    cfg = EvalConfig(env="search", agent="python:flaky_eval_policy:act", tasks=3, max_turns=2)
    run = run_eval(cfg, tmp_path / "out", sleep=lambda s: None)
    assert run.ran == 3 and run.errors == 2
    errs = {r.error: r for r in run.records if r.error}
    assert set(errs) == {
        "RuntimeError: policy bug",
        "TypeError: python:flaky_eval_policy:act returned NoneType, expected str",
    }
    for r in errs.values():
        assert r.error_type == "agent" and r.stop_reason == "error" and r.retries == 0
        assert r.turns == [] and not r.won and r.task and r.task_type  # reset had run
    ok = next(r for r in run.records if not r.error)
    assert ok.turns[0].parse == "passthrough" and ok.stop_reason == "done"
    assert summarize(run.records).stat("no-skills").errors == 2
    assert len(importlib.import_module("flaky_eval_policy").CALLS) == 3  # never re-asked
    sys.modules.pop("flaky_eval_policy", None)


def test_a_failed_run_pins_no_config(tmp_path, monkeypatch):
    monkeypatch.setenv("RESKILL_EVAL_TEST_KEY", "right")
    out = tmp_path / "out"
    with LoopbackLLMServer(lambda req: "<answer> x </answer>", api_key="right") as srv:
        bad = EvalConfig(env="search", agent=srv.spec(), tasks=1, llm={"max_retries": 0})
        with pytest.raises(EvalAbortedError, match="invalid api key"):
            run_eval(bad, out)
        assert not (out / "config.json").exists()
        # the corrected command, even with another setting, may use the same --out
        good = EvalConfig(
            env="search",
            agent=srv.spec(),
            tasks=1,
            max_turns=2,
            llm={"max_retries": 0, "api_key_env": "RESKILL_EVAL_TEST_KEY"},
        )
        run = run_eval(good, out)
    assert run.ran == 1 and run.errors == 0
    pinned = json.loads((out / "config.json").read_text())
    assert pinned["max_turns"] == 2 and pinned["record_format"] == 2
    assert pinned["rollout_resolved"]["action_format"] == "passthrough"
    with pytest.raises(EvalAbortedError, match="'max_turns'"):
        run_eval(good.model_copy(update={"max_turns": 3}), out)
    # an --out that is a file is a clear error
    (tmp_path / "file").write_text("x")
    with pytest.raises(EvalAbortedError, match="not a folder"):
        run_eval(good, tmp_path / "file")
