"""SkillWrapper through real environments: trigger semantics, pinning, vector envs, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import reskill_gym  # noqa: F401  (registers the ids)
from reskill_gym.checker import check_skill_env
from reskill_gym.envs.base import EngineStep, TextEnv
from reskill_gym.envs.search import SearchEnv
from reskill_gym.skills import LibraryError, LibraryView, Skill, SkillLibrary, Trigger, write_skill
from reskill_gym.wrapper import SkillWrapper, strip_skill_block

REPO = Path(__file__).resolve().parents[1]


def _skill(name: str, ttype: str, pattern: str | None = None, content: str = "") -> Skill:
    return Skill(
        name=name,
        description=f"{name} skill",
        content=content or f"Advice from {name}.",
        trigger=Trigger(type=ttype, pattern=pattern),
    )


@pytest.fixture()
def search_lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    for s in (
        _skill("at-start", "beginning"),
        _skill("after-search", "action_pattern", r"^<search>"),
        _skill("on-invalid", "observation_pattern", r"previous action is invalid"),
        _skill("always", "general"),
    ):
        write_skill(s, root)
    return root


def _search_env(skills: Any, **kw: Any) -> gym.Env[str, str]:
    return gym.make("ReSkill-Search-v0", skills=skills, cache_dir=str(kw.pop("cache")), **kw)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("search-cache")


def test_trigger_semantics_per_turn(search_lib: Path, cache: Path) -> None:
    env = _search_env(search_lib, cache=cache)
    obs, info = env.reset(seed=1)
    assert set(info["skill_ids"]) == {"at-start@1", "always@1"}
    assert "Advice from at-start." in obs and info["bundle_chars"] == len(info["bundle_text"])
    obs, _, _, _, info = env.step("<search>capital city</search>")
    assert set(info["skill_ids"]) == {"after-search@1", "always@1"}  # fires the turn AFTER
    obs, _, _, _, info = env.step("what?")
    assert set(info["skill_ids"]) == {"on-invalid@1", "always@1"}
    assert info["invalid_action"] is True
    obs, _, term, trunc, info = env.step("<answer>nobody</answer>")
    assert term and info["skill_ids"] == ()
    assert [e["turn"] for e in info["skill_log"]] == [0, 1, 2, 3]
    env.close()


def test_skills_none_gives_raw_observation(cache: Path) -> None:
    raw = SearchEnv(cache_dir=str(cache))
    wrapped = _search_env(None, cache=cache)
    o1, _ = raw.reset(seed=3)
    o2, info = wrapped.reset(seed=3)
    assert o1 == o2 and info["skill_ids"] == () and info["library_version"] is None
    a1 = raw.step("<search>river</search>")[0]
    a2 = wrapped.step("<search>river</search>")[0]
    assert a1 == a2


def test_default_make_uses_seed_library(cache: Path) -> None:
    env = gym.make("ReSkill-Search-v0", cache_dir=str(cache))
    obs, info = env.reset(seed=0)
    assert info["library_version"] == LibraryView.from_folder(REPO / "skills" / "search").version
    assert info["skill_ids"] and "## Skills" in obs
    check_skill_env(env, actions=["<search>a</search>", "<answer>b</answer>"])


def test_version_pinned_at_reset(search_lib: Path, cache: Path) -> None:
    lib = SkillLibrary.open(search_lib, create=True)
    v1 = lib.head
    env = _search_env(lib, cache=cache)
    _, info = env.reset(seed=0)
    assert info["library_version"] == v1
    v2 = lib.commit([_skill("newcomer", "general")], reason="test", step=1)
    _, _, _, _, info = env.step("<search>x</search>")
    assert info["library_version"] == v1 and "newcomer@1" not in info["skill_ids"]
    _, info = env.reset(seed=0)
    assert info["library_version"] == v2 and "newcomer@1" in info["skill_ids"]
    # pinning an explicit version of a library path
    env2 = _search_env(str(search_lib), version=v1, cache=cache)
    assert env2.reset(seed=0)[1]["library_version"] == v1


def test_bad_library_inputs(tmp_path: Path, search_lib: Path, cache: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _search_env(tmp_path / "missing", cache=cache)
    lib = SkillLibrary.open(search_lib, create=True)
    with pytest.raises(LibraryError, match="unknown version"):
        _search_env(lib, version="deadbeef0000", cache=cache)
    with pytest.raises(LibraryError):
        _search_env(str(REPO / "skills" / "search"), version="0123456789ab", cache=cache)


def test_invalid_edit_on_disk_keeps_pinned_version_working(search_lib: Path, cache: Path) -> None:
    lib = SkillLibrary.open(search_lib, create=True)
    env = _search_env(lib, cache=cache)
    env.reset(seed=0)
    (search_lib / "always" / "SKILL.md").write_text("---\nname: [broken\n---\n")
    _, info = env.reset(seed=0)  # HEAD's stored objects are intact
    assert "always@1" in info["skill_ids"]
    plain = search_lib.parent / "plain"
    shutil.copytree(search_lib, plain, ignore=shutil.ignore_patterns(".reskill"))
    with pytest.raises(Exception, match="always"):
        _search_env(plain, cache=cache)


class _Huge(TextEnv):
    def task_ids(self, split: str | None = None) -> list[str]:
        return ["t"]

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        return "x" * 3_000_000, {"task": "t", "task_type": "huge"}

    def _engine_step(self, action: str) -> EngineStep:
        return EngineStep("y" * 3_000_000, 0.0, False, False)


def test_huge_observation_bundle_stays_bounded() -> None:
    skills = [_skill(f"s{i:03d}", "general", content="z" * 400) for i in range(50)]
    env = SkillWrapper(
        _Huge(), LibraryView("v", skills), skill_budget_chars=1000, max_active_skills=8
    )
    obs, info = env.reset(seed=0)
    assert info["bundle_chars"] <= 1000 and len(info["skill_ids"]) == 2
    assert strip_skill_block(obs, info) == info["observation"]


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_vector_envs(vector_cls: type, search_lib: Path, cache: Path) -> None:
    fns = [lambda: _search_env(str(search_lib), cache=cache) for _ in range(2)]
    venv = vector_cls(fns)
    try:
        obs, infos = venv.reset(seed=[0, 1])
        assert all("## Skills" in o for o in obs)
        assert list(infos["skill_ids"][0]) and infos["library_version"][0]
        obs, *_ = venv.step(["<search>a</search>", "bad"])
        assert "after-search" in obs[0] and "on-invalid" in obs[1]
    finally:
        venv.close()
