"""Structured-output parsing, retry policy, cache files and accounting arithmetic."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from pydantic import BaseModel

from reskill_gym.llm import ResponseCache, UsageTotals
from reskill_gym.llm.cache import cache_key
from reskill_gym.llm.retry import RetryPolicy, parse_retry_after
from reskill_gym.llm.structured import extract_json, parse_output


class Op(BaseModel):
    op: str
    names: list[str]


@pytest.mark.parametrize(
    "text",
    [
        '{"op": "add", "names": ["a"]}',
        'Here you go:\n```json\n{"op": "add", "names": ["a"]}\n```',
        'I think {not json} but then {"op": "add", "names": ["a"]} trailing',
    ],
)
def test_extract_json_from_chatty_answers(text: str) -> None:
    assert parse_output(text, Op) == (Op(op="add", names=["a"]), None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty answer"),
        ('{"op": "add", "names": [', "no valid JSON object"),
        ("[1, 2]", "expected an object, got list"),
        ('{"op": 3}', "names: Field required"),
    ],
)
def test_parse_output_reasons(text: str, reason: str) -> None:
    parsed, err = parse_output(text, Op)
    assert parsed is None and reason in (err or "")


def test_extract_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        extract_json("no braces here")


def test_backoff_grows_and_is_capped() -> None:
    p = RetryPolicy(base_s=1.0, max_s=8.0, seed=1)
    delays = [p.delay(a) for a in range(6)]
    for a, d in enumerate(delays):
        cap = min(8.0, 2.0**a)
        assert cap * 0.5 <= d <= cap
    # Retry-After longer than the backoff wins, but is clipped
    p2 = RetryPolicy(base_s=0.1, max_s=1.0, max_retry_after_s=5.0, seed=1)
    assert p2.delay(0, retry_after=3.0) == 3.0
    assert p2.delay(0, retry_after=60.0) == 5.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    secs = parse_retry_after({"Retry-After": format_datetime(when, usegmt=True)})
    assert secs is not None and 25 <= secs <= 31
    assert parse_retry_after({"Retry-After": "soon"}) is None


def test_cache_roundtrip_corruption_and_concurrent_writes(tmp_path) -> None:
    cache = ResponseCache(tmp_path)
    k = cache_key({"a": 1, "b": [1, 2]})
    assert k == cache_key({"b": [1, 2], "a": 1})  # canonical
    assert cache.get(k) is None
    threads = [
        threading.Thread(target=cache.put, args=(k, {"text": "x" * 10_000, "i": i}))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry = cache.get(k)
    assert entry is not None and entry["text"] == "x" * 10_000
    assert len(cache) == 1 and not list(tmp_path.rglob("*.tmp"))
    cache.path(k).write_text("{truncated", encoding="utf-8")
    assert cache.get(k) is None  # corrupt entry is a miss, not a crash
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cache.path("../../etc/passwd")
    json.loads(json.dumps(entry))


def test_usage_totals_subtract() -> None:
    a = UsageTotals(calls=5, input_tokens=100, cost_usd=0.5)
    b = UsageTotals(calls=2, input_tokens=40, cost_usd=0.2)
    d = a - b
    assert (d.calls, d.input_tokens) == (3, 60) and d.cost_usd == pytest.approx(0.3)
