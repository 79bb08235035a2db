"""ReSkill-Search-v0 end to end: scripted vs random agents, determinism, contract checks."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import reskill_gym  # noqa: F401  (registers the ids)
from reskill_gym.envs.search import Passage, SearchEnv
from reskill_gym.envs.search.env import DEFAULT_MAX_TURNS


def play_scripted(
    env: SearchEnv, seed: int | None = None, task_id: str | None = None
) -> tuple[float, dict]:
    """Search each hop's entity, check the evidence came back, answer the gold answer."""
    options = {"task_id": task_id} if task_id else None
    obs, info = env.reset(seed=seed, options=options)
    ex = env.current_example
    assert ex is not None and ex.question in obs
    for query, gold_pid in zip(ex.hop_queries, ex.gold_passage_ids):
        obs, reward, terminated, truncated, info = env.step(
            f"<think>look up {query}</think>\n<search>{query}</search>"
        )
        assert not (terminated or truncated) and reward == 0.0
        assert gold_pid in info["retrieved_ids"], (ex.id, query, info["retrieved_ids"])
        assert obs.startswith("<information>Doc 1(Title: ")
    # The evidence really contains the answer (the KB is answerable, not just labelled).
    obs, reward, terminated, truncated, info = env.step(f"<answer>{ex.answers[0]}</answer>")
    assert terminated and not truncated
    return reward, info


@pytest.fixture
def env(search_cache: Path) -> SearchEnv:
    e = SearchEnv(split="train", cache_dir=search_cache)
    yield e
    e.close()


def test_gym_make_plays_to_a_win(search_cache: Path) -> None:
    env = gym.make("ReSkill-Search-v0", skills=None, cache_dir=search_cache)
    reward, info = play_scripted(env.unwrapped, seed=7)
    assert reward == 1.0 and info["won"] and info["em"] == 1.0 and info["f1"] == 1.0
    env.close()


@pytest.mark.parametrize("split", ["train", "seen", "unseen"])
def test_scripted_agent_wins_every_template(search_cache: Path, search_kb, split: str) -> None:
    env = SearchEnv(split=split, cache_dir=search_cache)
    by_type: dict[str, str] = {}
    for ex in search_kb.examples[split]:
        by_type.setdefault(ex.task_type, ex.id)
    for task_id in by_type.values():
        reward, info = play_scripted(env, seed=0, task_id=task_id)
        assert reward == 1.0, (task_id, info)
        assert info["task_id"] == task_id and info["split"] == split
    # And across 40 seeded random tasks of the split.
    wins = [play_scripted(env, seed=s)[0] for s in range(40)]
    assert sum(wins) == 40


def test_evidence_contains_the_answer(search_cache: Path, search_kb) -> None:
    """For sampled questions, the retrieved evidence text mentions the gold answer."""
    env = SearchEnv(split="seen", cache_dir=search_cache)
    rng = random.Random(0)
    for ex in rng.sample(search_kb.examples["seen"], 30):
        env.reset(options={"task_id": ex.id})
        seen_text = ""
        for q in ex.hop_queries:
            seen_text += env.step(f"<search>{q}</search>")[0]
        if ex.answers[0] not in ("yes", "no"):
            assert ex.answers[0] in seen_text, ex


def test_split_templates_are_disjoint_and_questions_held_out(search_kb) -> None:
    train = {ex.task_type for ex in search_kb.examples["train"]}
    seen = {ex.task_type for ex in search_kb.examples["seen"]}
    unseen = {ex.task_type for ex in search_kb.examples["unseen"]}
    assert seen == train and not (unseen & train)
    assert any(t.startswith("compare_") for t in unseen)
    train_q = {ex.question for ex in search_kb.examples["train"]}
    assert not train_q & {ex.question for ex in search_kb.examples["seen"]}


def test_random_agent_does_not_win(env: SearchEnv, search_kb) -> None:
    rng = random.Random(123)
    titles = sorted({p.title for p in search_kb.corpus})
    words = [w for t in titles[:500] for w in t.split()]
    wins = 0
    episodes = 40
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            roll = rng.random()
            if roll < 0.3:
                action = env.action_space.sample()
            elif roll < 0.75:
                action = f"<search>{' '.join(rng.sample(words, 2))}</search>"
            else:
                action = f"<answer>{rng.choice(titles)}</answer>"
            _, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        wins += int(info["won"])
    assert wins / episodes < 0.1


def test_action_space_samples_are_invalid_and_truncate(env: SearchEnv) -> None:
    env.reset(seed=3)
    env.action_space.seed(0)
    for turn in range(1, DEFAULT_MAX_TURNS + 1):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["invalid_action"] and reward == 0.0 and info["turn"] == turn
        assert "invalid" in obs
    assert truncated and not terminated and info["em"] == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>x</answer>")


