"""Shared fixtures: real Search trajectories from a mistake-making scripted agent, and a
scripted LLM (a responder for the loopback server) that plays the four creator roles."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reskill_gym.creator import Reservoir
from reskill_gym.creator.recording import SearchMistakeAgent, record_episodes
from reskill_gym.episode import Episode
from reskill_gym.llm.loopback import LoopbackError, LoopbackReply, LoopbackRequest
from reskill_gym.skills import LibraryView

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


@pytest.fixture()
def creator_llm() -> type[ScriptedCreatorLLM]:
    """The scripted-LLM class (test modules cannot import conftest under importlib mode)."""
    return ScriptedCreatorLLM


@pytest.fixture()
def good_skill() -> dict[str, object]:
    return dict(GOOD_SKILL)
