"""``rollout.format: published`` against the published system itself.

The reference below is the published prompt text (``reskill/environments/<env>/prompts.py``,
verbatim) and a small re-implementation of what its env managers do with it
(``base.py`` memories, ``skill_env_manager.py`` / ``env_manager.py`` ``build_text_obs`` and
trimming, ``skill_loader.py`` + ``format_skills_section``, ``projection.py``). The project's
builder and parsers must give the same characters for randomised episodes, skills on and off,
with and without history, and through every trimming stage.
"""

from __future__ import annotations

import random
import re

import pytest

from reskill_gym.rollout import PastTurn, TurnConfig, build_turn_prompt, parse_action
from reskill_gym.rollout.published import PUBLISHED_PROMPT_CHAR_RATIO
from reskill_gym.skills import Skill
from reskill_gym.skills.bundle import PUBLISHED_TEMPLATE, TurnContext, select_bundle

# ----- the published prompts (prompts.py, verbatim) ---------------------------------------
INSTR = (
    "Check the Available Skills section by reading each `when_to_use` field. "
    "If a skill matches your situation, state which skill you are applying "
    "and follow its `action` guidance; otherwise, proceed on your own."
)
ALF_GRPO_NO_HIS = """
You are an expert agent operating in the ALFRED Embodied Environment.
Your current observation is: {current_observation}
Your admissible actions of the current situation are:
[
{admissible_actions}
].

Now it's your turn to take an action.
First, briefly explain your reasoning in one sentence. Then, provide your chosen action enclosed in <action> </action> tags.
"""
ALF_GRPO = """
You are an expert agent operating in the ALFRED Embodied Environment. Your task is to: {task_description}
Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} observations and the corresponding actions you took: {action_history}
You are now at step {current_step} and your current observation is: {current_observation}
Your admissible actions of the current situation are:
[
{admissible_actions}
].

Now it's your turn to take an action.
First, briefly explain your reasoning in one sentence. Then, provide your chosen action enclosed in <action> </action> tags.
"""
ALF_NO_HIS = (
    """
You are an expert agent operating in the ALFRED Embodied Environment.
Your current observation is: {current_observation}
Your admissible actions of the current situation are:
[
{admissible_actions}
].
{triggered_skills_section}
Now it's your turn to take an action.
"""
    + INSTR
    + """
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, provide your chosen action enclosed in <action> </action> tags.
"""
)
ALF = (
    """
You are an expert agent operating in the ALFRED Embodied Environment. Your task is to: {task_description}
Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} observations and the corresponding actions you took: {action_history}
You are now at step {current_step} and your current observation is: {current_observation}
Your admissible actions of the current situation are:
[
{admissible_actions}
].
{triggered_skills_section}
Now it's your turn to take an action.
"""
    + INSTR
    + """
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, provide your chosen action enclosed in <action> </action> tags.
"""
)
SW_GRPO_NO_HIS = """
You are an expert agent operating in the ScienceWorld Environment, a simulated science laboratory where you perform experiments and solve science tasks.
Your task is to: {task_description}
Your current observation is: {current_observation}

Current available actions:
{admissible_actions}

Now it's your turn to take an action.
First, briefly explain your reasoning in one sentence. Then, provide your chosen action enclosed in <action> </action> tags.
"""
SW_GRPO = """
You are an expert agent operating in the ScienceWorld Environment, a simulated science laboratory where you perform experiments and solve science tasks.
Your task is to: {task_description}
Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} observations and the corresponding actions you took: {action_history}
You are now at step {current_step} and your current observation is: {current_observation}

Current available actions:
{admissible_actions}

Now it's your turn to take an action.
First, briefly explain your reasoning in one sentence. Then, provide your chosen action enclosed in <action> </action> tags.
"""
SW_NO_HIS = (
    """
You are an expert agent operating in the ScienceWorld Environment, a simulated science laboratory where you perform experiments and solve science tasks.
Your task is to: {task_description}
Your current observation is: {current_observation}

Current available actions:
{admissible_actions}
{triggered_skills_section}
Now it's your turn to take an action.
"""
    + INSTR
    + """
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, provide your chosen action enclosed in <action> </action> tags.
"""
)
SW = (
    """
You are an expert agent operating in the ScienceWorld Environment, a simulated science laboratory where you perform experiments and solve science tasks.
Your task is to: {task_description}
Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} observations and the corresponding actions you took: {action_history}
You are now at step {current_step} and your current observation is: {current_observation}

Current available actions:
{admissible_actions}
{triggered_skills_section}
Now it's your turn to take an action.
"""
    + INSTR
    + """
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, provide your chosen action enclosed in <action> </action> tags.
"""
)
_CHOOSE = """(1) If you lack needed knowledge, call a search engine using format: <search> your query </search>.
(2) If you have enough knowledge to answer confidently, provide your final answer within <answer> </answer> tags, without detailed illustrations. For example, <answer>Beijing</answer>.
"""
S_GRPO_NO_HIS = (
    """
You are an expert agent tasked with answering the given question step-by-step.
Your question: {task_description}

Now it's your turn to respond for the current step.
First, briefly explain your reasoning in one sentence. Then, choose only one of the following actions:
"""
    + _CHOOSE
)
S_GRPO = (
    """
You are an expert agent tasked with answering the given question step-by-step.
Your question: {task_description}

Prior to this step, you have already taken {step_count} step(s). Below is the interaction history where <search> </search> wrapped your past search queries and <information> </information> wrapped the corresponding search results returned by the external search engine. History:
{memory_context}

Now it's your turn to respond for the current step.
First, briefly explain your reasoning in one sentence. Then, choose only one of the following actions:
"""
    + _CHOOSE
)
S_NO_HIS = (
    """
You are an expert agent tasked with answering the given question step-by-step.
Your question: {task_description}
{triggered_skills_section}
Now it's your turn to respond for the current step.
"""
    + INSTR
    + """
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, choose only one of the following actions:
"""
    + _CHOOSE
)
S = (
    """
You are an expert agent tasked with answering the given question step-by-step.
Your question: {task_description}

Prior to this step, you have already taken {step_count} step(s). Below is the interaction history where <search> </search> wrapped your past search queries and <information> </information> wrapped the corresponding search results returned by the external search engine. History:
{memory_context}
{triggered_skills_section}
Now it's your turn to respond for the current step.
"""
    + INSTR
    + """
First, briefly explain your reasoning in one sentence (including which skill you applied, if any). Then, choose only one of the following actions:
"""
    + _CHOOSE
)
TEMPLATES = {  # env -> skills on? -> (no history, with history)
    "alfworld": {True: (ALF_NO_HIS, ALF), False: (ALF_GRPO_NO_HIS, ALF_GRPO)},
    "scienceworld": {True: (SW_NO_HIS, SW), False: (SW_GRPO_NO_HIS, SW_GRPO)},
    "search": {True: (S_NO_HIS, S), False: (S_GRPO_NO_HIS, S_GRPO)},
}


