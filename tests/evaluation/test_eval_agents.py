"""Agent specs and what each agent answers (reply text + usage): agents never parse."""

from __future__ import annotations

import pytest

from reskill_gym.evaluation.agents import (
    AgentRefusalError,
    AgentReply,
    CallableAgent,
    LLMAgent,
    make_agent,
    parse_agent_spec,
)
from reskill_gym.llm import LLMConfigError, make_backend
from reskill_gym.testing.loopback import LoopbackLLMServer, LoopbackReply

ADM = ["look", "go to cabinet 1", "go to cabinet 10", "take mug 1 from cabinet 1", "open drawer 2"]


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
    with pytest.raises(LLMConfigError, match="score mode is for local"):
        make_agent("python:json:dumps", mode="score")
    with pytest.raises(LLMConfigError, match="cannot import"):
        make_agent("python:no_such_module_xyz:act")
    with pytest.raises(LLMConfigError, match="no callable 'nope'"):
        make_agent("python:json:nope")


def test_python_callable_spec_returns_the_raw_reply(tmp_path, monkeypatch):
    (tmp_path / "my_policy_mod.py").write_text(
        "def act(messages, info):\n"
        "    return 'I pick: <action>' + info['admissible_actions'][-1] + '</action>'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = make_agent("python:my_policy_mod:act")
    assert agent.mode == "generate"
    out = agent.act([{"role": "user", "content": "?"}], {"admissible_actions": ADM}, None)
    assert out == AgentReply(text="I pick: <action>open drawer 2</action>")


def test_llm_agent_refusal_empty_and_usage_through_server():
    replies = iter(
        [
            LoopbackReply("I cannot help with that.", stop_reason="content_filter"),
            LoopbackReply("", stop_reason="stop"),
            "<think>the mug.</think><action>take mug 1 from cabinet 1</action>",
        ]
    )
    with LoopbackLLMServer(lambda req: next(replies)) as srv:
        agent = LLMAgent(make_backend(srv.spec(), max_retries=0))
        msgs = [{"role": "user", "content": "hi"}]
        with pytest.raises(AgentRefusalError, match="refusal"):
            agent.act(msgs, {"admissible_actions": ADM}, None)
        # an empty reply is an answer: the session records it as an invalid turn
        assert agent.act(msgs, {}, None).text == ""
        out = agent.act(msgs, {"admissible_actions": ADM}, None)
    assert out.text == "<think>the mug.</think><action>take mug 1 from cabinet 1</action>"
    assert (out.input_tokens, out.output_tokens) == (1, 7)  # loopback counts words


@pytest.mark.parametrize("value", [None, 3, ["look"]])
def test_callable_agent_rejects_non_strings(value):
    agent = CallableAgent(lambda m, i: value, name="bad")  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match=f"returned {type(value).__name__}"):
        agent.act([], {}, None)
