"""The published ReSkill turn format: its prompts, its history, its trimming, its reply parsers.

Exports ``build_published_prompt``, ``published_skills_section``, ``PUBLISHED_ENVS`` and
``PUBLISHED_PROMPT_CHAR_RATIO`` (the format's reply parsers are ``parse_action``'s
``action_format="published"``).

``TurnConfig(format="published")`` selects it; every ``configs/verl/published/*`` preset does.
What it reproduces, read from amazon-science/reskill (``reskill/environments/<env>/``):

* **one user message, no system message** (``verl_integration/rollout.py``
  ``preprocess_single_sample``: the chat is ``[{"role": "user", ...}]``);
* the ReSkill prompt of each env (``prompts.py``: ``ALFWORLD_RESKILL_REASON``,
  ``SCIENCEWORLD_RESKILL_REASON``, ``SEARCH_RESKILL_REASON`` and their ``_NO_HIS`` forms for
  the first turn; the ``GRPO_REASON`` forms when ``include_skills`` is false): the role and
  task, "Prior to this step, you have already taken N step(s)...", the current observation,
  the admissible actions (ALFWorld: ``'a'`` quoted, one per line, ``help`` left out;
  ScienceWorld: the engine's action templates and object list, ``info["action_hint"]``), the
  ``## Available Skills`` section, and "First, briefly explain your reasoning in one sentence
  (including which skill you applied, if any)" before the action tags;
* the history of ``base.py``'s memories: ``[Observation n: 'obs', Action n: 'act']`` lines
  (ALFWorld, ScienceWorld: the observation each action was taken on, never clipped) or
  ``Step n:<action> <information>`` lines (Search: the observation the action produced);
* the trimming of ``env_manager.py``/``skill_env_manager.py``: when the prompt exceeds
  ``prompt_chars`` characters (published: ``obs_char_ratio`` 2.5 x ``max_prompt_length`` for
  ALFWorld and Search, 1.8 x for ScienceWorld: ``PUBLISHED_PROMPT_CHAR_RATIO``), history
  *lines* are dropped from the oldest (the joined history split on newlines, as published,
  so a multi-line observation loses its first lines first), then the current observation is
  cut ("... (truncated)", history "(trimmed)"; Search: history "(history trimmed to fit
  prompt budget)", then the skills section), and last the first-turn form is used;
* the projections (``projection.py``): ALFWorld/ScienceWorld lower-case the reply and take
  the text between the first ``<action>`` and the first ``</action>``; without both tags the
  reply's last 30 characters are the action and the reply is invalid (a Chinese character
  also makes it invalid). Search takes the first ``<search>`` block, else the first
  ``<answer>`` block, else nothing; both kinds of tag, or one twice, make it invalid. An
  invalid reply **still steps the env** with that action (the session does it) and is
  penalised like any invalid turn.

>>> from reskill_gym.rollout.config import TurnConfig
>>> cfg = TurnConfig(format="published", history_turns=2).resolve("alfworld")
>>> p = build_published_prompt(cfg, "alfworld", task="", observation="You arrive at desk 1.",
...     bundle_text="", admissible=["take pen 1 from desk 1", "help"], past=[])
>>> [m["role"] for m in p.messages()]
['user']
>>> print(p.user_text())
<BLANKLINE>
You are an expert agent operating in the ALFRED Embodied Environment.
Your current observation is: You arrive at desk 1.
Your admissible actions of the current situation are:
[
'take pen 1 from desk 1'
].
<BLANKLINE>
## Available Skills
<BLANKLINE>
(no skills available)
<BLANKLINE>
Now it's your turn to take an action.
Check the Available Skills section by reading each `when_to_use` field. If a skill matches your situation, state which skill you are applying and follow its `action` guidance; otherwise, proceed on your own.
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, provide your chosen action enclosed in <action> </action> tags.
<BLANKLINE>
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from reskill_gym.rollout.segments import PastTurn, PromptSegment, SegmentKind, TurnPrompt
from reskill_gym.skills.bundle import PUBLISHED_SKILL_INSTRUCTION, PUBLISHED_TEMPLATE

if TYPE_CHECKING:  # pragma: no cover
    from reskill_gym.rollout.config import TurnConfig

__all__ = [
    "build_published_prompt",
    "published_skills_section",
    "PUBLISHED_ENVS",
    "PUBLISHED_PROMPT_CHAR_RATIO",
]

logger = logging.getLogger(__name__)

PUBLISHED_ENVS: tuple[str, ...] = ("alfworld", "scienceworld", "search")
"""The envs the published format has prompts for."""

PUBLISHED_PROMPT_CHAR_RATIO: dict[str, float] = {
    "alfworld": 2.5,
    "scienceworld": 1.8,
    "search": 2.5,
}
"""Characters per prompt token of the published trimming budget (``env_manager.py``:
``obs_char_ratio`` default 2.5; ScienceWorld hard-codes 1.8): ``prompt_chars`` =
ratio x ``data.max_prompt_length``."""

_ROLE = {
    "alfworld": "You are an expert agent operating in the ALFRED Embodied Environment.",
    "scienceworld": "You are an expert agent operating in the ScienceWorld Environment, a "
    "simulated science laboratory where you perform experiments and solve science tasks.",
    "search": "You are an expert agent tasked with answering the given question step-by-step.",
}
_REASON = "First, briefly explain your reasoning in one sentence."
_REASON_SKILL = (
    "First, briefly explain your reasoning in one sentence (including which skill you applied, "
    "if any)."
)
_ACT = " Then, provide your chosen action enclosed in <action> </action> tags.\n"
_SEARCH_ACT = (
    " Then, choose only one of the following actions:\n"
    "(1) If you lack needed knowledge, call a search engine using format: <search> your query "
    "</search>.\n"
    "(2) If you have enough knowledge to answer confidently, provide your final answer within "
    "<answer> </answer> tags, without detailed illustrations. For example, "
    "<answer>Beijing</answer>.\n"
)
_NO_SKILLS = "\n## Available Skills\n\n(no skills available)\n"
_TASK_MARK = "Your task is to: "
_SW_TASK_HEADING = "Task Description:\n"


def published_skills_section(bundle_text: str) -> str:
    """The published ``format_skills_section`` of a rendered bundle.

    The ``published`` bundle template ends with the instruction to check each
    ``when_to_use``; the published prompts put that instruction after "Now it's your turn",
    so it is taken off here (the format writes it in its place). An empty bundle is the
    published "(no skills available)" section.

    >>> published_skills_section("")
    '\\n## Available Skills\\n\\n(no skills available)\\n'
    """
    block = bundle_text
    if block.endswith(PUBLISHED_TEMPLATE.footer):
        block = block[: -len(PUBLISHED_TEMPLATE.footer)]
    block = block.rstrip("\n")
    return f"\n{block}\n" if block else _NO_SKILLS


def _instruction(env_name: str, skills: bool) -> str:
    turn = (
        "\nNow it's your turn to respond for the current step.\n"
        if env_name == "search"
        else "\nNow it's your turn to take an action.\n"
    )
    if skills:
        turn += PUBLISHED_SKILL_INSTRUCTION + "\n" + _REASON_SKILL
    else:
        turn += _REASON
    return turn + (_SEARCH_ACT if env_name == "search" else _ACT)


def _history_lines(env_name: str, past: Sequence[PastTurn], current: str, h: int) -> str:
    """The published memory's ``fetch`` over the last ``h`` turns."""
    n = len(past)
    start = n - min(h, n)
    lines = []
    for i in range(start, n):
        if env_name == "search":  # SearchMemory: the action and the information it returned
            produced = past[i + 1].observation if i + 1 < n else current
            lines.append(f"Step {i + 1}:{past[i].action} {produced}\n")
        else:  # SimpleMemory: the observation the action was taken on, and the action
            lines.append(
                f"[Observation {i + 1}: '{past[i].observation}', Action {i + 1}: '{past[i].action}']"
            )
    return "\n".join(lines)


