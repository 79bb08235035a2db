"""The ``reskill:`` section of a veRL run config, as one validated pydantic model.

Exports ``ReskillVerlConfig``, ``CoEvolutionSettings``, ``check_trainer_config``,
``ENV_SECTION`` and ``AGENT_LOOP_NAME``.

veRL hands every agent loop and the trainer the whole Hydra config; our settings live under
one top-level key (``reskill``) so they never collide with veRL's. Unknown keys are rejected
(a typo fails at start with the field name), and every field carries its help text.
``reskill.rollout`` is the turn contract's :class:`reskill_gym.rollout.TurnConfig` (layout,
action format, history window, invalid-action penalty, ...): the same block a local run and
``reskill eval`` read, so a policy is trained and evaluated as the same agent.

>>> cfg = ReskillVerlConfig.from_trainer_config(
...     {"reskill": {"env": "search", "max_turns": 4, "rollout": {"layout": "concat"}}})
>>> cfg.env, cfg.max_turns, cfg.rollout.layout, cfg.rollout.resolve(cfg.env).action_format
('search', 4, 'concat', 'passthrough')
>>> ReskillVerlConfig().rollout.invalid_action_penalty, ReskillVerlConfig().grpo_double_normalize
(0.1, False)
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reskill_gym.coevolve import CoEvolutionConfig
from reskill_gym.rollout import TurnConfig
from reskill_gym.skills.bundle import (
    DEFAULT_BUDGET_CHARS,
    DEFAULT_MAX_ACTIVE_SKILLS,
    BundleTemplate,
    resolve_template,
)

__all__ = [
    "ReskillVerlConfig",
    "CoEvolutionSettings",
    "check_trainer_config",
    "ENV_SECTION",
    "AGENT_LOOP_NAME",
]

logger = logging.getLogger(__name__)

ENV_SECTION = "reskill"
AGENT_LOOP_NAME = "reskill_env"


class CoEvolutionSettings(BaseModel):
    """Where the co-evolution state lives and how it is configured."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(
        True,
        description="Run skill-policy co-evolution (named Ray actor, version tests, creator). "
        "False: every rollout sees the fixed `skills` library (the plain-GRPO / "
        "frozen-library baseline); the actor then only collects each step's episodes for "
        "the metrics.",
    )
    library_dir: str | None = Field(
        None,
        description="Working skill library (with history). Initialised from `skills` on first "
        "use; None: <trainer.default_local_dir>/reskill/library.",
    )
    checkpoint_dir: str | None = Field(
        None,
        description="Where coevolution.json is written after every step and read on resume; "
        "None: <trainer.default_local_dir>/reskill.",
    )
    actor_name: str | None = Field(
        None,
        description="Name of the Ray actor. None: reskill_coevolution_<hash of the run folder "
        "<trainer.default_local_dir>/reskill>, so two jobs on one cluster never share one "
        "while a resumed run finds its own.",
    )
    namespace: str = Field("reskill", description="Ray namespace of the actor.")
    actor_num_cpus: float = Field(
        0.0,
        ge=0.0,
        description="CPUs Ray reserves for the actor (the creator's LLM calls are I/O bound).",
    )
    config: CoEvolutionConfig = Field(
        default_factory=CoEvolutionConfig,
        description="The core co-evolution settings (reskill_gym.coevolve.CoEvolutionConfig: "
        "tester:, creator:, reservoir_size, seed, ...), validated with the rest of the "
        "section; its checkpoint_dir is set from reskill.coevolution.checkpoint_dir.",
    )

    @field_validator("config", mode="before")
    @classmethod
    def _no_checkpoint_dir(cls, v: Any) -> Any:
        if isinstance(v, Mapping) and v.get("checkpoint_dir") is not None:
            raise ValueError(
                "reskill.coevolution.config.checkpoint_dir: set reskill.coevolution.checkpoint_dir "
                "instead (the actor resolves it against trainer.default_local_dir)"
            )
        return v

    def resolved_actor_name(self, run_root: str | os.PathLike[str] | None) -> str:
        """``actor_name``, or the run's own name derived from its folder ``run_root``.

        >>> s = CoEvolutionSettings()
        >>> s.resolved_actor_name("/runs/a") == s.resolved_actor_name("/runs/a/")
        True
        >>> s.resolved_actor_name("/runs/a") != s.resolved_actor_name("/runs/b")
        True
        >>> CoEvolutionSettings(actor_name="mine").resolved_actor_name(None)
        'mine'
        """
        if self.actor_name:
            return self.actor_name
        if run_root is None:
            raise ValueError(
                "reskill.coevolution.actor_name is unset and no run folder is known to name "
                "the co-evolution actor after"
            )
        digest = hashlib.sha256(os.path.normpath(os.fspath(run_root)).encode()).hexdigest()
        return f"reskill_coevolution_{digest[:12]}"

    def coevolution_config(self, checkpoint_dir: str | None) -> CoEvolutionConfig:
        """The core config with the checkpoint folder the actor resolved."""
        return self.config.model_copy(update={"checkpoint_dir": checkpoint_dir})