# ----- what the published env managers do with them -------------------------------------
def ref_section(skills: list[Skill]) -> str:
    """``SkillLoader._format_skills`` + ``format_skills_section``."""
    if not skills:
        return "\n## Available Skills\n\n(no skills available)\n"
    lines = []
    for s in skills:
        lines.append(f"### skill: {s.name}")
        lines.append(f'  when_to_use: "{s.when_to_use}"')
        lines.append(f'  action: "{s.content}"')
        if s.example_items:
            lines.append("  examples:")
            lines += [f'    - "{e.strip()}"' for e in s.example_items]
        lines.append("")
    return f"\n## Available Skills\n\n{chr(10).join(lines).strip()}\n"


def ref_prompt(
    env: str,
    *,
    skills_on: bool,
    section: str,
    task: str,
    observations: list[str],
    actions: list[str],
    hint: str,
    h: int,
    budget: int,
) -> str:
    """The published prompt of turn ``len(actions)``: ``observations[t]`` is the raw obs of
    turn t (``observations[-1]`` the current one), ``actions[t]`` the projected action."""
    no_his, with_his = TEMPLATES[env][skills_on]
    t = len(actions)
    cur = observations[t]
    kw = {"triggered_skills_section": section} if skills_on else {}
    if env == "alfworld":
        adm = hint
        first = {"current_observation": cur, "admissible_actions": adm}
    elif env == "scienceworld":
        adm = hint
        task = "Task Description:\n" + task  # the wheel's info["taskDesc"]
        first = {"task_description": task, "current_observation": cur, "admissible_actions": adm}
    else:
        first = {"task_description": task}
    if t == 0 or h <= 0:
        return no_his.format(**first, **kw)
    recent = list(range(max(0, t - h), t))
    if env == "search":
        mem = "\n".join(f"Step {j + 1}:{actions[j]} {observations[j + 1]}\n" for j in recent)

        def fmt(m: str, sk: str | None = None) -> str:
            extra = (
                {"triggered_skills_section": sk if sk is not None else section} if skills_on else {}
            )
            return with_his.format(task_description=task, memory_context=m, step_count=t, **extra)

        obs = fmt(mem)
        if len(obs) <= budget:
            return obs
        lines = mem.split("\n") if mem else []
        while len(obs) > budget and len(lines) > 1:
            lines = lines[1:]
            obs = fmt("\n".join(lines))
        if len(obs) > budget:
            obs = fmt("(history trimmed to fit prompt budget)")
        if len(obs) > budget and skills_on:
            overflow = len(obs) - budget
            cut = (
                section[: len(section) - overflow - 30] + "\n(skills trimmed)\n"
                if len(section) > overflow + 50
                else ""
            )
            obs = fmt("(history trimmed to fit prompt budget)", cut)
        if len(obs) > budget:
            obs = no_his.format(**first, **kw)
        return obs
    mem = "\n".join(
        f"[Observation {j + 1}: '{observations[j]}', Action {j + 1}: '{actions[j]}']"
        for j in recent
    )
    if env == "alfworld":
        task = observations[0][observations[0].find("Your task is to: ") + 17 :].strip()

    def fmt2(m: str, n: int, o: str) -> str:
        return with_his.format(
            task_description=task, step_count=t, history_length=n, action_history=m,
            current_step=t + 1, current_observation=o, admissible_actions=adm, **kw,
        )  # fmt: skip

    obs = fmt2(mem, len(recent), cur)
    if len(obs) <= budget:
        return obs
    lines = mem.split("\n") if mem else []
    while len(obs) > budget and len(lines) > 1:
        lines = lines[1:]
        obs = fmt2("\n".join(lines), len(lines), cur)
    if len(obs) > budget:
        overflow = len(obs) - budget
        obs = fmt2("(trimmed)", 0, cur[: len(cur) - overflow - 50] + "... (truncated)")
    if len(obs) > budget:
        obs = no_his.format(**first, **kw)
    return obs