def _segments(
    env_name: str,
    *,
    task: str,
    observation: str,
    actions: str,
    skills: str | None,
    step_count: int | None,
    history_length: int = 0,
    history: str = "",
) -> list[PromptSegment]:
    """One prompt in the published layout; ``step_count`` None: the first-turn (_NO_HIS) form."""
    role = _ROLE[env_name]
    segs: list[tuple[SegmentKind, str]] = []
    if env_name == "search":
        segs.append(("task", f"\n{role}\nYour question: {task}\n"))
        if step_count is not None:
            segs.append(
                (
                    "history",
                    f"\nPrior to this step, you have already taken {step_count} step(s). Below is "
                    "the interaction history where <search> </search> wrapped your past search "
                    "queries and <information> </information> wrapped the corresponding search "
                    f"results returned by the external search engine. History:\n{history}\n",
                )
            )
    elif env_name == "scienceworld":
        segs.append(("task", f"\n{role}\nYour task is to: {task}\n"))
    elif step_count is None:  # ALFWorld's first turn: the task is in the observation
        segs.append(("task", f"\n{role}\n"))
    else:
        segs.append(("task", f"\n{role} Your task is to: {task}\n"))
    if env_name != "search":
        if step_count is None:
            segs.append(("observation", f"Your current observation is: {observation}\n"))
        else:
            segs.append(
                (
                    "history",
                    f"Prior to this step, you have already taken {step_count} step(s). Below are "
                    f"the most recent {history_length} observations and the corresponding actions "
                    f"you took: {history}\n",
                )
            )
            segs.append(
                (
                    "observation",
                    f"You are now at step {step_count + 1} and your current observation is: "
                    f"{observation}\n",
                )
            )
        if env_name == "alfworld":
            segs.append(
                (
                    "actions",
                    f"Your admissible actions of the current situation are:\n[\n{actions}\n].\n",
                )
            )
        else:
            segs.append(("actions", f"\nCurrent available actions:\n{actions}\n"))
    if skills is not None:
        segs.append(("skills", skills))
    segs.append(("instruction", _instruction(env_name, skills is not None)))
    return [PromptSegment(kind, text) for kind, text in segs]


