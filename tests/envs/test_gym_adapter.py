"""An unmodified Gymnasium text env through the ``gym`` adapter, and envs that misbehave."""

from __future__ import annotations

import string
import threading
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest
from gymnasium import spaces

from reskill_gym.envs.base import EngineCrashedError
from reskill_gym.envs.contract import check_env_contract
from reskill_gym.envs.gym_adapter import EnvStepTimeout, GymTextEnv
from reskill_gym.envs.registration import make_env, make_skill_env


class Vault(gym.Env[dict[str, str], str]):
    """A text env written with no knowledge of reskill-gym: its own info keys, a dict
    observation, a goal in ``info["goal"]``, valid moves in ``info["valid"]``."""

    def __init__(self, mode: str = "ok", code_len: int = 2) -> None:
        self.observation_space = spaces.Dict({"text": spaces.Text(200, charset=string.printable)})
        self.action_space = spaces.Text(50, charset=string.printable)
        self.mode, self.code_len = mode, code_len
        self.release = threading.Event()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.code = "".join(str(int(d)) for d in self.np_random.integers(0, 3, self.code_len))
        self.typed = ""
        obs: Any = {"text": f"A vault with a keypad. Code length {self.code_len}."}
        if self.mode == "bytes":
            obs = b"vault"
        info = {"goal": f"open the vault (code {self.code})", "valid": self._valid()}
        if self.mode == "no_goal":
            info.pop("goal")
        return obs, info

    def _valid(self) -> list[str]:
        return [f"press {d}" for d in "012"]

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self.mode == "raise":
            raise KeyError("keypad jammed")
        if self.mode == "hang":
            self.release.wait(5)
        if action.startswith("press "):
            self.typed += action[6:]
        opened = self.typed == self.code
        done = opened or len(self.typed) >= self.code_len
        text = "The vault opens." if opened else f"Typed {self.typed}."
        return {"text": text}, float(opened), done, False, {"valid": self._valid()}


@pytest.fixture(autouse=True)
def vault_id() -> Iterator[str]:
    gym.register("TestVault-v0", entry_point=Vault)
    yield "TestVault-v0"
    gym.registry.pop("TestVault-v0", None)


OPTS = {"gym_id": "TestVault-v0", "task_key": "goal", "actions_key": "valid", "obs_key": "text"}


def test_adapter_plays_an_unmodified_env() -> None:
    env = make_env("gym", **OPTS)
    assert isinstance(env, GymTextEnv)
    assert env.task_ids("unseen")[0] == "seed-10000"
    obs, info = env.reset(options={"task_id": "seed-3"})
    assert obs.startswith("A vault") and info["task"].startswith("open the vault (code ")
    assert info["task_id"] == "seed-3" and info["admissible_actions"] == [
        "press 0",
        "press 1",
        "press 2",
    ]
    code = info["task"].split("code ")[1].rstrip(")")
    for d in code:
        obs, reward, term, _, info = env.step(f"press {d}")
    assert term and info["won"] and reward == 1.0  # no won key: terminated with reward >= 1
    # the same seed is the same task
    _, again = env.reset(options={"task_id": "seed-3"})
    assert again["task"] == info["task"]
    env.close()


def test_gym_id_through_the_skill_wrapper_and_contract() -> None:
    env = make_skill_env("gym", skills=None, **OPTS)
    _, info = env.reset(seed=0)
    assert "library_version" in info
    env.close()
    lines = check_env_contract("TestVault-v0", {k: v for k, v in OPTS.items() if k != "gym_id"})
    bad = [c.render() for c in lines if c.required and not c.ok]
    assert not bad, bad
    assert any(c.piece == "seed skills" and not c.ok for c in lines)  # a note, not a failure


def test_contract_names_each_missing_piece() -> None:
    lines = check_env_contract("TestVault-v0", {"actions_key": "valid", "obs_key": "text"})
    failed = [c.render() for c in lines if not c.ok and c.required]
    assert len(failed) == 1 and "reset info has no 'task' (task_key" in failed[0]
    assert "goal, valid" in failed[0]  # the keys it does have
    lines = check_env_contract("TestVault-v0", {"task_key": "goal"})
    msg = next(c.message for c in lines if c.piece == "reset")
    assert "observation is a dict, not str (set obs_key" in msg


