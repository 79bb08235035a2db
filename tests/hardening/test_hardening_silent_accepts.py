"""Inputs that used to be accepted silently are errors now (round 2 of the hardening probe)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reskill_gym.skills import SkillError
from reskill_gym.skills.model import parse_skill_id, validate_name
from reskill_gym.skills.store import is_version_id
from reskill_gym.yaml_loading import YAMLLoadError, check_yaml


@pytest.mark.parametrize("name", ["plan\n", "plan\n\n", "a-b\n"])
def test_name_with_a_trailing_newline_is_refused(name: str) -> None:
    """``$`` matches before a final newline; the anchors are ``\\Z``."""
    with pytest.raises((SkillError, ValueError)):
        validate_name(name)
    with pytest.raises((SkillError, ValueError)):
        parse_skill_id(name)


def test_version_id_with_a_trailing_newline_is_not_one() -> None:
    assert is_version_id("0123456789ab")
    assert not is_version_id("0123456789ab\n")


def test_duplicate_front_matter_keys_are_refused_everywhere(kit, tmp_path: Path) -> None:
    """``import`` used to keep the last of two ``name:`` keys while ``validate`` refused it."""
    with pytest.raises(YAMLLoadError, match="'a' appears twice.*line 3"):
        check_yaml("a: 1\nb: {a: 1}\na: 2\n")
    check_yaml("a: {x: 1}\nb: {x: 1}\nc: [x, x]\n")  # the same key in two mappings is fine
    src = tmp_path / "src"
    kit.write_raw_skill(src, "plan", "name: plan\ndescription: d\nname: other\n")
    kit.user_error(kit.cli("skills", "import", src, "-L", tmp_path / "lib"), "twice")
    res = kit.cli("skills", "validate", src)
    assert res.exit_code == 1 and "twice" in res.output
    assert not (tmp_path / "lib" / "plan").exists()


# ----- non-finite numbers, typos and unknown ids in run and eval configs ------------------------
EVOLVE_DRY_RUN = Path(__file__).resolve().parents[2] / "configs" / "evolve" / "alfworld_python.yaml"


@pytest.mark.parametrize(
    "override, needle",
    [
        ("agent.temperature=inf", "agent.temperature"),
        ("agent.retry_backoff_s=nan", "agent.retry_backoff_s"),
        ("agent.llm.timeout_s=inf", "agent.llm.timeout_s"),
        ("coevolution.creator.llm_options.temperature=nan", "llm_options.temperature"),
        ("env.kwargs.max_turns=nan", "env.kwargs.max_turns"),
        ("env.kwargs.difficulti=tiny", "did you mean 'difficulty'"),
    ],
)
def test_run_configs_refuse_non_finite_numbers_and_unknown_env_options(
    override: str, needle: str
) -> None:
    from reskill_gym.evolve import load_evolve_config
    from reskill_gym.runfolder import ConfigError

    load_evolve_config(EVOLVE_DRY_RUN)  # the shipped config itself is fine
    with pytest.raises(ConfigError, match=re.escape(needle)) as info:
        load_evolve_config(EVOLVE_DRY_RUN, [override])
    assert len(str(info.value)) < 400  # the message, not the whole section echoed back


def test_unknown_task_ids_are_an_error() -> None:
    from reskill_gym.runfolder import ConfigError, EnvConfig

    env = EnvConfig(tasks=["a", "nope"])
    with pytest.raises(ConfigError, match="env.tasks: 1 task id.*'nope'"):
        env.select_tasks(["a", "b"])
    assert env.model_copy(update={"tasks": ["b"]}).select_tasks(["a", "b"]) == ["b"]


@pytest.mark.parametrize(
    "flags, needle",
    [
        (("--temperature", "inf"), "temperature"),
        (("--temperature", "nan"), "temperature"),
        (("--timeout", "inf"), "timeout_s"),
        (("--timeout", "nan"), "timeout_s"),
    ],
)
def test_eval_refuses_non_finite_flags(kit, tmp_path: Path, flags: tuple, needle: str) -> None:
    out = tmp_path / "o"
    base = ("eval", "--env", "alfworld", "--agent", "python:os:getcwd", "--out", out)
    res = kit.cli(*base, *flags)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert needle in res.output  # an error line, or Typer's usage message for a range
    assert not out.exists()


def test_eval_config_checks_env_options_and_llm_options() -> None:
    from reskill_gym.evaluation.config import EvalConfig

    with pytest.raises(ValueError, match="did you mean 'max_turns'"):
        EvalConfig(env="alfworld", agent="python:m:f", env_kwargs={"max_turn": 3})
    with pytest.raises(ValueError, match="llm.max_retries"):
        EvalConfig(env="alfworld", agent="python:m:f", llm={"max_retries": -1})
    EvalConfig(
        env="alfworld", agent="python:m:f", llm={"timeout_s": 5, "api_key": "k-silent-accepts-test"}
    )


def test_a_policy_calling_sys_exit_is_an_error_episode(
    kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SystemExit`` from a policy used to end ``eval`` with exit 0 and nothing recorded."""
    pytest.importorskip("alfworld")
    import json
    import sys

    (tmp_path / "exiting_policy.py").write_text(
        "import sys\n\ndef act(messages, info):\n    sys.exit(0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("exiting_policy", None)
    out = tmp_path / "o"
    res = kit.cli(
        "eval", "--env", "alfworld", "--agent", "python:exiting_policy:act", "--tasks", "1",
        "--difficulty", "tiny", "--out", out,
    )  # fmt: skip
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert rows and all("SystemExit" in (r.get("error") or "") for r in rows), rows