def ref_projection(env: str, reply: str) -> tuple[str, bool]:
    """``alfworld_projection`` / ``scienceworld_projection`` (require_think False) and
    ``search_projection``."""
    if env == "search":
        cut = reply
        if "</search>" in cut:
            cut = cut.split("</search>", 1)[0] + "</search>"
        elif "</answer>" in cut:
            cut = cut.split("</answer>", 1)[0] + "</answer>"
        valid = True
        m = re.search(r"<search>(.*?)</search>", cut, re.I | re.S)
        if m:
            out = f"<search>{m.group(1).strip()}</search>"
        else:
            m = re.search(r"<answer>(.*?)</answer>", cut, re.I | re.S)
            out = f"<answer>{m.group(1).strip()}</answer>" if m else ""
            valid = bool(m)
        ns, na = len(re.findall("<search>", reply, re.I)), len(re.findall("<answer>", reply, re.I))
        if (ns and na) or ns > 1 or na > 1:
            valid = False
        return out, valid
    low = reply.lower()
    s, e = low.find("<action>"), low.find("</action>")
    if s == -1 or e == -1:
        return low[-30:], False
    return low[s + 8 : e].strip().lower(), not re.search(r"[\u4e00-\u9fff]", reply)


# ----- randomised episodes ----------------------------------------------------------------
_WORDS = "the a mug cabinet drawer 1 2 3 open closed you see nothing happens on in fridge".split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    for i in range(len(words)):
        if rng.random() < 0.05:
            words[i] += "\n"  # observations span lines (the published trimming splits on them)
    return " ".join(words)


