"""The configuration of ``reskill eval``: what runs, under which conditions, how it is played.

Exports ``EvalConfig``, ``ExpertConfig``, ``ConditionName``, ``CONDITIONS``,
``EvalAbortedError``, ``NO_SKILLS``, ``load_eval_config``, ``merge_eval_config`` and
``validate_eval_config``.

``EvalConfig`` is one evaluation run (success metric or ``--metric expert``); its ``rollout``
block is the turn contract's ``TurnConfig``, the same block a training config has, so a
policy is evaluated with the prompt, parser and choice rule it was trained with.
``ExpertConfig`` is its ``expert:`` block (how expert-labelled states are drawn and which
conditions are scored, see :mod:`reskill_gym.evaluation.expert`). The models only validate;
running is :mod:`reskill_gym.evaluation.runner`'s and :mod:`reskill_gym.evaluation.expert`'s.

``load_eval_config`` is the one way an eval config is read (``reskill eval --config``, the
benchmark scripts): a YAML file of ``EvalConfig`` fields, ``key=value`` overrides with
dotted paths, then the command line's flags, merged and checked the way ``reskill train``
and ``reskill evolve`` read theirs (:func:`reskill_gym.runfolder.merge_config`).

>>> EvalConfig(env="alfworld", agent="python:m:f", skills=["skills/alfworld"]).mode
'generate'
>>> ExpertConfig(conditions=["placebo"]).conditions
['library', 'placebo']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    computed_field,
    field_validator,
    model_serializer,
    model_validator,
)

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
    "load_eval_config",
    "merge_eval_config",
    "validate_eval_config",
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


def _fold_flat_keys(data: Any) -> Any:
    """Move the flat rollout keys of ``data`` (``mode``, ``score_norm``, ...) into its
    ``rollout`` block; a flat key that contradicts the block is a ``ValueError``."""
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
        return _fold_flat_keys(data)

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
        r = self.rollout.for_agent(env.name, local=spec.kind == "local")
        if "record_scores" not in r.model_fields_set:
            r = TurnConfig.model_validate(
                r.model_dump(exclude_unset=True) | {"record_scores": True}
            )
        self.rollout = r
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

    @model_serializer(mode="wrap")
    def _no_secrets_in_files(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        # A JSON dump is what run folders store (config.json, summary.json): the value of a
        # credential-named key (llm.api_key, an env_kwargs token) becomes [REDACTED] there,
        # as in a training run's config.yaml; the live config keeps it for the agent.
        data = handler(self)
        if not info.mode_is_json() or not isinstance(data, dict):
            return data
        from reskill_gym.runfolder import config_for_file

        return config_for_file(data, {})

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


# =========================================================================================
# Loading: YAML file + key=value overrides + command-line flags
# =========================================================================================
def _schema(extra_keys: Sequence[str]) -> dict[str, Any]:
    """Top-level keys an eval config file may hold: EvalConfig's fields, the flat rollout
    keys it folds into ``rollout``, and the caller's own keys (``out``, ...)."""
    fields: dict[str, Any] = {n: f.annotation for n, f in EvalConfig.model_fields.items()}
    return fields | dict.fromkeys(_FLAT_ROLLOUT_KEYS, Any) | dict.fromkeys(extra_keys, Any)


def _overlay(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s values laid over it (mappings merged key by key; None = unset)."""
    out = dict(base)
    for key, value in top.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            if not _overlay({}, value):  # a block of unset flags changes nothing
                continue
            under = out.get(key)
            out[key] = _overlay(under if isinstance(under, dict) else {}, value)
        else:
            out[key] = value
    return out


def merge_eval_config(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    *,
    flags: Mapping[str, Any] | None = None,
    extra_keys: Sequence[str] = ("out",),
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Merge a YAML file (or nothing), ``key=value`` overrides and ``flags``; check the keys.

    Later wins: the file, then the overrides (dotted paths: ``rollout.score_norm=sum``),
    then ``flags`` (a nested mapping of the values the command line gave; None = not given).
    Returns the ``EvalConfig`` input, the values of ``extra_keys`` (keys the caller reads
    itself, such as ``out``) and the source name for messages. An unknown key fails with
    a close match (``ConfigError``); values are validated by :func:`validate_eval_config`.

    >>> data, extra, _ = merge_eval_config(
    ...     None, ["rollout.score_norm=sum", "out=runs/x"], flags={"env": "alfworld", "seeds": None}
    ... )
    >>> data, extra
    ({'rollout': {'score_norm': 'sum'}, 'env': 'alfworld'}, {'out': 'runs/x'})
    >>> merge_eval_config(None, ["rollout.score_nrm=sum"])
    Traceback (most recent call last):
    ...
    reskill_gym.runfolder.ConfigError: override: unknown key 'rollout.score_nrm' (did you mean 'rollout.score_norm'?)
    """
    from reskill_gym.runfolder import ConfigError, check_keys, merge_config

    schema = _schema(extra_keys)
    merged, source = merge_config(path, overrides, schema, sections=False)
    try:  # the file's flat keys into rollout:, so a flag's rollout value replaces them
        merged = _fold_flat_keys(merged)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    top = {k: v for k, v in (flags or {}).items() if v is not None}
    check_keys(top, schema, "", "flags")  # a caller's mistake, not the user's
    data = _overlay(merged, top)
    extra = {k: data.pop(k) for k in extra_keys if k in data}
    return data, extra, source


def validate_eval_config(data: Mapping[str, Any], source: str = "config") -> EvalConfig:
    """``EvalConfig`` from merged input; a bad value is a ``ConfigError`` naming its key."""
    from reskill_gym.runfolder import ConfigError, format_validation

    for key in ("env", "agent"):
        if data.get(key) is None:
            raise ConfigError(f"{source}: {key} is required (--{key} or {key}: in --config)")
    try:
        return EvalConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, source)) from None
    except ValueError as exc:  # a check outside pydantic's error list (an unknown env, ...)
        raise ConfigError(f"{source}: {exc}") from None


def load_eval_config(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    *,
    flags: Mapping[str, Any] | None = None,
    extra_keys: Sequence[str] = ("out",),
) -> tuple[EvalConfig, dict[str, Any]]:
    """Read an eval config: :func:`merge_eval_config`, then :func:`validate_eval_config`.

    Returns the config and the values of ``extra_keys`` given (``{"out": ...}``).

    >>> cfg, extra = load_eval_config(
    ...     None, ["env=alfworld", "agent=python:m:f", "expert.perturbed=2"], flags={"workers": 4}
    ... )
    >>> cfg.workers, cfg.expert.perturbed, extra
    (4, 2, {})
    """
    data, extra, source = merge_eval_config(path, overrides, flags=flags, extra_keys=extra_keys)
    return validate_eval_config(data, source), extra
