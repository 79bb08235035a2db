"""The env registry: built-ins, register(), entry-point plugins, unknown names, success rules."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from reskill_gym.envs import registration as reg
from reskill_gym.envs.base import EngineStep, TextEnv
from reskill_gym.envs.spec import EnvSpec


class Lamp(TextEnv):
    """Turn the lamp on: two tasks per split, ``turn on lamp`` wins."""

    env_name = "lamp"

    def task_ids(self, split: str | None = None) -> list[str]:
        return [f"{split or self.split}-{i}" for i in range(2)]

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        self._task = task_id
        return "A dark room. There is a lamp.", {"task": "turn on the lamp", "task_type": "lamp"}

    def _engine_step(self, action: str) -> EngineStep:
        won = action == "turn on lamp"
        return EngineStep(
            "The lamp is on." if won else "Nothing happens.",
            1.0 if won else 0.0,
            won,
            won,
            admissible_actions=["turn on lamp", "look"],
        )


@pytest.fixture
def lamp_spec() -> Iterator[EnvSpec]:
    spec = reg.register(EnvSpec(name="lamp", factory=Lamp, description="a lamp"))
    yield spec
    reg.unregister("lamp")


def test_builtins_are_registered_with_their_gym_ids() -> None:
    ids = reg.gym_ids()
    assert ids["alfworld"] == "ReSkill-ALFWorld-v0"
    assert ids["scienceworld"] == "ReSkill-ScienceWorld-v0"
    assert ids["search"] == "ReSkill-Search-v0"
    assert all(i in gym.registry for i in ids.values())
    assert reg.get_spec("ReSkill-Search-v0").name == "search"  # a Gymnasium id finds it too
    assert reg.get_spec("search").reply_format == "passthrough"
    assert reg.get_spec("search").local_action_mode == "generate"
    assert reg.get_spec("alfworld").expert == "lookahead"


def test_unknown_name_is_one_line_with_a_close_match_and_the_list() -> None:
    with pytest.raises(reg.UnknownEnvError) as e:
        reg.get_spec("sciencworld")
    msg = str(e.value)
    assert "\n" not in msg
    assert "did you mean 'scienceworld'?" in msg
    assert "registered: alfworld, gym, scienceworld, search, textworld" in msg
    assert reg.find_spec("sciencworld") is None


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        EnvSpec(name="My Env", factory=Lamp)
    with pytest.raises(ValueError, match="module:attribute"):
        EnvSpec(name="x", factory="no_colon")
    with pytest.raises(ValueError, match="needs admissible_actions"):
        EnvSpec(name="x", factory=Lamp, admissible_actions=False, local_action_mode="score")


def test_register_make_and_gym_make(lamp_spec: EnvSpec) -> None:
    assert "lamp" in reg.env_names()
    assert lamp_spec.gym_id == "ReSkill-lamp-v0"
    assert reg.list_tasks("lamp", "unseen") == ["unseen-0", "unseen-1"]
    env = gym.make("ReSkill-lamp-v0", skills=None, split="seen")
    obs, info = env.reset(seed=0)
    assert info["task"] == "turn on the lamp" and info["split"] == "seen"
    *_, info = env.step("turn on lamp")
    assert info["won"]
    env.close()
    # the same spec again is a no-op; another one under the name needs replace=True
    reg.register(lamp_spec)
    other = EnvSpec(name="lamp", factory=Lamp, description="another lamp")
    with pytest.raises(ValueError, match="already registered"):
        reg.register(other)
    reg.register(other, replace=True)
    assert reg.get_spec("lamp").description == "another lamp"
    with pytest.raises(ValueError, match="belongs to lamp"):
        reg.register(EnvSpec(name="lamp2", factory=Lamp, gym_id="ReSkill-lamp-v0"))


def test_the_spec_drives_prompts_and_defaults(lamp_spec: EnvSpec) -> None:
    from reskill_gym.rollout.config import TurnConfig

    reg.register(
        EnvSpec(
            name="lamp",
            factory=Lamp,
            system_prompt="You are an electrician.",
            reply_format="passthrough",
        ),
        replace=True,
    )
    cfg = TurnConfig().resolve("lamp")
    assert cfg.action_format == "passthrough"
    assert str(cfg.system_prompt).startswith("You are an electrician.")


def test_success_rule_sets_won(lamp_spec: EnvSpec) -> None:
    reg.register(
        EnvSpec(name="lamp", factory=Lamp, success=lambda r, info: info["turn"] >= 1),
        replace=True,
    )
    env = reg.make_env("lamp")
    env.reset(seed=0)
    *_, info = env.step("look")
    assert info["won"]  # the rule, not the engine's win
    assert env.task_ids("train") == ["train-0", "train-1"]  # the env's methods stay reachable
    env.close()


def test_configs_refuse_unknown_env_names() -> None:
    from reskill_gym.evaluation.config import EvalConfig
    from reskill_gym.runfolder import EnvConfig

    with pytest.raises(ValueError, match="did you mean 'alfworld'"):
        EnvConfig(name="alfwold")
    assert EnvConfig(name="ReSkill-Search-v0").name == "search"
    with pytest.raises(ValueError, match="unknown env 'nope'"):
        EvalConfig(env="nope", agent="python:m:f")
    with pytest.raises(ValueError, match="has no difficulty levels"):
        EvalConfig(env="search", agent="python:m:f", difficulty="tiny")
    with pytest.raises(ValueError, match="has none"):
        EvalConfig(env="search", agent="python:m:f", metric="expert")


def _install_plugin(root: Path, name: str, module_text: str, value: str) -> None:
    """A real distribution on ``sys.path``: a module and a dist-info with an entry point."""
    (root / f"{name}_plugin.py").write_text(textwrap.dedent(module_text))
    dist = root / f"{name}_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[reskill_gym.envs]\n{name} = {value}\n")


def test_entry_point_plugins_load_and_a_broken_one_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(
        tmp_path,
        "bulb",
        f"""
        from reskill_gym.envs.spec import EnvSpec

        SPEC = EnvSpec(name="bulb", factory="{__name__}:Lamp", description="from a plugin")
        """,
        "bulb_plugin:SPEC",
    )
    _install_plugin(tmp_path, "broken", "import not_a_module_anywhere\n", "broken_plugin:SPEC")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        reg.load_plugins(reload=True)
        assert reg.get_spec("bulb").description == "from a plugin"
        assert "ReSkill-bulb-v0" in gym.registry
        with pytest.raises(reg.EnvPluginError) as e:
            reg.get_spec("broken")
        msg = str(e.value)
        assert "\n" not in msg and "env plugin 'broken'" in msg
        assert "ModuleNotFoundError" in msg and "not_a_module_anywhere" in msg
        assert "broken" in reg.plugin_errors() and "bulb" not in reg.plugin_errors()
    finally:
        reg.unregister("bulb")
        monkeypatch.undo()
        sys.modules.pop("bulb_plugin", None)
        reg.load_plugins(reload=True)
    assert "broken" not in reg.plugin_errors()


def test_env_list_command() -> None:
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    out = CliRunner().invoke(app, ["env", "list"])
    assert out.exit_code == 0, out.output
    assert "ReSkill-ScienceWorld-v0" in out.output
