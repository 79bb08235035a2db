"""Agent specs, reply parsing and the callable agent."""

from __future__ import annotations

import pytest

from reskill_gym.evaluation.agents import (
    AgentRefusalError,
    CallableAgent,
    LLMAgent,
    make_agent,
    parse_action,
    parse_agent_spec,
)
from reskill_gym.llm import LLMConfigError, make_backend
from reskill_gym.llm.loopback import LoopbackLLMServer, LoopbackReply

ADM = ["look", "go to cabinet 1", "go to cabinet 10", "take mug 1 from cabinet 1", "open drawer 2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("go to cabinet 10", ("go to cabinet 10", "exact")),
        ("Go To Cabinet 1.", ("go to cabinet 1", "exact")),
        ("```\nopen drawer 2\n```", ("open drawer 2", "exact")),
        ("> look", ("look", "exact")),
        ("Action: `take mug 1 from cabinet 1`", ("take mug 1 from cabinet 1", "exact")),
        ("I should go to cabinet 10 now", ("go to cabinet 10", "contained")),
        ("First look, then go to cabinet 1", ("go to cabinet 1", "contained")),  # longest wins
        (
            "cabinet 10 looks promising",
            ("cabinet 10 looks promising", "raw"),
        ),  # 'look' is no word here
        ("fly away\nand more", ("fly away", "raw")),
        ("", ("", "empty")),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text, ADM) == expected


def test_parse_without_admissible_is_raw():
    assert parse_action("  search  for x ", None) == ("search for x", "raw")


def test_specs():
    assert parse_agent_spec("local:default").kind == "local"
    assert (
        parse_agent_spec("openai:http://h:8000/v1#Qwen/Qwen3-4B").target
        == "http://h:8000/v1#Qwen/Qwen3-4B"
    )
    assert parse_agent_spec("python:a.b.c:fn").target == "a.b.c:fn"
    with pytest.raises(LLMConfigError, match="did you mean 'anthropic'"):
        parse_agent_spec("claude:sonnet")
    with pytest.raises(LLMConfigError, match="score mode needs token log-probs"):
        make_agent("openai:http://127.0.0.1:1/v1#m", mode="score")
    with pytest.raises(LLMConfigError, match="cannot import"):
        make_agent("python:no_such_module_xyz:act")
    with pytest.raises(LLMConfigError, match="no callable 'nope'"):
        make_agent("python:json:nope")


def test_python_callable_spec_loads_function(tmp_path, monkeypatch):
    (tmp_path / "my_policy_mod.py").write_text(
        "def act(messages, info):\n    return 'I pick: ' + info['admissible_actions'][-1]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = make_agent("python:my_policy_mod:act")
    d = agent.act([{"role": "user", "content": "?"}], {"admissible_actions": ADM}, None)
    assert (d.action, d.parse, d.text) == ("open drawer 2", "contained", "I pick: open drawer 2")


def test_llm_agent_refusal_and_parse_through_server():
    replies = iter(
        [
            LoopbackReply("", stop_reason="stop"),
            "Thought: the mug.\nAction: take mug 1 from cabinet 1",
        ]
    )
    with LoopbackLLMServer(lambda req: next(replies)) as srv:
        agent = LLMAgent(make_backend(srv.spec(), max_retries=0))
        info = {"admissible_actions": ADM}
        with pytest.raises(AgentRefusalError, match="empty reply"):
            agent.act([{"role": "user", "content": "hi"}], info, None)
        d = agent.act([{"role": "user", "content": "hi"}], info, None)
    assert (d.action, d.parse) == ("take mug 1 from cabinet 1", "exact")
    assert d.input_tokens == 1 and d.output_tokens == 10  # loopback counts words


def test_callable_agent_rejects_non_strings():
    agent = CallableAgent(lambda m, i: 3, name="bad")  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="returned int"):
        agent.act([], {}, None)
