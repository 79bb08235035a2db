"""The turn contract: prompts in both layouts, the one parser, the choice rule, sessions
through real environments (invalid turns, turn caps, records), the env pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import reskill_gym  # noqa: F401  (registers the ids)
from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv
from reskill_gym.rollout import (
    EnvPool,
    RolloutSession,
    TurnConfig,
    choose_action,
    episode_metrics,
    parse_action,
    penalize_invalid,
)
from reskill_gym.skills import Skill, Trigger, write_skill

# ----- parse --------------------------------------------------------------------------------
ADM = ["go to cabinet 1", "go to cabinet 10", "open drawer 2", "look", "take mug 1 from desk 1"]


@pytest.mark.parametrize(
    ("reply", "action", "how", "valid"),
    [
        ("<action>look</action>", "look", "tagged", True),
        (
            "<think>go to cabinet 1 first?</think>\n<action> Go To Cabinet 10. </action>",
            "go to cabinet 10",
            "tagged",
            True,
        ),
        (
            "<think><action>look</action></think><action>open drawer 2</action>",
            "open drawer 2",
            "tagged",
            True,
        ),
        (
            "<action>look</action> then <action>open drawer 2</action>",
            "open drawer 2",
            "tagged",
            True,
        ),
        ("<action>fly away</action>", "fly away", "tagged", True),  # the env judges commands
        ("go to cabinet 1", "", "empty", False),
        ("<action>look", "", "empty", False),
        ("<action>  </action>", "", "empty", False),
        ("<think>never ends <action>look</action>", "", "empty", False),
        ("", "", "empty", False),
    ],
)
def test_tagged_format(reply: str, action: str, how: str, valid: bool) -> None:
    out = parse_action(reply, ADM, action_format="tagged")
    assert (out.action, out.how, out.valid) == (action, how, valid)
    assert bool(out.why) == (not valid)


@pytest.mark.parametrize(
    ("reply", "action", "how"),
    [
        ("go to cabinet 1", "go to cabinet 1", "exact"),
        ("Go to cabinet 10.", "go to cabinet 10", "exact"),
        ("```\nlook\n```", "look", "exact"),
        ("Thought: find it.\nAction: open drawer 2", "open drawer 2", "exact"),
        ("I go to cabinet 10 now", "go to cabinet 10", "contained"),
        ("not cabinet 1, I will go to cabinet 1 then look", "go to cabinet 1", "contained"),
        ("dance wildly\nmore", "dance wildly", "raw"),
        ("<think>hmm</think><action>look</action>", "look", "exact"),
        ("   ", "", "empty"),
    ],
)
def test_lenient_format(reply: str, action: str, how: str) -> None:
    out = parse_action(reply, ADM, action_format="lenient")
    assert (out.action, out.how) == (action, how)


def test_passthrough_and_bad_format() -> None:
    assert parse_action(" <search> q </search>", None, action_format="passthrough").action == (
        " <search> q </search>"
    )
    assert not parse_action("  ", None, action_format="passthrough").valid
    with pytest.raises(ValueError, match="action_format"):
        parse_action("x", None, action_format="json")


def test_one_parser_in_the_tree() -> None:
    root = Path(__file__).resolve().parents[2]
    hits = [
        p
        for d in ("reskill_gym", "adapters")
        for p in (root / d).rglob("*.py")
        if "def parse_action" in p.read_text(encoding="utf-8")
    ]
    assert [p.relative_to(root).as_posix() for p in hits] == ["reskill_gym/rollout/parse.py"]


# ----- choice rule --------------------------------------------------------------------------
def test_choice_rule_norms_temperature_and_replay() -> None:
    lps = [[-3.0], [-0.5, -0.5, -0.5, -0.5]]  # sum -3 vs -2 ; mean -3 vs -0.5
    by_sum = choose_action(["a", "b"], lps, norm="sum", temperature=1.0, u=0.0)
    assert by_sum.scores == [-3.0, -2.0] and by_sum.probs[1] > by_sum.probs[0]
    greedy = choose_action(["a", "b"], [[-1.0], [-1.0, -1.0]], norm="sum", temperature=0.0, u=0.99)
    assert greedy.action == "a" and greedy.probs == [1.0, 0.0]
    # inverse CDF: the same u picks the same command; u spans the distribution
    rng = np.random.default_rng(0)
    picks = [
        choose_action(["a", "b"], lps, norm="mean", temperature=1.0, u=float(rng.random())).index
        for _ in range(2000)
    ]
    p_b = choose_action(["a", "b"], lps, norm="mean", temperature=1.0, u=0.5).probs[1]
    assert abs(np.mean(picks) - p_b) < 0.03
    with pytest.raises(ValueError):
        choose_action(["a"], [[]], norm="mean", temperature=1.0, u=0.1)
    with pytest.raises(ValueError):
        choose_action(["a"], [[-1.0]], norm="max", temperature=1.0, u=0.1)


# ----- prompts ------------------------------------------------------------------------------
class Door(TextEnv):
    """Three rooms to the door; 'open door' wins from the last one."""

    env_name = "alfworld"  # borrows ALFWorld's prompt defaults

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["t0"]

    def _engine_reset(self, task_id: str, seed: int | None, options: dict[str, Any]) -> Any:
        self.room = 0
        return "Room 0.", {
            "task": "open the door",
            "task_type": "door",
            "admissible_actions": self._adm(),
        }

    def _adm(self) -> list[str]:
        return ["go forward", "open door", "look"]

    def _engine_step(self, action: str) -> EngineStep:
        if action == "go forward":
            self.room += 1
            return EngineStep(
                f"Room {self.room}.", 0.0, False, False, admissible_actions=self._adm()
            )
        if action == "open door" and self.room >= 2:
            return EngineStep("The door opens.", 1.0, True, True, admissible_actions=self._adm())
        return EngineStep(
            "Nothing happens.",
            0.0,
            False,
            False,
            admissible_actions=self._adm(),
            invalid_action=action not in self._adm(),
        )


def _play(cfg: TurnConfig, replies: list[str], **kw: Any) -> RolloutSession:
    s = RolloutSession(Door(max_turns=kw.pop("max_turns", 10)), cfg, episode_id="e", **kw)
    s.reset(task_id="t0", seed=0)
    for r in replies:
        if s.done:
            break
        s.act(r)
    return s


def test_per_turn_layout_history_window() -> None:
    cfg = TurnConfig(history_turns=2)
    s = _play(cfg, ["<action>go forward</action>"] * 3)
    p = s.prompt()
    assert [m["role"] for m in p.messages()] == ["system", "user"]
    assert [seg.kind for seg in p.user_segments] == ["task", "history", "observation", "actions"]
    text = p.user_text()
    assert "Your last 2 of 3 earlier turns:" in text and "[Turn 1]" not in text
    assert (
        "[Turn 3] Observation: Room 2." in text and "Current observation (turn 4):\nRoom 3." in text
    )
    assert "<action>" in p.system  # the tagged format is in the system message
    for kind, a, b in p.spans():
        assert text[a:b] == next(x.text for x in p.user_segments if x.kind == kind)


def test_concat_layout_grows_verbatim() -> None:
    cfg = TurnConfig(layout="concat")
    s = _play(cfg, [])
    first = s.messages()
    s.act("<action>go forward</action>")
    second = s.messages()
    assert second[: len(first)] == first  # earlier messages are repeated exactly
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "<action>go forward</action>"
    assert "Task:" in second[1]["content"] and "Task:" not in second[3]["content"]


def test_invalid_turns_do_not_step_and_count_against_the_cap() -> None:
    s = _play(
        TurnConfig(), ["go forward", "<action>go forward</action>", "<action>go"], max_turns=3
    )
    ep = s.episode()
    assert ep.stop_reason == "turn_cap" and not ep.won
    assert [t.valid for t in ep.turns] == [False, True, False]
    assert [t.action for t in ep.turns] == ["", "go forward", ""]
    assert ep.actions == ["go forward"] and ep.valid_action_ratio == pytest.approx(1 / 3)
    assert s.env.unwrapped.room == 1  # only the valid turn moved
    adv = [penalize_invalid(0.0, not t.valid, 0.1) for t in ep.turns]
    assert adv == [-0.1, 0.0, -0.1]
    m = episode_metrics([ep])
    assert m["episode/valid_action_ratio"] == pytest.approx(1 / 3)
    assert m["episode/parse/empty"] == pytest.approx(2 / 3)


def test_feedback_names_the_problem() -> None:
    s = _play(TurnConfig(), ["<action>go forward"])
    obs = next(x.text for x in s.prompt().user_segments if x.kind == "observation")
    assert "not closed" in obs and obs.rstrip().endswith("Room 0.")


def test_lenient_and_score_choices_and_win() -> None:
    s = _play(TurnConfig(action_format="lenient"), ["go forward", "I go forward.", "open door"])
    ep = s.episode()
    assert (
        ep.won
        and ep.stop_reason == "done"
        and [t.parse for t in ep.turns]
        == [
            "exact",
            "contained",
            "exact",
        ]
    )
    cfg = TurnConfig(action_mode="score", record_scores=True)
    s = RolloutSession(Door(max_turns=5), cfg, episode_id="e")
    s.reset(task_id="t0")
    assert "actions" not in [x.kind for x in s.prompt().user_segments]  # score mode: no list
    c = choose_action(s.admissible, [[-1.0], [-5.0], [-5.0]], norm="sum", temperature=0.0, u=0.3)
    t = s.act_choice(c)
    assert (t.parse, t.choice_prob, t.candidates, t.scores) == (
        "score",
        1.0,
        ["go forward", "open door", "look"],
        [-1.0, -5.0, -5.0],
    )


def test_engine_rejections_are_recorded_not_invalid() -> None:
    s = _play(TurnConfig(), ["<action>dance</action>"])
    t = s.episode().turns[0] if s.done else s.recorder.episode.turns[0]
    assert t.valid and t.invalid_action and t.action == "dance"


def _words(messages: list[dict[str, str]]) -> list[str]:
    """A tokenizer stand-in: one token per whitespace-separated word."""
    return " ".join(m["content"] for m in messages).split()


@pytest.mark.parametrize(("history_turns", "played"), [(4, 6), (4, 2), (0, 3)])
def test_fit_prompt_keeps_the_largest_history_window_that_fits(
    history_turns: int, played: int
) -> None:
    s = _play(TurnConfig(history_turns=history_turns), ["<action>go forward</action>"] * played)
    window = min(history_turns, played)
    configured = s.prompt().user_text()
    sizes = [len(_words(s.prompt(history_turns=h).messages())) for h in range(window + 1)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert s.fit_prompt(_words, sizes[-1] + 50) == _words(s.messages()), "fits as it is"
    for limit in range(sizes[0] - 1, sizes[-1] + 1):  # every budget: shrinks, or never fits
        fitting = [h for h in range(window + 1) if sizes[h] <= limit]
        want = _words(s.prompt(history_turns=max(fitting)).messages()) if fitting else None
        assert s.fit_prompt(_words, limit) == want, limit
    assert s.prompt().user_text() == configured, "the turn keeps its configured prompt"


def test_fit_prompt_concat_stream_fits_or_stops() -> None:
    s = _play(TurnConfig(layout="concat"), ["<action>go forward</action>"] * 2)
    n = len(_words(s.messages()))
    assert s.fit_prompt(_words, n) == _words(s.messages())
    assert s.fit_prompt(_words, n - 1) is None  # nothing to drop: the episode must stop


class Footer(gym.ObservationWrapper[str, str, str]):
    """A wrapper outside ``SkillWrapper`` that decorates the observation it returns."""

    def observation(self, observation: str) -> str:
        return observation + "\n[footer]"


class OwnInfo(Door):
    """An env without ``SkillWrapper`` whose info carries an ``observation`` of its own."""

    def _engine_reset(self, task_id: str, seed: int | None, options: dict[str, Any]) -> Any:
        obs, info = super()._engine_reset(task_id, seed, options)
        return obs, {**info, "observation": {"rgb": None}}


def test_session_reads_the_bare_observation_from_info() -> None:
    """The prompt shows ``info["observation"]`` and the bundle from ``info``: what the
    returned observation looks like (a wrapper on top may change it) does not matter."""
    from reskill_gym.skills import LibraryView
    from reskill_gym.wrapper import SkillWrapper

    skill = Skill(
        name="go-on", description="d", content="Keep going.", trigger=Trigger(type="beginning")
    )
    env = Footer(SkillWrapper(Door(max_turns=5), LibraryView("v1", [skill])))
    s = RolloutSession(env, TurnConfig(), episode_id="e")
    s.reset(task_id="t0", seed=0)
    segs = {x.kind: x.text for x in s.prompt().user_segments}
    assert segs["observation"].endswith("\nRoom 0.") and "Keep going." in segs["skills"]
    assert (
        s.prompt().user_text().count("Keep going.") == 1
        and "[footer]" not in s.prompt().user_text()
    )
    s.act("<action>go forward</action>")
    assert s.recorder.episode.turns[0].observation == "Room 0."
    assert s.recorder.episode.turns[0].skill_ids == ["go-on@1"]
    # no SkillWrapper: the returned observation is the bare one, whatever info carries
    s = RolloutSession(OwnInfo(max_turns=5), TurnConfig(), episode_id="e")
    s.reset(task_id="t0", seed=0)
    assert next(x.text for x in s.prompt().user_segments if x.kind == "observation").endswith(
        "\nRoom 0."
    )


# ----- through the real Search env, with a skill library ------------------------------------
@pytest.fixture(scope="module")
def search_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("lib")
    write_skill(
        Skill(
            name="search-first",
            description="d",
            content="Search before answering.",
            trigger=Trigger(type="beginning"),
        ),
        root,
    )
    env = gym.make(
        "ReSkill-Search-v0",
        skills=str(root),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
    )
    yield env
    env.close()


def test_search_passthrough_session(search_env: Any) -> None:
    s = RolloutSession(search_env, TurnConfig(), episode_id="s1", group_id="g", arm="head")
    s.reset(seed=0)
    p = s.prompt()
    assert [x.kind for x in p.user_segments] == ["task", "observation", "skills"]
    assert "Search before answering." not in next(
        x.text for x in p.user_segments if x.kind == "observation"
    )
    s.act("I do not know")  # no tag: the env's own feedback; counted invalid (passthrough)
    s.act("<answer> nobody </answer>")
    ep = s.episode()
    assert ep.env_id == "ReSkill-Search-v0" and ep.library_version
    assert ep.turns[0].skill_ids == ["search-first@1"] and not ep.turns[0].valid
    assert ep.turns[0].invalid_action and ep.turns[1].valid and ep.stop_reason == "done"
    assert "Search before answering." not in ep.turns[0].observation  # records are bare


# ----- pool ---------------------------------------------------------------------------------
class Flaky(Door):
    def _engine_step(self, action: str) -> EngineStep:
        if action == "crash":
            raise EngineCrashedError("worker died")
        return super()._engine_step(action)


def test_pool_reuses_and_discards_broken_envs() -> None:
    from reskill_gym.wrapper import SkillWrapper

    pool = EnvPool(lambda key: SkillWrapper(Flaky(max_turns=3)), max_idle=1)
    a = pool.lease("k", skills=None)
    a.reset(seed=0)
    a.close()
    b = pool.lease("k", skills=None)
    assert b.env is a.env and pool.built == 1
    b.reset(seed=0)
    with pytest.raises(EngineCrashedError):
        b.step("crash")
    b.close()
    c = pool.lease("k")
    assert c.env is not a.env and pool.built == 2 and pool.discarded == 1
    d = pool.lease("other")
    d.close()
    c.close()
    assert pool.idle("k") == 1 and pool.idle("other") == 1
    with pytest.raises(TypeError, match="SkillWrapper"):
        EnvPool(lambda key: Door()).lease(skills=None)
    pool.close()
