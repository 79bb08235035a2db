"""Shared-prefix scoring: the prefix cache, the candidate tree, and LocalBackend's exact path."""

from __future__ import annotations

import threading

import pytest

from reskill_gym.llm.prefix_cache import CandidateTree, PrefixCache


def test_prefix_cache_is_bounded_lru_and_drops_redundant_prefixes() -> None:
    c = PrefixCache(max_tokens=10)
    c.put([1, 2, 3], ["a"])
    c.put([1, 2, 3, 4, 5], ["b"])  # [1, 2, 3] is a prefix of it: dropped
    assert len(c) == 1 and c.tokens == 5
    c.put([9, 9, 9], ["c"])
    assert c.tokens == 8
    hit = c.match([1, 2, 3, 4, 7])
    assert (hit.length, hit.layers, hit.entry_tokens) == (4, ("b",), 5)
    c.put([8, 8, 8, 8], ["d"])  # 12 > 10: the least recently used ([9, 9, 9]) goes
    assert c.match([9, 9]).length == 0 and c.match([1, 2]).length == 2
    c.put(list(range(11)), ["too long"])  # longer than the bound: not kept
    assert c.match(list(range(11))).length <= 1
    assert PrefixCache(0).match([1]).length == 0
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_prefix_cache_threads() -> None:
    c = PrefixCache(max_tokens=1000)

    def work(k: int) -> None:
        for i in range(200):
            c.put([k, i % 7, i], [k])
            c.match([k, i % 7])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.tokens == 3 * len(c) <= 1000


def test_candidate_tree_shares_leading_tokens() -> None:
    cands = [[4, 5, 1, 0], [4, 5, 2, 0], [4, 6, 0], [7, 0]]
    tree = CandidateTree(cands)
    assert len(tree) == 6  # 4, 4-5, 4-5-1, 4-5-2, 4-6, 7
    for cand in cands:
        rows = tree.logit_rows(cand)
        assert rows[0] is None
        for i, row in enumerate(rows[1:], 1):
            assert row is not None and tree.tokens[row] == cand[i - 1]
            assert tree.depths[row] == i - 1
            assert [tree.tokens[a] for a in reversed(tree.ancestors(row))] == cand[:i]


MSGS = [
    {"role": "system", "content": "task look go to 1"},
    {"role": "user", "content": "task go to 1 look 2 take 3 from 1 " * 12},
]
CANDS = ["go to 1", "go to 2", "go to 3", "look", "take 3 from 1", "take 3 from 2", "inventory"]


def _full_sequence(backend, messages, cand):  # the reference: one forward over prompt + reply
    import torch

    from reskill_gym.llm.protocol import normalize_messages

    tok, lm = backend.tokenizer, backend.lm
    text = tok.apply_chat_template(
        backend._chat(normalize_messages(messages), None),
        add_generation_prompt=True,
        tokenize=False,
    )
    p = tok(text, add_special_tokens=False)["input_ids"]
    ids = tok(cand, add_special_tokens=False)["input_ids"] + backend._stop_ids[:1]
    with torch.inference_mode():
        lp = torch.log_softmax(lm(torch.tensor([p + ids])).logits[0].float(), -1)
    return [float(lp[len(p) - 1 + i, t]) for i, t in enumerate(ids)]


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_local_scoring_paths_agree_with_the_full_sequence(arch: str, tiny_chat_model) -> None:
    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend

    # mistral with a window shorter than the prompt: sliding-window layers take the batch path
    lm, tok = tiny_chat_model(arch, **({"sliding_window": 16} if arch == "mistral" else {}))
    fast = LocalBackend(LLMConfig(backend="local"), lm=lm, tokenizer=tok)
    ref = LocalBackend(
        LLMConfig(backend="local", score_prefix_cache_tokens=0, score_packing="batch"),
        lm=lm,
        tokenizer=tok,
    )
    conditions = ["", " help look", " help go to 2", " help take 3 from 1 on 2"]
    for extra in conditions:  # the conditions of one state: same prompt up to its end
        msgs = [MSGS[0], {"role": "user", "content": MSGS[1]["content"] + extra}]
        got = fast.token_logprobs(msgs, CANDS, max_batch=2)  # several tree chunks
        want = ref.token_logprobs(msgs, CANDS, max_batch=3)
        for cand, g, w in zip(CANDS, got, want):
            assert g == pytest.approx(w, abs=1e-4)
            assert g == pytest.approx(_full_sequence(fast, msgs, cand), abs=1e-4)
    if arch == "llama":
        cache = fast.prefix_cache
        assert cache.hits == len(conditions) - 1 and cache.reused_tokens > 100
        # usage counts only the prompt tokens that ran: the later conditions ran few
        assert fast.usage.input_tokens < ref.usage.input_tokens / 2
    else:
        assert len(fast.prefix_cache) == 0  # never used with sliding windows
        assert fast.usage.input_tokens == ref.usage.input_tokens


def test_prompt_entirely_cached_still_runs_its_last_token(tiny_backend) -> None:
    a = tiny_backend.token_logprobs(MSGS, CANDS)
    b = tiny_backend.token_logprobs(MSGS, CANDS)  # the same prompt again: a full hit
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1e-5)