def _text(segs: Sequence[PromptSegment]) -> str:
    return "".join(s.text for s in segs)


def build_published_prompt(
    config: TurnConfig,
    env_name: str,
    *,
    task: str,
    observation: str,
    bundle_text: str,
    admissible: Sequence[str] | None,
    past: Sequence[PastTurn] = (),
    action_hint: str | None = None,
) -> TurnPrompt:
    """The published prompt of turn ``len(past)`` (see the module docstring).

    ``observation`` is the bare current observation, ``past`` every earlier turn (their
    ``observation`` is the bare observation each action was taken on, ``action`` what ran).
    ALFWorld's task is read from the first observation as published ("Your task is to: ...",
    full stop included), ``task`` when it has none; ScienceWorld's task gets the engine's
    "Task Description:" heading (published: the wheel's ``taskDesc``) and its first
    observation is the room without the task the env appends to it (published: the wheel's
    reset text).
    """
    if env_name not in PUBLISHED_ENVS:
        raise ValueError(
            f"format: published has prompts for {', '.join(PUBLISHED_ENVS)}, not {env_name!r}"
        )
    first = past[0].observation if past else observation
    if env_name == "alfworld":
        at = first.find(_TASK_MARK)
        if at != -1:
            task = first[at + len(_TASK_MARK) :].strip()
        shown = [a for a in admissible or () if a != "help"]
        actions = "\n ".join(f"'{a}'" for a in shown)
    elif env_name == "scienceworld":
        actions = action_hint or ""
        observation = _without_task(observation, task)
        past = [
            PastTurn(_without_task(p.observation, task), p.action, p.user_text, p.reply)
            for p in past
        ]
        # published: the wheel's info["taskDesc"] (freeActionTaskDesc) carries this heading
        task = task if task.startswith(_SW_TASK_HEADING) else _SW_TASK_HEADING + task
    else:
        actions = ""
    skills = published_skills_section(bundle_text) if config.include_skills else None

    def first_form() -> list[PromptSegment]:
        return _segments(
            env_name, task=task, observation=observation, actions=actions, skills=skills,
            step_count=None,
        )  # fmt: skip

    h = config.history_turns
    step_count = len(past)
    if step_count == 0 or h <= 0:
        return TurnPrompt(system="", user_segments=first_form(), joiner="")
    history = _history_lines(env_name, past, observation, h)

    def form(
        hist: str, length: int, obs: str = observation, sk: str | None = skills
    ) -> list[PromptSegment]:
        return _segments(
            env_name, task=task, observation=obs, actions=actions, skills=sk,
            step_count=step_count, history_length=length, history=hist,
        )  # fmt: skip

    segs = form(history, min(h, step_count))
    budget = config.prompt_chars
    if budget is not None and len(_text(segs)) > budget:
        segs = _trim(env_name, budget, segs, history, observation, skills, form)
        if len(_text(segs)) > budget:
            logger.warning(
                "published prompt still %d chars (budget %d) after all trimming; "
                "falling back to the first-turn form",
                len(_text(segs)),
                budget,
            )
            segs = first_form()
    return TurnPrompt(system="", user_segments=segs, joiner="")


_Form = Callable[..., list[PromptSegment]]


def _trim(
    env_name: str,
    budget: int,
    segs: list[PromptSegment],
    history: str,
    observation: str,
    skills: str | None,
    form: _Form,
) -> list[PromptSegment]:
    """The published trimming before its last stage (the first-turn form, the caller's)."""
    lines = history.split("\n") if history else []
    while len(_text(segs)) > budget and len(lines) > 1:
        lines = lines[1:]
        segs = form("\n".join(lines), len(lines))
    if env_name == "search":
        dropped = "(history trimmed to fit prompt budget)"
        if len(_text(segs)) > budget:
            segs = form(dropped, 0)
        if len(_text(segs)) > budget and skills is not None:
            overflow = len(_text(segs)) - budget
            cut = ""
            if len(skills) > overflow + 50:
                cut = skills[: len(skills) - overflow - 30] + "\n(skills trimmed)\n"
            segs = form(dropped, 0, sk=cut)
        return segs
    if len(_text(segs)) > budget:
        overflow = len(_text(segs)) - budget
        truncated = observation[: len(observation) - overflow - 50] + "... (truncated)"
        segs = form("(trimmed)", 0, obs=truncated)
    return segs


def _without_task(observation: str, task: str) -> str:
    """A ScienceWorld first observation without the task line the env appends."""
    tail = f"\n\n{task}"
    return observation[: -len(tail)] if task and observation.endswith(tail) else observation
