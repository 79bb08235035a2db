"""One definition per default: every config that exposes a bundle setting or the reservoir
threshold reads the same named value, so a library is trained, evolved and evaluated with the
same skill block unless a config says otherwise."""

from __future__ import annotations

import inspect
import logging

import pytest
from pydantic import ValidationError

from reskill_gym.coevolve import CoEvolutionConfig
from reskill_gym.creator import CreatorConfig
from reskill_gym.runfolder import EnvConfig
from reskill_gym.skills import LibraryView
from reskill_gym.skills.bundle import (
    DEFAULT_BUDGET_CHARS,
    DEFAULT_MAX_ACTIVE_SKILLS,
    BundleSelector,
    select_bundle,
)
from reskill_gym.wrapper import SkillWrapper


def _default(fn: object, name: str) -> object:
    return inspect.signature(fn).parameters[name].default  # type: ignore[arg-type]


def test_bundle_defaults_are_the_same_everywhere() -> None:
    env = EnvConfig()
    assert (env.max_active_skills, env.skill_budget_chars) == (
        DEFAULT_MAX_ACTIVE_SKILLS,
        DEFAULT_BUDGET_CHARS,
    )
    assert _default(SkillWrapper.__init__, "max_active_skills") == DEFAULT_MAX_ACTIVE_SKILLS
    assert _default(SkillWrapper.__init__, "skill_budget_chars") == DEFAULT_BUDGET_CHARS
    for fn in (LibraryView.select, BundleSelector.select, select_bundle):
        assert _default(fn, "max_active_skills") == DEFAULT_MAX_ACTIVE_SKILLS
        assert _default(fn, "budget_chars") == DEFAULT_BUDGET_CHARS


def test_verl_section_uses_the_core_bundle_defaults() -> None:
    verl_config = pytest.importorskip("reskill_verl.config")
    cfg = verl_config.ReskillVerlConfig()
    assert (cfg.max_active_skills, cfg.skill_budget_chars) == (
        DEFAULT_MAX_ACTIVE_SKILLS,
        DEFAULT_BUDGET_CHARS,
    )


def test_min_reservoir_size_is_one_setting(caplog: pytest.LogCaptureFixture) -> None:
    assert "min_reservoir_size" not in CoEvolutionConfig.model_fields
    cfg = CoEvolutionConfig(creator=CreatorConfig(min_reservoir_size=12))
    assert cfg.min_reservoir_size == cfg.creator.min_reservoir_size == 12
    # the old top-level key still sets it (with a warning), and agreeing copies are accepted
    with caplog.at_level(logging.WARNING, logger="reskill_gym.coevolve"):
        old = CoEvolutionConfig.model_validate({"min_reservoir_size": 7})
    assert old.creator.min_reservoir_size == 7 and "deprecated" in caplog.text
    both = CoEvolutionConfig.model_validate(
        {"min_reservoir_size": 9, "creator": {"min_reservoir_size": 9, "n_groups": 4}}
    )
    assert (both.creator.min_reservoir_size, both.creator.n_groups) == (9, 4)
    with pytest.raises(ValidationError, match="disagree"):
        CoEvolutionConfig.model_validate(
            {"min_reservoir_size": 7, "creator": {"min_reservoir_size": 8}}
        )
    assert "min_reservoir_size" not in CoEvolutionConfig().model_dump()


def test_verl_nests_the_core_config_typed() -> None:
    verl_config = pytest.importorskip("reskill_verl.config")
    cfg = verl_config.ReskillVerlConfig.model_validate(
        {"coevolution": {"config": {"reservoir_size": 50, "tester": {"min_steps": 2}}}}
    )
    core = cfg.coevolution.config
    assert isinstance(core, CoEvolutionConfig)
    assert (core.reservoir_size, core.tester.min_steps) == (50, 2)
    # a bad key fails when the section is read, naming the path
    with pytest.raises(ValidationError, match=r"coevolution\.config\.tester\.min_step"):
        verl_config.ReskillVerlConfig.model_validate(
            {"coevolution": {"config": {"tester": {"min_step": 1}}}}
        )
    # the checkpoint folder comes from reskill.coevolution.checkpoint_dir only
    with pytest.raises(ValidationError, match="set reskill.coevolution.checkpoint_dir"):
        verl_config.ReskillVerlConfig.model_validate(
            {"coevolution": {"config": {"checkpoint_dir": "/elsewhere"}}}
        )
    assert cfg.coevolution.coevolution_config("ckpt").checkpoint_dir == "ckpt"
    # what the driver sends the actor (a dump) validates again unchanged
    again = verl_config.ReskillVerlConfig.model_validate(cfg.model_dump())
    assert again.coevolution.config == core
