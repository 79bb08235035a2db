"""The nine published check types, their parameter validation, the 15-assertion cap,
add/modify/delete, and grading over many trajectories."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from reskill_gym.creator import RuleAssertionSet, RuleCheck
from reskill_gym.episode import Episode, Turn


def traj(
    *actions: str, obs: list[str] | None = None, final: str = "", won: bool = False
) -> Episode:
    obs = obs or [f"o{i}" for i in range(len(actions))]
    return Episode(
        episode_id="e",
        env_id="x",
        task_id="t",
        task="t",
        won=won,
        final_observation=final,
        turns=[Turn(observation=o, action=a) for o, a in zip(obs, actions)],
    )


def check(ctype: str, **params) -> RuleCheck:
    return RuleCheck(check_type=ctype, params=params)


EP = traj("go to fridge 1", "open fridge 1", "take egg 1 from fridge 1", "look", "look")


@pytest.mark.parametrize(
    ("ctype", "params", "passed", "evidence"),
    [
        ("action_exists", {"pattern": r"^open "}, True, "Step 1: action matches '^open '"),
        ("action_exists", {"pattern": r"^heat "}, False, "No action matches '^heat '"),
        ("action_not_exists", {"pattern": r"^heat"}, True, "No action matches '^heat'"),
        (
            "action_not_exists",
            {"pattern": "LOOK"},
            False,
            "Step 3: action matches 'LOOK' (should not exist)",
        ),
        (
            "action_before",
            {"first": "^open", "second": "^take"},
            True,
            "'^open' at step 1 before '^take' at step 2",
        ),
        (
            "action_before",
            {"first": "^take", "second": "^open"},
            False,
            "'^take' at step 2 NOT before '^open' at step 1",
        ),
        (
            "action_before",
            {"first": "^heat", "second": "^take"},
            False,
            "Pattern '^heat' not found",
        ),
        (
            "action_before",
            {"first": "^open", "second": "^cool"},
            False,
            "Pattern '^cool' not found",
        ),
        ("no_consecutive_repeat", {}, False, "Steps 3 and 4: repeated 'look'"),
        ("no_consecutive_repeat", {"prefix": "go"}, True, "No consecutive repeated actions"),
        ("final_action", {"pattern": "^look$"}, True, "Final action matches '^look$'"),
        ("final_action", {"pattern": "^move"}, False, "Final action 'look' does not match '^move'"),
        ("min_steps", {"n": 5}, True, "5 steps >= 5"),
        ("min_steps", {"n": 6}, False, "5 steps < 6"),
        ("max_steps", {"n": 5}, True, "5 steps <= 5"),
        ("max_steps", {"n": "4"}, False, "5 steps > 4"),
        (
            "action_count",
            {"pattern": "^look", "max": 1},
            False,
            "2 actions match '^look' (outside [0, 1])",
        ),
        (
            "action_count",
            {"pattern": "^look", "min": 2, "max": 2},
            True,
            "2 actions match '^look' (range [2, 2])",
        ),
    ],
)
def test_check_types(ctype, params, passed, evidence) -> None:
    assert check(ctype, **params).evaluate(EP) == (passed, evidence)


def test_observation_contains_after_action_and_final_observation() -> None:
    ep = traj(
        "go to fridge 1",
        "open fridge 1",
        obs=["You see a fridge.", "The fridge 1 is closed."],
        final="You open the fridge 1. In it you see an egg 1.",
    )
    assert check("observation_contains", pattern="closed").evaluate(ep)[0]
    # 'closed' was seen only before 'open', so it does not count after it
    assert not check("observation_contains", pattern="closed", after_action="^open").evaluate(ep)[0]
    ok, ev = check("observation_contains", pattern="egg 1", after_action="^open").evaluate(ep)
    assert ok and ev == "Step 2: observation matches 'egg 1'"  # the last action's result
    assert check("observation_contains", pattern="fridge", after_action="^go").evaluate(ep) == (
        True,
        "Step 1: observation matches 'fridge'",
    )
    assert check("final_action", pattern="x").evaluate(traj()) == (False, "Empty trajectory")


@pytest.mark.parametrize(
    ("ctype", "params", "message"),
    [
        ("action_exists", {}, "action_exists needs params.pattern"),
        ("action_exists", {"pattern": r"(\w+\s?)*"}, "nested quantifier"),
        ("action_exists", {"pattern": r"(a)\1"}, "back-reference"),
        ("action_before", {"first": "x"}, "needs params.second"),
        ("min_steps", {"n": "many"}, "params.n must be an integer"),
        ("min_steps", {"n": -1}, "params.n must be >= 0"),
        ("max_steps", {"n": 3, "m": 4}, "not used by max_steps"),
        (
            "action_count",
            {"pattern": "x", "min": 3, "max": 1},
            r"params.min \(3\) > params.max \(1\)",
        ),
        ("no_consecutive_repeat", {"prefix": 3}, "params.prefix must be a string"),
        ("action_sometimes", {"pattern": "x"}, "check_type"),
    ],
)
def test_bad_params_are_refused_at_creation(ctype, params, message) -> None:
    with pytest.raises(ValidationError, match=message):
        RuleCheck(check_type=ctype, params=params)


def test_set_crud_cap_and_grading() -> None:
    s = RuleAssertionSet(max_assertions=3)
    add = {"op": "add", "check_type": "max_steps", "params": {"n": 3}, "description": "short"}
    ids = [s.apply(add, step=1).assertion_id for _ in range(3)]
    assert ids == ["A1", "A2", "A3"]
    full = s.apply(add, step=2)
    assert not full.ok and "already 3 assertions" in full.reason
    bad = s.apply({"op": "modify", "assertion_id": "A9"}, step=2)
    assert not bad.ok and "no assertion 'A9'" in bad.reason
    r = s.apply({"op": "modify", "assertion_id": "A2", "params": {"n": 10}}, step=2)
    assert r.ok and s.get("A2").check.params == {"n": 10} and s.get("A2").version == 2
    assert s.get("A2").description == "short"  # kept when not given
    r = s.apply({"op": "modify", "assertion_id": "A2", "check_type": "min_steps"}, step=2)
    assert not r.ok and "needs params.n" in r.reason  # a new type needs its own params
    assert s.apply({"op": "delete", "assertion_id": "A1"}, step=3).ok and "A1" not in s
    assert s.apply(add, step=3).assertion_id == "A4"  # ids are never reused
    assert not s.apply({"op": "rename"}, step=3).ok

    eps = [traj(*["look"] * k, won=k <= 3) for k in (1, 2, 3, 5, 8, 13)]
    grades = {g.id: g for g in s.grade(eps, step=5)}
    a2 = grades["A2"]  # max_steps 10
    assert (a2.n, a2.passed, a2.pass_rate) == (6, 5, 5 / 6)
    assert a2.pass_rate_success == 1.0 and a2.pass_rate_failure == pytest.approx(2 / 3)
    assert a2.failing_episode_ids == ["e"] and "13 steps > 10" in a2.evidence["e"]
    assert grades["A4"].age_steps == 2 and "pass_rate=0.50" in grades["A4"].line()
    copy = s.copy()
    copy.apply({"op": "delete", "assertion_id": "A2"}, step=6)
    assert "A2" in s and "A2" not in copy  # a pass works on a copy

    fresh = RuleAssertionSet()
    fresh.load_state_dict(s.state_dict())
    assert [a.id for a in fresh.all()] == ["A2", "A3", "A4"]
    assert fresh.apply(add, step=9).assertion_id == "A5"


def test_grading_is_linear_over_a_big_reservoir() -> None:
    s = RuleAssertionSet()
    for ctype, params in [
        ("action_exists", {"pattern": "^open"}),
        ("action_not_exists", {"pattern": "^heat"}),
        ("action_before", {"first": "^open", "second": "^take"}),
        ("no_consecutive_repeat", {}),
        ("final_action", {"pattern": "^move"}),
        ("min_steps", {"n": 3}),
        ("max_steps", {"n": 40}),
        ("action_count", {"pattern": "^go to", "min": 1, "max": 10}),
        ("observation_contains", {"pattern": "nothing happens", "after_action": "^open"}),
    ]:
        assert s.apply({"op": "add", "check_type": ctype, "params": params}, step=0).ok
    acts = [f"go to shelf {i}" if i % 3 else f"open drawer {i}" for i in range(50)]
    eps = [traj(*acts, won=i % 2 == 0) for i in range(200)]
    t0 = time.perf_counter()
    grades = s.grade(eps)
    took = time.perf_counter() - t0
    assert len(grades) == 9 and all(g.n == 200 for g in grades)
    assert took < 5.0, f"grading 9 assertions x 200 episodes x 50 turns took {took:.2f}s"


# ----- assertion_text: published (the published engine's text: whole replies, prompts) -----
def _published_reference(check_type: str, params: dict, steps: list[dict]) -> bool:
    """The published ``assertion_engine.py`` checks over ``{action, observation}`` steps."""
    import re

    acts = [s["action"] for s in steps]

    def first(p: str) -> int:
        return next((i for i, a in enumerate(acts) if re.search(p, a)), len(acts))

    if check_type == "action_exists":
        return any(re.search(params["pattern"], a) for a in acts)
    if check_type == "action_not_exists":
        return not any(re.search(params["pattern"], a) for a in acts)
    if check_type == "action_before":
        i, j = first(params["first"]), first(params["second"])
        return i < len(acts) and j < len(acts) and i < j
    if check_type == "no_consecutive_repeat":
        return all(a != b for a, b in zip(acts, acts[1:]))
    if check_type == "final_action":
        return bool(acts) and bool(re.search(params["pattern"], acts[-1]))
    if check_type == "action_count":
        n = sum(1 for a in acts if re.search(params["pattern"], a))
        return params.get("min", 0) <= n <= params.get("max", 999)
    assert check_type == "observation_contains"
    after = params.get("after_action")
    look = not after
    for s in steps:
        if after and re.search(after, s["action"]):
            look = True
            continue
        if look and re.search(params["pattern"], s["observation"]):
            return True
    return False


def test_published_text_grades_replies_and_prompts_as_the_published_engine() -> None:
    replies = [
        "I apply open-first. <action>open fridge 1</action>",
        "<action>take egg 1 from fridge 1</action>",
        "No skill applies; I look around. <action>look</action>",
        "<action>look</action>",
    ]
    prompts = [
        "Your current observation is: The fridge 1 is closed.",
        "You are now at step 2 and your current observation is: You open the fridge 1.",
        "You are now at step 3 and your current observation is: You pick up the egg 1.",
        "You are now at step 4 and your current observation is: Nothing happens.",
    ]
    ep = Episode(
        episode_id="e", env_id="x", task_id="t", task="t",
        turns=[Turn(observation=f"bare {i}", action=r.split("<action>")[1].split("<")[0],
                    reply=r, prompt=p) for i, (r, p) in enumerate(zip(replies, prompts))],
    )  # fmt: skip
    steps = [{"action": r, "observation": p} for r, p in zip(replies, prompts)]
    cases = [
        ("action_exists", {"pattern": "open-first"}),  # in the reasoning, not the command
        ("action_not_exists", {"pattern": "No skill applies"}),
        ("action_before", {"first": "apply", "second": "look around"}),
        ("no_consecutive_repeat", {}),
        ("final_action", {"pattern": "<action>look</action>$"}),
        ("action_count", {"pattern": "<action>", "min": 4, "max": 4}),
        ("observation_contains", {"pattern": "Nothing happens"}),
        ("observation_contains", {"pattern": "is closed", "after_action": "open fridge"}),
        ("observation_contains", {"pattern": "pick up", "after_action": "take egg"}),
    ]
    for ctype, params in cases:
        published = _published_reference(ctype, params, steps)
        ours, _ = check(ctype, **params).evaluate(ep, "published")
        assert ours == published, (ctype, params)
    # the project's text reads the commands and bare observations instead
    assert not check("action_exists", pattern="open-first").evaluate(ep)[0]
    assert check("action_exists", pattern="open-first").evaluate(ep, "published")[0]
    # without recorded prompts the published text falls back to the bare observations
    bare = ep.model_copy(
        update={"turns": [t.model_copy(update={"prompt": None}) for t in ep.turns]}
    )
    assert check("observation_contains", pattern="bare 2").evaluate(bare, "published")[0]
    s = RuleAssertionSet()
    s.apply({"op": "add", "check_type": "action_exists", "params": {"pattern": "open-first"},
             "description": "names the skill it applies"}, step=1)  # fmt: skip
    assert s.grade([ep], text="published")[0].passed == 1 and s.grade([ep])[0].passed == 0
