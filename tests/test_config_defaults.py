"""One definition per default: every config that exposes a bundle setting, the reservoir
threshold, the default action mode or the group sizes reads the same named value, so a library
is trained, evolved and evaluated with the same skill block and agent unless a config says
otherwise. The source scans below fail on a second copy (a literal written again)."""

from __future__ import annotations

import ast
import inspect
import logging
from pathlib import Path

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


# ----- the default action mode and the group sizes: one definition each ---------------------
ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "reskill_gym", *sorted((ROOT / "adapters").glob("*/reskill_*"))]
GROUP_KEYS = {"group_size", "groups_per_step"}


class _Sites(ast.NodeVisitor):
    """Where a module decides a default action mode or writes a group size as a literal."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.scope: list[str] = []
        self.mode: list[str] = []
        self.groups: list[str] = []

    def _here(self) -> str:
        return f"{self.where}:{'.'.join(self.scope) or '<module>'}"

    def _scoped(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node, node.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        args = node.args.posonlyargs + node.args.args
        defaults = list(zip(args[len(args) - len(node.args.defaults) :], node.args.defaults))
        defaults += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d]
        for arg, default in defaults:
            if arg.arg in GROUP_KEYS and _literal_int(_first_value(default)):
                self.groups.append(f"{self._here()}.{node.name}({arg.arg})")
        self._scoped(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        name = node.target.id if isinstance(node.target, ast.Name) else ""
        if name in GROUP_KEYS and node.value is not None and _literal_int(_first_value(node.value)):
            self.groups.append(f"{self._here()}.{name}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "local_action_mode" and isinstance(node.ctx, ast.Load):
            self.mode.append(self._here())
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg == "action_mode" and _is_score(node.value):
            self.mode.append(self._here())
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "action_mode" and _is_score(value):
                self.mode.append(self._here())
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        args = node.args
        if len(args) == 2 and isinstance(args[0], ast.Constant):
            if args[0].value == "action_mode" and _is_score(args[1]):  # setdefault(...)
                self.mode.append(self._here())
        self.generic_visit(node)


def _is_score(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "score"


def _first_value(node: ast.AST) -> ast.AST:
    """A Field(...)/typer.Option(...) default: its first argument or ``default=``."""
    if isinstance(node, ast.Call):
        for kw in node.keywords:
            if kw.arg == "default":
                return kw.value
        return node.args[0] if node.args else node
    return node


def _literal_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _scan() -> _Sites:
    found = _Sites("")
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("reskill_gym/envs/"):
                continue  # where each env states its own mode (EnvSpec.local_action_mode)
            sites = _Sites(rel)
            sites.visit(ast.parse(path.read_text(encoding="utf-8")))
            found.mode += sites.mode
            found.groups += sites.groups
    return found


def test_the_default_action_mode_has_one_definition() -> None:
    sites = _scan()
    assert sites.mode == ["reskill_gym/rollout/config.py:TurnConfig.for_agent"]


def test_the_scan_finds_a_second_copy() -> None:
    code = (
        "class C:\n"
        "    group_size: int = Field(4, ge=2)\n"
        "    def f(self, d, spec, groups_per_step=2):\n"
        "        d.setdefault('action_mode', 'score')\n"
        "        return TurnConfig(action_mode='score'), {'action_mode': 'score'}, "
        "spec.local_action_mode\n"
    )
    sites = _Sites("m.py")
    sites.visit(ast.parse(code))
    assert sites.mode == ["m.py:C.f"] * 4
    assert sites.groups == ["m.py:C.group_size", "m.py:C.f(groups_per_step)"]


def test_every_agent_kind_gets_the_mode_from_the_one_definition() -> None:
    from reskill_gym.evaluation.config import EvalConfig
    from reskill_gym.evolve import load_evolve_config
    from reskill_gym.rollout import TurnConfig

    for env in ("alfworld", "search", "gym"):
        local = TurnConfig().for_agent(env, local=True).action_mode
        assert EvalConfig(env=env, agent="local:default").mode == local
        evolve = load_evolve_config(None, ["agent.spec=local:default", f"env.name={env}"])
        assert evolve.rollout.action_mode == local
        assert EvalConfig(env=env, agent="python:m:f").mode == "generate"
    assert TurnConfig().for_agent("alfworld", local=True).action_mode == "score"
    train = pytest.importorskip("reskill_local.train")  # torch
    for env in ("alfworld", "search"):
        cfg = train.load_config(None, [f"env.name={env}"])
        assert cfg.rollout.action_mode == TurnConfig().for_agent(env, local=True).action_mode


def test_group_sizes_have_one_definition() -> None:
    from reskill_gym.evolve import AgentConfig
    from reskill_gym.rollout.config import DEFAULT_GROUP_SIZE, DEFAULT_GROUPS_PER_STEP

    assert _scan().groups == []
    agent = AgentConfig(spec="python:m:f")
    defaults = [(agent.group_size, agent.groups_per_step)]
    grpo = pytest.importorskip("reskill_local.grpo")  # torch
    defaults.append((grpo.GRPOConfig().group_size, grpo.GRPOConfig().groups_per_step))
    assert defaults == [(DEFAULT_GROUP_SIZE, DEFAULT_GROUPS_PER_STEP)] * 2