def test_seeded_determinism(search_cache: Path) -> None:
    a = SearchEnv(split="seen", cache_dir=search_cache)
    b = SearchEnv(split="seen", cache_dir=search_cache)
    for seed in (0, 1, 99):
        oa, ia = a.reset(seed=seed)
        ob, ib = b.reset(seed=seed)
        assert oa == ob and ia == ib
        q = a.current_example.hop_queries[0]
        assert a.step(f"<search>{q}</search>") == b.step(f"<search>{q}</search>")
    ids = {a.reset(seed=s)[1]["task_id"] for s in range(20)}
    assert len(ids) > 10


def test_check_env(search_cache: Path) -> None:
    check_env(SearchEnv(cache_dir=search_cache, render_mode="ansi"))


def test_async_vector_env_of_two(search_cache: Path) -> None:
    fns = [
        lambda: gym.make("ReSkill-Search-v0", skills=None, split="unseen", cache_dir=search_cache)
    ] * 2
    # Text observations hold punctuation, which Gymnasium's shared-memory Text encoding cannot
    # store; strings travel through the pipe instead.
    venv = gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    try:
        obs, infos = venv.reset(seed=[1, 2])
        assert len(obs) == 2 and all("Question:" in o for o in obs)
        questions = list(infos["task"])
        obs, rewards, term, trunc, infos = venv.step(("<search>Velm</search>", "no tags"))
        assert obs[0].startswith("<information>") and "invalid" in obs[1]
        assert list(infos["invalid_action"]) == [False, True]
        obs, rewards, term, trunc, infos = venv.step(("<answer>x</answer>", "<answer>y</answer>"))
        assert term.all() and np.all(rewards == 0.0)
    finally:
        venv.close()
    single = SearchEnv(split="unseen", cache_dir=search_cache)
    assert single.reset(seed=1)[1]["task"] == questions[0]


def test_empty_and_malformed_actions(env: SearchEnv) -> None:
    env.reset(seed=0)
    for action, reason in [
        ("", "empty action"),
        ("   \n ", "empty action"),
        ("<search>   </search>", "empty <search> block"),
        ("<answer></answer>", "empty <answer> block"),
        ("<search>unclosed", "no <search>"),
    ]:
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["invalid_action"] and reason in obs and not terminated, action
    with pytest.raises(TypeError):
        env.step(42)  # type: ignore[arg-type]


def test_over_long_action_is_truncated_with_warning(
    env: SearchEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env.reset(seed=0)
    gold = env.current_example.answers[0]
    with caplog.at_level(logging.WARNING):
        _, reward, terminated, _, info = env.step(f"<answer>{gold}</answer>" + "x" * 10_000)
    assert "truncated" in caplog.text and terminated and reward == 1.0
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("<answer>" + "y" * 10_000 + "</answer>")
    assert info["invalid_action"] and not terminated


def test_first_block_wins_and_case_insensitive_tags(env: SearchEnv) -> None:
    env.reset(seed=0)
    gold = env.current_example.answers[0]
    _, reward, terminated, _, info = env.step(
        f"<ANSWER>  the {gold}!  </ANSWER><search>more</search>"
    )
    assert terminated and reward == 1.0 and info["action_type"] == "answer"


def test_last_turn_hint_and_truncation(search_cache: Path) -> None:
    env = SearchEnv(cache_dir=search_cache, max_turns=3)
    env.reset(seed=0)
    obs1 = env.step("<search>river</search>")[0]
    obs2, _, terminated, truncated, _ = env.step("<search>city</search>")
    assert "One turn left" not in obs1 and "One turn left" in obs2 and not truncated
    _, reward, terminated, truncated, info = env.step("<search>mountain</search>")
    assert truncated and not terminated and reward == 0.0 and info["num_searches"] == 3


def test_retriever_object_and_top_k(search_cache: Path, search_kb) -> None:
    class FirstTwo:
        """A retriever that always returns the first two passages (a real protocol user)."""

        def search(self, query: str, k: int) -> list[Passage]:
            return list(search_kb.corpus[:k])

    env = SearchEnv(cache_dir=search_cache, retriever=FirstTwo(), top_k=2)
    env.reset(seed=0)
    obs, *_, info = env.step("<search>anything</search>")
    assert info["retrieved_ids"] == ["0", "1"] and "Doc 2(" in obs and "Doc 3(" not in obs


def test_no_result_query(env: SearchEnv) -> None:
    env.reset(seed=0)
    obs, *_, info = env.step("<search>the of and</search>")
    assert "No results" in obs and info["retrieved_ids"] == []


def test_bad_arguments(search_cache: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        SearchEnv(split="dev")
    with pytest.raises(ValueError, match="top_k"):
        SearchEnv(top_k=0)
    with pytest.raises(ValueError, match="dataset"):
        SearchEnv(dataset="squad")
    with pytest.raises(ValueError, match="data_dir"):
        SearchEnv(dataset="nq")
    with pytest.raises(ValueError, match="unknown retriever"):
        SearchEnv(cache_dir=search_cache, retriever="tfidf").reset(seed=0)
    env = SearchEnv(cache_dir=search_cache)
    with pytest.raises(KeyError, match="did you mean"):
        env.reset(options={"task_id": "single_founder-train-0001"})


def test_render(env: SearchEnv) -> None:
    env.reset(seed=0)
    assert env.render().startswith("[turn 0] Answer the given question")