class ReskillVerlConfig(BaseModel):
    """What the ReSkill agent loop and trainer hook read from ``config.reskill``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    env: str = Field(
        "alfworld",
        description="Environment of rows whose extra_info names none: a registered env "
        "(`reskill env list`) or its Gymnasium id.",
    )
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the environment (difficulty, source, data_dir, "
        "max_turns, ...), see reskill_gym.envs; applied to `env` only.",
    )
    skills: str | None = Field(
        "seed",
        description="Initial skill library: 'seed' (the env's seed library), a folder of "
        "skill folders / a library, or null (no skills).",
    )
    max_turns: int | None = Field(
        None,
        ge=1,
        description="Agent turns per episode (null: the env's max_turns; also capped by "
        "rollout.multi_turn.max_assistant_turns when that is set).",
    )
    max_tokens_per_turn: int = Field(
        512, ge=1, description="Cap on generated tokens per assistant turn."
    )
    rollout: TurnConfig = Field(
        default_factory=TurnConfig,
        description="The turn contract (reskill_gym.rollout.TurnConfig): layout per_turn (one "
        "sample per turn, needs trainer.use_v1=true) or concat (one growing chat per episode), "
        "action_format, history_turns, max_observation_chars, show_admissible, include_skills, "
        "system_prompt, invalid_action_penalty.",
    )
    update_policy: bool = Field(
        True,
        description="False: frozen-policy evolution (the published skip_policy_update): "
        "rollouts, reservoir, creator and version tests run, the actor is never updated, no "
        "reference model is built and no old log-probs are computed "
        "(see reskill_verl.trainer.freeze_policy_config). `reskill evolve` does the same "
        "with any eval agent, without veRL.",
    )
    record_episodes: bool = Field(
        True,
        description="Write every step's episodes (turns, replies, skills shown, rewards) to "
        "<default_local_dir>/reskill/episodes/ as compressed JSONL with an index, for "
        "`reskill view` and scripts.",
    )
    grpo_double_normalize: bool = Field(
        False,
        description="After veRL's GRPO (episode-level group normalisation), whiten the "
        "advantages over every trained token of the batch (mean 0, variance 1), as the "
        "published ReSkill runs do. Groups whose episodes all got the same return then get a "
        "small non-zero advantage (minus the batch mean).",
    )
    max_active_skills: int = Field(
        DEFAULT_MAX_ACTIVE_SKILLS, ge=0, description="Skills per turn (bundle cap)."
    )
    skill_budget_chars: int | None = Field(
        DEFAULT_BUDGET_CHARS,
        ge=0,
        description="Character cap on the rendered skill block (None: no cap).",
    )
    template: str | dict[str, Any] = Field(
        "compact",
        description="How the skill block is rendered: 'compact' (### name + action), "
        "'published' (the published ReSkill '## Available Skills' section with when_to_use, "
        "action, examples, the check-when_to_use instruction and '(no skills available)'), "
        "or a mapping {base: published, show_examples: false, placeholder: ''} "
        "(reskill_gym.skills.bundle.resolve_template).",
    )
    env_pool_size: int = Field(
        64,
        ge=0,
        description="Idle environments kept per worker process and env name (engines are "
        "expensive to start: ALFWorld ~15-20 s per worker).",
    )
    env_threads: int = Field(
        64, ge=1, description="Threads per worker process running blocking env calls."
    )
    max_failed_session_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Largest share of a training step's (or a validation pass's) sessions "
        "that may fail with an environment error (no data, no Java, retriever down, engine "
        "crash) before training stops with an error naming the failures. A failed session "
        "yields no sample: veRL trains on the rest of its group and leaves it out of its "
        "own averages, so the episode metrics count it as a failure and this cap keeps a "
        "broken node from biasing every number.",
    )
    validation: Literal["project", "published"] = Field(
        "project",
        description="Which library version a validation rollout uses. 'project': HEAD, the "
        "live library (a test's candidate is validated once accepted). 'published': while a "
        "version test runs, each validation rollout draws its arm from the tester's current "
        "assignment probabilities, as the published validation envs Thompson-sample every "
        "slot between the old and the new library (never recorded by the tester); HEAD "
        "otherwise. Either way the pass's success per split, task type and topic is logged.",
    )
    coevolution: CoEvolutionSettings = Field(default_factory=CoEvolutionSettings)

    @field_validator("env")
    @classmethod
    def _env(cls, v: str) -> str:
        from reskill_gym.envs.registration import get_spec

        return get_spec(v).name  # unknown: a close match and the registered list

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        resolve_template(v, where="reskill.template")  # unknown name: error, close match
        return v

    @property
    def bundle_template(self) -> BundleTemplate:
        """``template`` resolved (hashable: part of the env pool key)."""
        return resolve_template(self.template, where="reskill.template")

    @model_validator(mode="after")
    def _check(self) -> ReskillVerlConfig:
        if self.rollout.action_mode != "generate":
            raise ValueError(
                "reskill.rollout.action_mode: veRL rollouts generate replies; score mode "
                "(choosing among admissible actions by log-probs) is the local trainer's"
            )
        from reskill_gym.envs.registration import check_env_kwargs

        # a key the env does not take (alfworld's difficulty left over after reskill.env=gym)
        # fails here, with its name, instead of in every Ray worker's first reset
        check_env_kwargs(self.env, self.env_kwargs, "reskill.env_kwargs")
        return self

    @classmethod
    def from_trainer_config(cls, config: Any) -> ReskillVerlConfig:
        """Read ``config.reskill`` from a veRL (Hydra/OmegaConf) config or a plain mapping."""
        section = _get(config, ENV_SECTION)
        if section is None:
            return cls()
        return cls.model_validate(_to_container(section))


def check_trainer_config(config: Any, settings: ReskillVerlConfig) -> None:
    """Fail early on combinations veRL cannot run (names the keys to change).

    ``per_turn`` returns several samples per trajectory, which only veRL's V1 trainer
    (``trainer.use_v1=true``, TransferQueue) stores; the legacy trainer would die later with
    an ``AttributeError`` inside its post-processing.

    >>> check_trainer_config({"trainer": {"use_v1": False}}, ReskillVerlConfig())
    Traceback (most recent call last):
    ...
    ValueError: reskill.rollout.layout=per_turn needs veRL's V1 trainer (trainer.use_v1=true): the legacy trainer takes one sample per trajectory. Set trainer.use_v1=true or reskill.rollout.layout=concat.
    """
    trainer = _get(config, "trainer") or {}
    use_v1 = _get(trainer, "use_v1")
    legacy = use_v1 is not None and not bool(use_v1)
    if legacy and (settings.rollout.invalid_action_penalty > 0 or settings.grpo_double_normalize):
        logger.warning(
            "trainer.use_v1=false: the reskill_sync trainer (invalid-action penalty, "
            "grpo_double_normalize, run log for `reskill report`) is V1-only; veRL's legacy "
            "trainer uses its own GRPO"
        )
    if settings.rollout.layout == "per_turn" and legacy:
        raise ValueError(
            "reskill.rollout.layout=per_turn needs veRL's V1 trainer (trainer.use_v1=true): the "
            "legacy trainer takes one sample per trajectory. Set trainer.use_v1=true or "
            "reskill.rollout.layout=concat."
        )


def _get(config: Any, key: str) -> Any:
    if isinstance(config, Mapping):
        return config.get(key)
    getter = getattr(config, "get", None)
    return getter(key) if getter is not None else getattr(config, key, None)


def _to_container(section: Any) -> Any:
    if isinstance(section, Mapping) and not hasattr(section, "_metadata"):
        return dict(section)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(section, resolve=True)
