"""Reply parsing and the per-worker env pool (no veRL needed for the parser)."""

from __future__ import annotations

import pytest
from reskill_verl.actions import ParsedAction, parse_action

pytestmark = pytest.mark.verl

ADM = ["go to cabinet 1", "go to cabinet 10", "open drawer 2", "take mug 1 from desk 1", "look"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("go to cabinet 10", ParsedAction("go to cabinet 10", "exact")),
        ("  Go To  Cabinet 1.\n", ParsedAction("go to cabinet 1", "exact")),
        ("Action: open drawer 2", ParsedAction("open drawer 2", "exact")),
        ('"look"', ParsedAction("look", "exact")),
        (
            "<action>take mug 1 from desk 1</action>",
            ParsedAction("take mug 1 from desk 1", "exact"),
        ),
        ("I will go to cabinet 10 now", ParsedAction("go to cabinet 10", "contained")),
        (
            "First look, then take mug 1 from desk 1.",
            ParsedAction("take mug 1 from desk 1", "contained"),
        ),
        ("<think>go to cabinet 1?</think>\nopen drawer 2", ParsedAction("open drawer 2", "exact")),
        ("dance wildly\nand sing", ParsedAction("dance wildly", "raw")),
        ("overlook the room", ParsedAction("overlook the room", "raw")),  # 'look' only as a word
        ("   \n ", ParsedAction("", "empty")),
    ],
)
def test_verl_parse_action_admissible(reply, expected):
    assert parse_action(reply, ADM) == expected


def test_verl_parse_action_modes():
    assert parse_action("open drawer 2 please", None) == ParsedAction("open drawer 2 please", "raw")
    assert parse_action("I think open drawer 2", ADM, mode="raw").how == "raw"
    text = "<think>hmm</think><search> capital of France </search>"
    assert parse_action(text, ADM, mode="passthrough") == ParsedAction(text, "passthrough")


def test_verl_env_pool_reuses_and_closes():
    pytest.importorskip("verl")
    from reskill_verl.agent_loop import EnvPool

    class Env:
        def __init__(self) -> None:
            self.closed = False

        def close(self) -> None:
            self.closed = True

    pool = EnvPool(max_idle=1)
    a = pool.acquire("k", Env)
    b = pool.acquire("k", Env)
    assert pool.created == 2 and a is not b
    pool.release("k", a)
    pool.release("k", b)  # pool full: closed
    assert b.closed and not a.closed and pool.idle("k") == 1
    assert pool.acquire("k", Env) is a and pool.created == 2
    pool.release("k", a, healthy=False)  # a broken env is never reused
    assert a.closed and pool.idle("k") == 0
    c = pool.acquire("other", Env)
    pool.release("other", c)
    pool.close()
    assert c.closed and pool.idle("other") == 0