SKILLS = [
    Skill(name="open-first", description="d", when_to_use="A receptacle is closed.",
          content="Open it, then take the object.", examples="- open drawer 1\n- open fridge 1",
          trigger={"type": "general"}),
    Skill(name="look-around", description="d", when_to_use="Nothing is here.",
          content="Go to the next receptacle.", trigger={"type": "general"}),
]  # fmt: skip


def _episode(env: str, rng: random.Random) -> tuple[str, list[str], list[str], list[str]]:
    task = "put a clean mug in coffeemachine." if env != "search" else "Who wrote Hamlet?"
    n = rng.randint(1, 12)
    observations = [_text(rng, 3, 60) for _ in range(n + 1)]
    if env == "alfworld":
        observations[0] = (
            f"-= Welcome to TextWorld, ALFRED! =-\n\n{observations[0]}\n\nYour task is to: {task}"
        )
    if env == "search":
        observations = [task] + [
            f"<information>{_text(rng, 5, 80)}</information>" for _ in range(n)
        ]
    actions = [
        rng.choice(["go to cabinet 1", "open drawer 2", "i am not sure what to do next.", ""])
        if env != "search"
        else rng.choice(["<search>hamlet author</search>", "", "<answer>shakespeare</answer>"])
        for _ in range(n)
    ]
    admissible = ["go to cabinet 1", "open drawer 2", "help", "look"]
    return task, observations, actions, admissible


@pytest.mark.parametrize("env", ["alfworld", "scienceworld", "search"])
@pytest.mark.parametrize("skills_on", [True, False])
def test_published_prompts_equal_the_published_managers(env: str, skills_on: bool) -> None:
    rng = random.Random(f"{env}-{skills_on}")
    stages = set()
    for case in range(120):
        task, observations, actions, admissible = _episode(env, rng)
        chosen = rng.choice([[], SKILLS[:1], SKILLS])
        bundle = select_bundle(
            chosen, TurnContext(0, None, "", task), budget_chars=None, template=PUBLISHED_TEMPLATE
        )
        h = rng.choice([0, 1, 2, 50])
        budget = rng.choice([400, 900, 1500, 3000, 100_000])
        hint = (
            "\n ".join(f"'{a}'" for a in admissible if a != "help")
            if env == "alfworld"
            else "Valid_actions: ['open OBJ', 'look around'], OBJ needs to be replaced with one of "
            "the following objects: ['door', 'sink']\n example: focus on door"
        )
        cfg = TurnConfig(format="published", history_turns=h, prompt_chars=budget,
                         include_skills=skills_on).resolve(env)  # fmt: skip
        for t in range(len(actions) + 1):
            ours_obs = list(observations)
            if env == "scienceworld":  # our env appends the task to the first observation
                ours_obs[0] = f"{observations[0]}\n\n{task}"
            past = [PastTurn(ours_obs[j], actions[j], "", "") for j in range(t)]
            prompt = build_turn_prompt(
                cfg, task=task, observation=ours_obs[t], bundle_text=bundle.text,
                admissible=admissible, past=past, env_name=env,
                action_hint=hint if env == "scienceworld" else None,
            )  # fmt: skip
            expected = ref_prompt(
                env, skills_on=skills_on, section=ref_section(list(bundle.skills)), task=task,
                observations=observations[: t + 1], actions=actions[:t], hint=hint, h=h,
                budget=budget,
            )  # fmt: skip
            assert prompt.user_text() == expected, (case, t)
            assert prompt.messages() == [{"role": "user", "content": expected}]
            text = prompt.user_text()
            stages.add(
                "first-form" if t and "Prior to this step" not in text
                else "trimmed" if "(trimmed)" in text or "(history trimmed" in text
                else "history" if t else "first"
            )  # fmt: skip
    assert {"first", "history", "trimmed", "first-form"} <= stages or env == "search"


