"""The configuration of ``reskill eval``: what runs, under which conditions, how it is played.

Exports ``EvalConfig``, ``ExpertConfig``, ``ConditionName``, ``CONDITIONS``,
``EvalAbortedError`` and ``NO_SKILLS``.

``EvalConfig`` is one evaluation run (success metric or ``--metric expert``); its ``rollout``
block is the turn contract's ``TurnConfig``, the same block a training config has, so a
policy is evaluated with the prompt, parser and choice rule it was trained with.
``ExpertConfig`` is its ``expert:`` block (how expert-labelled states are drawn and which
conditions are scored, see :mod:`reskill_gym.evaluation.expert`). The models only validate;
running is :mod:`reskill_gym.evaluation.runner`'s and :mod:`reskill_gym.evaluation.expert`'s.

>>> EvalConfig(env="alfworld", agent="python:m:f", skills=["skills/alfworld"]).mode
'generate'
>>> ExpertConfig(conditions=["placebo"]).conditions
['library', 'placebo']
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from reskill_gym.evaluation.agents import ActionMode, normalize_agent_spec, parse_agent_spec
from reskill_gym.evaluation.states import StateConfig
from reskill_gym.rollout import TurnConfig

__all__ = [
    "EvalConfig",
    "ExpertConfig",
    "ConditionName",
    "CONDITIONS",
    "EvalAbortedError",
    "NO_SKILLS",
]

#: The name of the paired baseline condition (every unit run without skills).
NO_SKILLS = "no-skills"
#: Flat keys of earlier eval configs / CLI flags -> the rollout field they set.
_FLAT_ROLLOUT_KEYS = {
    "mode": "action_mode",
    "history_turns": "history_turns",
    "show_admissible": "show_admissible",
    "system_prompt": "system_prompt",
    "action_format": "action_format",
    "score_norm": "score_norm",
}


class EvalAbortedError(RuntimeError):
    """The run cannot go on (bad agent spec, rejected credentials, changed config on resume)."""


ConditionName = Literal["none", "library", "placebo", "shuffled"]
CONDITIONS: tuple[str, ...] = ("none", "library", "placebo", "shuffled")


def _all_conditions() -> list[ConditionName]:
    return ["none", "library", "placebo", "shuffled"]


class ExpertConfig(StateConfig):
    """The ``expert:`` block of an eval config: how states are drawn and what is compared."""

    conditions: list[ConditionName] = Field(
        default_factory=_all_conditions,
        description="Conditions to score; library is always included (the others are "
        "compared against it).",
    )
    placebo_skills: list[str] = Field(
        default_factory=list,
        description="Folders of other-domain skills for the placebo; empty: the library "
        "folder's sibling skill libraries (skills/scienceworld, skills/search for "
        "skills/alfworld).",
    )
    label: Literal["snapshot", "replay"] = Field(
        "snapshot",
        description="Look-ahead labelling: snapshot (the engine state is saved and restored "
        "around each command, ~20 ms a command) or replay (reset + replay the prefix per "
        "command, the slow reference).",
    )

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: list[str]) -> list[str]:
        out = list(dict.fromkeys(v))
        if "library" not in out:
            out.insert(0, "library")
        return [c for c in CONDITIONS if c in out]  # a fixed order: none, library, ...


class EvalConfig(BaseModel):
    """One evaluation run; its identity is pinned in ``<out>/config.json``.

    ``rollout`` is the turn contract's ``TurnConfig`` (the block a training config has), so a
    policy is evaluated with the prompt, parser and choice rule it was trained with. The flat
    keys ``mode``, ``history_turns``, ``show_admissible``, ``system_prompt``,
    ``action_format`` and ``score_norm`` (CLI flags, earlier configs) are accepted and set
    the rollout field of that name (``mode`` -> ``action_mode``). Unless set, the action mode
    is ``score`` for ``local:`` agents on envs with admissible actions, else ``generate``,
    and evaluation records every candidate's score (``record_scores``).

    >>> cfg = EvalConfig(env="alfworld", agent="local:default", history_turns=5)
    >>> cfg.mode, cfg.rollout.history_turns, cfg.rollout.score_norm, cfg.rollout.record_scores
    ('score', 5, 'mean', True)
    >>> EvalConfig(env="search", agent="python:m:f").rollout.resolve("search").action_format
    'passthrough'
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    env: str = Field(description="Registered env name (`reskill env list`): alfworld, ...")
    splits: list[str] = Field(default_factory=lambda: ["unseen"], description="Splits to run.")
    skills: list[str] = Field(
        default_factory=list,
        description="Libraries as PATH[@VERSION]; VERSION is a version id, prefix or HEAD~N.",
    )
    agent: str = Field(description="Agent spec (see reskill_gym.evaluation.agents).")
    baseline: bool = Field(True, description="Also run every unit without skills (paired).")
    tasks: int | None = Field(None, ge=1, description="Tasks per split (evenly spread); None=all.")
    seeds: list[int] = Field(default_factory=lambda: [0], description="Seeds per task.")
    workers: int = Field(1, ge=1, description="Episodes in flight (threads).")
    rollout: TurnConfig = Field(
        default_factory=TurnConfig,
        description="The turn contract (layout, action mode and format, score_norm, history, "
        "admissible list, system prompt), as in a training config's rollout: block.",
    )
    max_turns: int | None = Field(None, ge=1, description="Episode horizon; None = env default.")
    difficulty: str | None = Field(
        None, description="Task difficulty, for envs that have levels (alfworld: tiny/small/std)."
    )
    temperature: float = Field(
        0.0, ge=0, description="Sampling / score-choice temperature; 0 = greedy (deterministic)."
    )
    max_tokens: int = Field(256, ge=1, description="Max output tokens per generated reply.")
    turn_retries: int = Field(3, ge=0, description="Re-asks of a failing turn before an error.")
    retry_backoff_s: float = Field(2.0, ge=0, description="First turn-retry delay (doubles).")
    retry_errors: bool = Field(False, description="On resume, re-run episodes that errored.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra env options.")
    template: str | dict[str, Any] = Field(
        "compact",
        description="Skill block template: 'compact', 'published' (the published ReSkill "
        "section) or a mapping {base: ..., <BundleTemplate field>: ...}; evaluate with the "
        "template the library was trained with.",
    )
    llm: dict[str, Any] = Field(
        default_factory=dict, description="LLMConfig overrides (max_retries, timeout_s, ...)."
    )

    @model_validator(mode="after")
    def _env_kwargs(self) -> EvalConfig:
        from reskill_gym.envs.registration import check_env_kwargs, find_spec

        if find_spec(self.env) is not None:  # an unknown name is reported by _check
            check_env_kwargs(self.env, self.env_kwargs, "env_kwargs")
        return self

    @field_validator("llm")
    @classmethod
    def _llm(cls, v: dict[str, Any]) -> dict[str, Any]:
        from reskill_gym.llm.config import check_llm_options

        check_llm_options(v, "llm")  # --timeout inf fails here, not mid-run
        return v

    metric: Literal["success", "expert"] = Field(
        "success",
        description="success: play episodes, report success rates. expert: score "
        "expert-labelled states under none/library/placebo/shuffled skills and report the "
        "probability mass on optimal commands (reskill_gym.evaluation.expert).",
    )
    expert: ExpertConfig = Field(
        default_factory=ExpertConfig,
        description="metric expert: how states are drawn and which conditions are scored.",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_rollout_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _FLAT_ROLLOUT_KEYS):
            return data
        data = dict(data)
        given = data.get("rollout")
        if isinstance(given, TurnConfig):
            rollout = given.model_dump(exclude_unset=True)
        elif isinstance(given, dict):
            rollout = dict(given)
        elif given is None:
            rollout = {}
        else:
            return data  # the field validator reports the wrong type
        for key, name in _FLAT_ROLLOUT_KEYS.items():
            if key not in data:
                continue
            value = data.pop(key)
            if value is None:  # unset (mode None = auto)
                continue
            if name in rollout and rollout[name] != value:
                raise ValueError(
                    f"{key}: {value!r} contradicts rollout.{name}: {rollout[name]!r}; set one"
                )
            rollout[name] = value
        data["rollout"] = rollout
        return data

    @field_validator("agent")
    @classmethod
    def _agent(cls, v: str) -> str:
        return normalize_agent_spec(v)  # run:<run> -> local:<run>, a run without a policy fails

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        from reskill_gym.skills.bundle import resolve_template

        resolve_template(v, where="template")  # an unknown name fails here, with a close match
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("seeds: give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds: duplicates in {v}")
        bad = [s for s in v if not 0 <= s < 2**32]  # what numpy's and the engines' RNGs take
        if bad:
            raise ValueError(f"seeds: {bad[:5]} not in 0..{2**32 - 1}")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[str]) -> list[str]:
        from reskill_gym.envs.base import SPLITS

        bad = [s for s in v if s not in SPLITS]
        if bad or not v:
            raise ValueError(f"splits: {bad or v} not in {SPLITS}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        from reskill_gym.envs.registration import get_spec

        env = get_spec(self.env)  # an unknown name: a close match and the registered list
        if not self.skills and not self.baseline:
            raise ValueError("nothing to run: no --skills and the no-skills baseline is off")
        spec = parse_agent_spec(self.agent)
        r = self.rollout
        update: dict[str, Any] = {}
        if "action_mode" not in r.model_fields_set:
            local = spec.kind == "local"
            update["action_mode"] = env.local_action_mode if local else "generate"
        if "record_scores" not in r.model_fields_set:
            update["record_scores"] = True
        if update:
            self.rollout = TurnConfig.model_validate(r.model_dump(exclude_unset=True) | update)
        if self.mode == "score" and spec.kind != "local":
            raise ValueError(f"mode: score needs a local: agent, got {spec.kind}: (use generate)")
        if self.mode == "score" and not env.admissible_actions:
            raise ValueError(f"mode: score needs admissible actions; the {env.name} env has none")
        if self.metric == "expert":
            self._check_expert(spec.kind)
        if self.difficulty is not None:
            if not env.difficulties:
                raise ValueError(f"difficulty: the {env.name} env has no difficulty levels")
            if self.difficulty not in env.difficulties:
                raise ValueError(
                    f"difficulty: {self.difficulty!r} is not one of {', '.join(env.difficulties)}"
                )
        return self

    def _check_expert(self, kind: str) -> None:
        from reskill_gym.envs.registration import get_spec

        planner = get_spec(self.env).expert
        if planner is None:
            raise ValueError(
                f"metric: expert needs a planner to label states; env {self.env!r} has none "
                "(its EnvSpec.expert is unset; ScienceWorld's gold plans are fixed scripts, "
                "not a planner that can re-plan from any state)"
            )
        if planner == "replay" and self.expert.label == "snapshot":
            if "label" in self.expert.model_fields_set:
                raise ValueError(
                    f"expert.label: snapshot needs the env's lookahead(); {self.env} labels "
                    "states by replay (--label replay)"
                )
            self.expert = self.expert.model_copy(update={"label": "replay"})
        if self.mode != "score" or kind != "local":
            raise ValueError(
                "metric: expert scores every admissible command: it needs a local: agent in "
                "score mode (rollout.action_mode: score)"
            )
        if len(self.skills) != 1:
            raise ValueError(
                f"metric: expert compares one library with its controls; give exactly one "
                f"--skills (got {len(self.skills)})"
            )
        if "temperature" not in self.model_fields_set:
            # p_opt is the mass the agent's sampling rule puts on optimal commands: at the
            # training temperature (1.0), not greedy (where it is just top-1 again)
            self.temperature = 1.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mode(self) -> ActionMode:
        """The action mode (``rollout.action_mode``, resolved)."""
        return self.rollout.action_mode

    def env_options(self) -> dict[str, Any]:
        """Constructor options of the raw env."""
        opts = dict(self.env_kwargs)
        if self.max_turns is not None:
            opts["max_turns"] = self.max_turns
        if self.difficulty is not None:
            opts["difficulty"] = self.difficulty
        return opts
