"""Shared fixtures: real Search trajectories from a mistake-making scripted agent, and
scripted LLMs (responders for the loopback server) that play the creator roles of the
project pipeline (``creator_llm``) and of the published one (``published_llm``)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reskill_gym.creator import Reservoir
from reskill_gym.episode import Episode
from reskill_gym.rollout import record_episodes
from reskill_gym.skills import LibraryView
from reskill_gym.testing.agents import SearchMistakeAgent
from reskill_gym.testing.loopback import LoopbackError, LoopbackReply, LoopbackRequest

REPO = Path(__file__).resolve().parents[2]
SEED_SEARCH = REPO / "skills" / "search"
SEED_ALFWORLD = REPO / "skills" / "alfworld"


@pytest.fixture(scope="session")
def search_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("search-cache")


@pytest.fixture(scope="session")
def search_episodes(search_cache: Path) -> list[Episode]:
    """120 real Search-env episodes (30 tasks x 4 rollouts), seed library injected."""
    from reskill_gym.envs.search import SearchEnv
    from reskill_gym.wrapper import SkillWrapper

    base = SearchEnv(split="train", cache_dir=search_cache)
    env = SkillWrapper(base, LibraryView.from_folder(SEED_SEARCH))
    ids = base.task_ids()[::60][:30]
    return record_episodes(env, SearchMistakeAgent(), ids, group_size=4, env_id="ReSkill-Search-v0")


@pytest.fixture()
def search_reservoir(search_episodes: list[Episode]) -> Reservoir:
    r = Reservoir(200)
    r.add(search_episodes)
    return r


@pytest.fixture()
def search_view() -> LibraryView:
    return LibraryView.from_folder(SEED_SEARCH)


def role_of(req: LoopbackRequest) -> str:
    system = req.system
    if "episode analyst" in system:
        return "analyst"
    if "diagnostician" in system:
        return "diagnostician"
    if "recommend at most" in system:
        return "recommender"
    if "You write one skill" in system:
        return "author"
    return "unknown"


GOOD_SKILL = {
    "name": "use-action-tags",
    "description": "Reply with a tagged action, never bare text.",
    "when_to_use": "The engine said the previous action is invalid.",
    "content": "Your reply had no action tag. Write <search> names from the question </search> "
    "or <answer> short answer </answer>; nothing outside the tags counts.",
    "trigger_type": "observation_pattern",
    "trigger_pattern": r"previous action is invalid",
    "examples": "",
}

Reply = str | LoopbackReply | LoopbackError


class ScriptedCreatorLLM:
    """Responder answering each creator role from the request it sees.

    ``author`` is a list of replies used in order for author calls (default: GOOD_SKILL);
    ``overrides[role]`` replaces a role's answer by a list consumed in order (then normal).
    """

    def __init__(
        self,
        author: list[Reply] | None = None,
        overrides: dict[str, list[Reply]] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.author = list(author or [])
        self.overrides = {k: list(v) for k, v in (overrides or {}).items()}
        self.delay_s = delay_s
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.failed_ids: list[str] = []

    def __call__(self, req: LoopbackRequest) -> Reply:
        role = role_of(req)
        with self.lock:
            self.calls[role] = self.calls.get(role, 0) + 1
            queued = self.overrides.get(role)
            if queued:
                return queued.pop(0)
            if role == "author" and self.author:
                return self.author.pop(0)
        handler: Callable[[LoopbackRequest], str] = getattr(self, f"_{role}")
        text = handler(req)
        return LoopbackReply(text, delay_s=self.delay_s) if self.delay_s else text

    def _analyst(self, req: LoopbackRequest) -> str:
        user = req.last_user_text
        eid = re.search(r"^Episode (\S+) \(", user, re.M).group(1)
        failed = "outcome: failure" in user
        mistakes = ["replied without an action tag"] if "REJECTED" in user else []
        if failed and not mistakes:
            mistakes = ["answered without finding the answer"]
        return json.dumps(
            {
                "episode_id": eid,
                "outcome": "failure" if failed else "success",
                "summary": "The agent failed." if failed else "The agent searched and answered.",
                "mistakes": mistakes,
                "good_moves": [] if failed else ["searched with the names"],
                "helpful_skills": [],
                "misleading_skills": [],
            }
        )

    def _diagnostician(self, req: LoopbackRequest) -> str:
        user = req.last_user_text
        rejected = re.findall(r"^- (\S+) \(\w+[^\n]*\n  mistakes: replied without", user, re.M)
        ok = [i for i in re.findall(r"^- (\S+) \(", user, re.M) if i not in rejected]
        self.failed_ids = rejected
        return json.dumps(
            {
                "changes": [
                    {
                        "op": "create",
                        "text": "The agent always replies with a <search> or <answer> tag.",
                        "passed": len(ok),
                        "failed": len(rejected),
                        "example_episode_ids": rejected[:5] + ["made-up-id"],
                    }
                ]
            }
        )

    def _recommender(self, req: LoopbackRequest) -> str:
        return json.dumps(
            {
                "recommendations": [
                    {
                        "op": "add",
                        "skill_name": "use-action-tags",
                        "assertion_ids": ["A1"],
                        "reason": "untagged replies are rejected and waste turns",
                        "target_episode_ids": self.failed_ids[:5],
                    }
                ]
            }
        )

    def _author(self, req: LoopbackRequest) -> str:
        return json.dumps(GOOD_SKILL)

    def _unknown(self, req: LoopbackRequest) -> str:
        return "{}"


PUBLISHED_GOOD = {
    "name": "read-before-answering",
    "content": {
        "when_to_use": "Apply right after a search returned passages.",
        "action": "Copy the answer span from the passages into <answer> </answer>; search "
        "again with the entity names if the passages do not contain it.",
        "examples": ["DO: <answer> Granshiand </answer>\nDON'T: <answer> unknown </answer>"],
    },
    "trigger_type": "action_pattern",
    "trigger_pattern": "<search>",
}


def first_user(req: LoopbackRequest) -> str:
    """The stage's own prompt (a schema re-ask appends a repair message after it)."""
    return next(m["content"] for m in req.messages if m["role"] == "user")