def test_published_prompt_segments_cover_the_text() -> None:
    cfg = TurnConfig(format="published", history_turns=3).resolve("alfworld")
    past = [PastTurn("You are in a room.\n\nYour task is to: find a pen.", "look", "", "")]
    p = build_turn_prompt(cfg, task="find a pen", observation="You see a pen 1.", bundle_text="",
                          admissible=["take pen 1"], past=past, env_name="alfworld")  # fmt: skip
    kinds = [s.kind for s in p.user_segments]
    assert kinds == ["task", "history", "observation", "actions", "skills", "instruction"]
    assert "".join(s.text for s in p.user_segments) == p.user_text()
    start, end = next((a, b) for k, a, b in p.spans() if k == "skills")
    assert p.user_text()[start:end] == "\n## Available Skills\n\n(no skills available)\n"


REPLIES = [
    "I will open the drawer. <action>Open Drawer 2</action>",
    "<think>hm</think><action>go to cabinet 1</action> and more text",
    "no tags at all, just rambling about the mug and the cabinet",
    "<action>go to cabinet 1",
    "</action>backwards<action>",
    "<action></action>",
    "use 抽屉 <action>open drawer 2</action>",
    "short",
    "",
    "<search> who wrote hamlet </search>",
    "<answer>Shakespeare</answer>",
    "<search>a</search><search>b</search>",
    "<search>a</search> then <answer>b</answer>",
    "<answer>x</answer></search>",
    "<SEARCH>upper</SEARCH>",
]


@pytest.mark.parametrize("env", ["alfworld", "scienceworld", "search"])
def test_published_projections_equal_the_published_ones(env: str) -> None:
    for reply in REPLIES:
        out = parse_action(reply, None, action_format="published", env_name=env)
        assert (out.action, out.valid) == ref_projection(env, reply), reply


def test_published_format_config_rules() -> None:
    assert PUBLISHED_PROMPT_CHAR_RATIO == {"alfworld": 2.5, "scienceworld": 1.8, "search": 2.5}
    with pytest.raises(ValueError, match="per_turn"):
        TurnConfig(format="published", layout="concat")
    with pytest.raises(ValueError, match="per_turn"):
        TurnConfig(format="published", action_mode="score")
    with pytest.raises(ValueError, match="set action_format: null"):
        TurnConfig(format="published", action_format="tagged")
    with pytest.raises(ValueError, match="not 'textworld'"):
        TurnConfig(format="published").resolve("textworld")
    resolved = TurnConfig(format="published").resolve("alfworld")
    assert resolved.system_prompt == "" and resolved.action_format == "published"
    assert resolved.resolve("alfworld") == resolved


def test_published_session_steps_invalid_replies_and_records_prompts() -> None:
    from reskill_gym.envs.base import EngineStep, TextEnv
    from reskill_gym.rollout import RolloutSession

    class Door(TextEnv):
        env_name = "alfworld"  # the published ALFWorld prompt

        def task_ids(self, split=None):
            return ["t0"]

        def _engine_reset(self, task_id, seed, options):
            obs = "You are in a hall.\n\nYour task is to: open the door."
            return obs, {"task": "open the door", "task_type": "door",
                         "admissible_actions": ["open door", "look"]}  # fmt: skip

        def _engine_step(self, action):
            self.sent = [*getattr(self, "sent", []), action]
            won = action == "open door"
            return EngineStep("It opens." if won else "Nothing happens.", float(won), won, won,
                              admissible_actions=["open door", "look"])  # fmt: skip

    env = Door(max_turns=5)
    cfg = TurnConfig(format="published", history_turns=3, record_prompts=True)
    s = RolloutSession(env, cfg, episode_id="e")
    s.reset(task_id="t0", seed=0)
    first = s.prompt().user_text()
    t0 = s.act("I think I should open it somehow")  # no tag: still runs, as published
    assert (t0.valid, t0.ran, t0.parse, t0.prompt) == (False, True, "projected", first)
    assert env.sent == ["i think i should open it somehow"[-30:]]
    assert f"Action 1: '{env.sent[0]}']" in s.prompt().user_text()
    s.act("Opening. <action>Open door</action>")
    ep = s.episode()
    assert ep.won and ep.actions == [env.sent[0], "open door"] and ep.invalid_turns == 1
    project = RolloutSession(Door(max_turns=5), TurnConfig(), episode_id="p")
    project.reset(task_id="t0", seed=0)
    t = project.act("I think I should open it somehow")
    assert (t.valid, t.ran, t.prompt) == (False, False, None)