def test_a_step_that_raises_or_hangs_is_an_engine_error() -> None:
    env = make_env("gym", **OPTS, env_kwargs={"mode": "raise"})
    env.reset(options={"task_id": "seed-0"})
    with pytest.raises(EngineCrashedError, match="TestVault-v0: step raised KeyError"):
        env.step("press 1")
    env.close()
    env = make_env("gym", **OPTS, env_kwargs={"mode": "hang"}, step_timeout_s=0.2)
    env.reset(options={"task_id": "seed-0"})
    inner = env._inner
    with pytest.raises(EnvStepTimeout, match="step took longer than step_timeout_s=0.2"):
        env.step("press 1")
    inner.unwrapped.release.set()
    # a fresh inner env on the next reset
    obs, _ = env.reset(options={"task_id": "seed-0"})
    assert obs.startswith("A vault") and env._inner is not inner
    env.close()


def test_non_text_observation_and_bad_task_ids_are_one_line_errors() -> None:
    env = make_env("gym", **OPTS, env_kwargs={"mode": "bytes"})
    with pytest.raises(ValueError, match="observation has no 'text' \\(obs_key\\); it is a bytes"):
        env.reset(options={"task_id": "seed-0"})
    env.close()
    env = make_env("gym", **OPTS)
    with pytest.raises(ValueError, match="is not seed-<n> \\(set task_option"):
        env.reset(options={"task_id": "level-1"})
    env.close()
    with pytest.raises(ValueError, match="not a registered Gymnasium id"):
        make_env("gym", gym_id="NoSuchEnv-v9")


def test_run_config_short_form() -> None:
    from reskill_gym.runfolder import EnvConfig

    cfg = EnvConfig.model_validate(
        {"gym_id": "TestVault-v0", "kwargs": {"code_len": 3}, "task_key": "goal", "skills": "none"}
    )
    assert cfg.name == "gym"
    assert cfg.kwargs == {
        "gym_id": "TestVault-v0",
        "task_key": "goal",
        "env_kwargs": {"code_len": 3},
    }
    env = make_env(cfg.name, **cfg.kwargs, obs_key="text")
    assert env.reset(options={"task_id": "seed-1"})[0].endswith("Code length 3.")
    env.close()


def test_eval_records_error_episodes_for_a_broken_env_and_goes_on(tmp_path) -> None:
    """A step that raises or hangs: an error episode each, the run finishes, the folder reads."""
    from reskill_gym.evaluation import EvalConfig, run_eval
    from reskill_gym.evaluation.agents import CallableAgent

    for mode, extra in (("raise", {}), ("hang", {"step_timeout_s": 0.2})):
        cfg = EvalConfig(
            env="gym",
            env_kwargs={**OPTS, "env_kwargs": {"mode": mode}, **extra},
            agent="python:unused:act",
            tasks=2,
            baseline=True,
            skills=[],
        )
        agent = CallableAgent(lambda messages, info: "<action>press 1</action>", name="press")
        run = run_eval(cfg, tmp_path / mode, agent=agent)
        assert run.ran == 2 and run.errors == 2, mode
        rows = (tmp_path / mode / "episodes.jsonl").read_text().splitlines()
        assert len(rows) == 2 and all('"stop_reason":"error"' in r.replace(" ", "") for r in rows)
        assert ("step raised KeyError" if mode == "raise" else "step_timeout_s=0.2") in rows[0]


def test_evolve_runs_on_an_unmodified_env_from_the_short_form(tmp_path, monkeypatch) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    (tmp_path / "vault_agent.py").write_text(
        "def act(messages, info):\n"
        "    code = info['task'].split('code ')[1].rstrip(')')\n"
        "    return '<action>press ' + code[min(info['turn'], len(code) - 1)] + '</action>'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {
        "run": {"steps": 2, "skills_mode": "coevolve", "out_dir": str(tmp_path), "name": "v"},
        "env": {**OPTS, "kwargs": {"code_len": 2}, "skills": "none", "max_tasks": 3},
        "agent": {"spec": "python:vault_agent:act", "group_size": 2, "groups_per_step": 2},
        "coevolution": {"async_creator": False, "creator": {"backend": "rules"}},
    }
    (tmp_path / "evolve.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(
        app, ["evolve", "--config", str(tmp_path / "evolve.yaml"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(r) for r in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert all(r["episode/success_rate"] == 1.0 for r in rows)  # the agent reads the code
