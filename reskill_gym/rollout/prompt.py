"""The prompt of one turn: labelled segments, the chat messages built from them, two layouts.

Exports ``TurnPrompt``, ``PromptSegment``, ``PastTurn``, ``SegmentKind``,
``build_turn_prompt``, ``default_system_prompt`` and ``invalid_reply_feedback``.

A turn's user message is made of segments, in this order (the published prompts' order):
``task``, ``history`` (per_turn layout: the last H turns as observation/action pairs),
``observation`` (bare, clipped), ``actions`` (the admissible commands) and ``skills`` (the
bundle, its own segment so trainers can mask or drop it). The system message carries the
env's role and the reply format.

``per_turn``: the messages are [system, user] every turn — each turn is its own sample and
prompts stay bounded however long the episode. ``concat``: [system, user_0, assistant_0,
user_1, ...] — earlier user messages are repeated exactly as they were shown (the task only in
the first), so the token stream only ever grows.

>>> from reskill_gym.rollout.config import TurnConfig
>>> cfg = TurnConfig(history_turns=1).resolve("alfworld")
>>> past = [PastTurn(observation="You are in a room.", action="go to desk 1", user_text="", reply="")]
>>> p = build_turn_prompt(cfg, task="find a pen", observation="On the desk 1, you see a pen 1.",
...     bundle_text="", admissible=["take pen 1 from desk 1", "look"], past=past)
>>> print(p.user_text())
Task: find a pen
<BLANKLINE>
Your last 1 of 1 earlier turns:
[Turn 1] Observation: You are in a room.
[Turn 1] Action: go to desk 1
<BLANKLINE>
Current observation (turn 2):
On the desk 1, you see a pen 1.
<BLANKLINE>
Admissible actions: take pen 1 from desk 1, look
>>> [m["role"] for m in p.messages()]
['system', 'user']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from reskill_gym.rollout.published import build_published_prompt
from reskill_gym.rollout.segments import PastTurn, PromptSegment, SegmentKind, TurnPrompt

if TYPE_CHECKING:  # pragma: no cover
    from reskill_gym.rollout.config import TurnConfig

__all__ = [
    "TurnPrompt",
    "PromptSegment",
    "PastTurn",
    "SegmentKind",
    "build_turn_prompt",
    "default_system_prompt",
    "invalid_reply_feedback",
]


_SKILL_HINT = " When a skill is shown, check its when-to-use condition and follow it if it applies."
_FORMATS: dict[str, str] = {
    "tagged": " Each turn, first reason step by step inside <think> </think>, then give exactly "
    "one admissible action inside <action> </action>, for example: <think>The mug should be in "
    "the cabinet.</think><action>go to cabinet 1</action>.",
    "lenient": " Reply with exactly one action and nothing else.",
    "passthrough": "",
    "score": " Reply with exactly one action and nothing else.",
}


def default_system_prompt(env_name: str, action_format: str, action_mode: str = "generate") -> str:
    """The system message for ``env_name``: its role (the env spec's ``system_prompt``), the
    skill hint and the reply format.

    >>> default_system_prompt("search", "passthrough").startswith("You are a question")
    True
    """
    from reskill_gym.envs.registration import find_spec
    from reskill_gym.envs.spec import DEFAULT_ROLE

    fmt = "score" if action_mode == "score" else action_format
    spec = find_spec(env_name)
    role = spec.system_prompt if spec is not None else DEFAULT_ROLE
    return role + _SKILL_HINT + _FORMATS[fmt]


def invalid_reply_feedback(action_format: str, why: str) -> str:
    """What the agent reads after a reply that carried no valid action (the env did not run).

    >>> invalid_reply_feedback("tagged", "no <action> tag")
    'Your previous reply was not executed: no <action> tag. Think inside <think> </think>, then give exactly one admissible action inside <action> </action>.'
    """
    how = (
        "Think inside <think> </think>, then give exactly one admissible action inside "
        "<action> </action>."
        if action_format == "tagged"
        else "Reply with exactly one admissible action."
    )
    return f"Your previous reply was not executed: {why}. {how}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def build_turn_prompt(
    config: TurnConfig,
    *,
    task: str,
    observation: str,
    bundle_text: str,
    admissible: Sequence[str] | None,
    past: Sequence[PastTurn] = (),
    env_name: str = "",
    action_hint: str | None = None,
) -> TurnPrompt:
    """The prompt of turn ``len(past)`` under ``config`` (resolved: see ``TurnConfig.resolve``).

    ``observation`` is the bare observation (no skill block); ``past`` holds every earlier
    turn of the episode, oldest first; the layout decides how much of it is shown.
    ``format: published`` builds the published prompt of ``env_name`` instead
    (:func:`reskill_gym.rollout.published.build_published_prompt`; ``action_hint`` is
    ScienceWorld's list of action templates and objects).
    """
    if config.system_prompt is None or config.show_admissible is None:
        raise ValueError("build_turn_prompt needs a resolved TurnConfig (call .resolve(env))")
    if config.format == "published":
        return build_published_prompt(
            config,
            env_name,
            task=task,
            observation=observation,
            bundle_text=bundle_text,
            admissible=admissible,
            past=past,
            action_hint=action_hint,
        )
    turn = len(past)
    segs: list[PromptSegment] = []
    previous: list[dict[str, str]] = []
    if config.layout == "concat":
        for p in past:
            previous += [
                {"role": "user", "content": p.user_text},
                {"role": "assistant", "content": p.reply},
            ]
        if turn == 0 and task:
            segs.append(PromptSegment("task", f"Task: {task}"))
    else:
        if task:
            segs.append(PromptSegment("task", f"Task: {task}"))
        shown = past[len(past) - config.history_turns :] if config.history_turns else []
        if shown:
            first = turn - len(shown) + 1
            lines = [f"Your last {len(shown)} of {turn} earlier turns:"]
            for i, p in enumerate(shown, start=first):
                obs = _clip(p.observation, config.max_history_observation_chars)
                lines.append(f"[Turn {i}] Observation: {obs}")
                lines.append(f"[Turn {i}] Action: {p.action}")
            segs.append(PromptSegment("history", "\n".join(lines)))
    obs = _clip(observation, config.max_observation_chars)
    label = (
        f"Current observation (turn {turn + 1}):"
        if config.layout == "per_turn"
        else (f"Observation (turn {turn + 1}):")
    )
    segs.append(PromptSegment("observation", f"{label}\n{obs}"))
    if config.show_admissible and admissible:
        segs.append(PromptSegment("actions", "Admissible actions: " + ", ".join(admissible)))
    if config.include_skills and bundle_text:  # after the actions, as the published prompts
        segs.append(PromptSegment("skills", bundle_text.rstrip("\n")))
    return TurnPrompt(system=config.system_prompt, user_segments=segs, previous=previous)