def published_role(req: LoopbackRequest) -> str:
    s = req.system
    for key, name in (
        ("You compare episodes of ONE task", "analyst"),
        ("You diagnose the failures", "diagnoser"),
        ("You plan revisions of a skill library", "recommender"),
        ("You write skills for a reinforcement-learning agent", "author"),
    ):
        if key in s:
            return name
    return "unknown"


class PublishedLLM:
    """Answers each published-pipeline role from what its request contains (thread-safe).

    ``author``: replies for the author calls in order (the last one repeats); ``fail[role]``:
    a fixed reply (text or ``LoopbackError``) for that role. One task group's analysis is
    always unusable, to exercise the heuristic fallback.
    """

    GOOD = PUBLISHED_GOOD
    role = staticmethod(published_role)
    first_user = staticmethod(first_user)

    def __init__(self, *, author: list[str] | None = None, fail: dict[str, object] | None = None):
        self.author = list(
            author or [json.dumps({"operations": [{"type": "add", "skill": PUBLISHED_GOOD}]})]
        )
        self.fail = dict(fail or {})
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.replies: dict[str, list[str]] = {}
        self.bad_task: str | None = None

    def __call__(self, req: LoopbackRequest):
        r = published_role(req)
        with self.lock:
            self.calls[r] = self.calls.get(r, 0) + 1
        if r in self.fail:
            return self.fail[r]
        text = getattr(self, f"_{r}")(req)
        with self.lock:
            self.replies.setdefault(r, []).append(text)
        return text

    def _analyst(self, req: LoopbackRequest) -> str:
        user = first_user(req)
        task = re.search(r"^TASK: (.*)$", user, re.M).group(1)
        with self.lock:
            if self.bad_task is None:
                self.bad_task = task
        if task == self.bad_task:  # this group never gets a usable answer: heuristic fallback
            return "I think the agent should search more."
        actions = re.findall(r"ACTION: (.*?)(?:  \[skills|$)", user, re.M)
        untagged = any(not a.startswith("<") for a in actions)
        failed = "FAIL," in user
        mode = "untagged_reply" if untagged else ("weak_search" if failed else "none")
        return json.dumps(
            {
                "task_type": "search",
                "insight": f"{mode}: the agent {'replied without tags' if untagged else 'searched'}",
                "failure_mode": mode,
                "failure_snippet": actions[:3] if failed else None,
                "failure_point": "Step 1: no tag" if untagged else None,
                "success_snippet": None,
                "success_pattern": None,
                "trigger_relevant_actions": ["<search>", "(a+)+"],  # the second is unsafe
                "skill_impact": "no relevant skill active",
                "ab_delta": "new arm won" if "[new," in user else "N/A",
                "confidence": "High",
            }
        )

    def _diagnoser(self, req: LoopbackRequest) -> str:
        user = first_user(req)
        idx = [int(i) for i in re.findall(r"^(\d+)\. ", user, re.M)]
        tagged = [i for i in idx if re.search(rf"^{i}\. untagged", user, re.M)]
        rest = [i for i in idx if i not in tagged]
        return json.dumps(
            {
                "assertion_operations": [
                    {
                        "op": "add",
                        "check_type": "action_before",
                        "params": {"first": "<search>", "second": "<answer>"},
                        "description": "Searches before answering.",
                    },
                    {
                        "op": "add",
                        "check_type": "action_not_exists",
                        "params": {"pattern": "^I need to"},
                        "description": "Never replies without an action tag.",
                    },
                    {
                        "op": "add",
                        "check_type": "action_exists",
                        "params": {"pattern": r"(\w+\s?)*"},
                    },
                    {"op": "add", "check_type": "max_steps", "params": {"m": 3}},
                ],
                "diagnosis": "DIAG-MARKER: untagged replies waste turns.",
                "priority_modes": ["untagged_reply"],
                "insight_groups": [
                    {"label": "untagged", "insight_indices": tagged, "representative_index": 999},
                    {
                        "label": "other",
                        "insight_indices": [*rest, 999],
                        "representative_index": None,
                    },
                ],
            }
        )

    def _recommender(self, req: LoopbackRequest) -> str:
        return json.dumps(
            {
                "reasoning": "Teach reading the passages.",
                "operations": [
                    {
                        "op": "add",
                        "target": None,
                        "intent": "answer from the passages",
                        "evidence": "cluster 1",
                        "referenced_insights": [0, 1, 77],
                        "trigger_suggestion": "action_pattern",
                    },
                    {"op": "modify", "target": "no-such-skill", "intent": "x"},
                ],
            }
        )

    def _author(self, req: LoopbackRequest) -> str:
        with self.lock:
            return self.author.pop(0) if len(self.author) > 1 else self.author[0]


@pytest.fixture()
def published_llm() -> type[PublishedLLM]:
    """The published-pipeline scripted-LLM class (``.GOOD``, ``.role``, ``.first_user``)."""
    return PublishedLLM


@pytest.fixture()
def creator_llm() -> type[ScriptedCreatorLLM]:
    """The scripted-LLM class (test modules cannot import conftest under importlib mode)."""
    return ScriptedCreatorLLM


@pytest.fixture()
def good_skill() -> dict[str, object]:
    return dict(GOOD_SKILL)
