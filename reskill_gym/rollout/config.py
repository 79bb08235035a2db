"""How a turn is shown to the agent and how its reply is read: one config for every trainer
and the evaluator.

Exports ``TurnConfig``, ``TurnFormat``, ``Layout``, ``ActionMode``, ``ActionFormat``,
``ScoreNorm`` and the group defaults ``DEFAULT_GROUP_SIZE``, ``DEFAULT_GROUPS_PER_STEP``,
``GROUP_SIZE_HELP``, ``GROUPS_PER_STEP_HELP`` (rollouts per task and tasks per step: one
definition for the local trainer, ``reskill evolve`` and scripted recordings).

The same block appears as ``rollout:`` in a local run config, ``reskill.rollout:`` in a veRL
config and ``rollout:`` in an eval config, so a policy is trained and evaluated as the same
agent. Fields left ``None`` are resolved per environment by :meth:`TurnConfig.resolve`
(Search parses its own ``<search>``/``<answer>`` tags; the other envs want ``<action>``).

>>> cfg = TurnConfig(history_turns=50).resolve("alfworld")
>>> cfg.layout, cfg.action_format, cfg.show_admissible
('per_turn', 'tagged', True)
>>> TurnConfig(action_mode="score").resolve("alfworld").show_admissible
False
>>> TurnConfig().resolve("search").action_format
'passthrough'
>>> p = TurnConfig(format="published").resolve("search")
>>> p.action_format, p.system_prompt
('published', '')
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "TurnConfig",
    "TurnFormat",
    "Layout",
    "ActionMode",
    "ActionFormat",
    "ScoreNorm",
    "DEFAULT_GROUP_SIZE",
    "DEFAULT_GROUPS_PER_STEP",
    "GROUP_SIZE_HELP",
    "GROUPS_PER_STEP_HELP",
]

#: Rollouts per task: the GRPO group, which the version test splits between the arms.
DEFAULT_GROUP_SIZE = 4
#: Tasks (groups) per step.
DEFAULT_GROUPS_PER_STEP = 2
GROUP_SIZE_HELP = (
    "Rollouts per task: the GRPO group (n), which a version test splits between the library "
    "versions (published 8)."
)
GROUPS_PER_STEP_HELP = "Tasks per step; rollouts per step = group_size x groups_per_step."

TurnFormat = Literal["project", "published"]
Layout = Literal["per_turn", "concat"]
ActionMode = Literal["generate", "score"]
ActionFormat = Literal["tagged", "lenient", "passthrough", "published"]
ScoreNorm = Literal["sum", "mean"]


class TurnConfig(BaseModel):
    """The turn contract's settings (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    format: TurnFormat = Field(
        "project",
        description="project: the project's prompts (a system message with the env's role and "
        "the reply format, labelled user segments, clipped observations) and parsers (an "
        "invalid reply does not step the env). published: the published ReSkill prompts, one "
        "user message and no system message, its history and action-list layout, its "
        "character trimming (prompt_chars) and projections (an invalid reply still steps the "
        "env); needs layout per_turn and action_mode generate (reskill_gym.rollout.published).",
    )
    layout: Layout = Field(
        "per_turn",
        description="per_turn: every turn is its own sample = system + task + the last "
        "`history_turns` turns + the current observation + skills + admissible actions (the "
        "published system's layout, after verl-agent). concat: one multi-turn chat that grows "
        "by a user and an assistant message per turn.",
    )
    action_mode: ActionMode = Field(
        "generate",
        description="generate: the model writes a reply that is parsed into an action. score: "
        "every admissible action is scored by the model's token log-probabilities and one is "
        "chosen by the choice rule (small models; no parsing).",
    )
    action_format: ActionFormat | None = Field(
        None,
        description="generate mode: tagged (the model may think in <think>...</think> and must "
        "answer <action>...</action>; anything else is an invalid turn), lenient (an exact, "
        "else contained admissible command, else the first line: for models that cannot "
        "follow tags), passthrough (the env parses the reply: Search), published (the "
        "published projections; format published). None: published under format published, "
        "else passthrough for search, tagged otherwise.",
    )
    score_norm: ScoreNorm = Field(
        "mean",
        description="score mode: a command's score is the mean (length-normalised) or the sum "
        "of its token log-probs. Summed scores favour the shortest commands: SmolLM2 puts ~90 %"
        " of ALFWorld's first turn on 'inventory'/'help' with 'sum'.",
    )
    history_turns: int = Field(
        3,
        ge=0,
        description="per_turn: earlier turns (observation, action) shown (published: 50 for "
        "ALFWorld/ScienceWorld, 30 for Search). concat shows the whole episode.",
    )
    max_observation_chars: int = Field(
        4000,
        ge=100,
        description="The current observation is cut to this many characters (project format).",
    )
    max_history_observation_chars: int = Field(
        500,
        ge=0,
        description="per_turn: each history observation is cut to this many characters "
        "(project format; published shows them whole).",
    )
    prompt_chars: int | None = Field(
        None,
        ge=200,
        description="format published: the prompt is trimmed to this many characters, oldest "
        "history lines first (published: 2.5 x data.max_prompt_length for ALFWorld and "
        "Search, 1.8 x for ScienceWorld). None: no character trimming.",
    )
    show_admissible: bool | None = Field(
        None,
        description="List the admissible actions in the prompt. None: in generate mode only "
        "(score mode scores them anyway).",
    )
    include_skills: bool = Field(True, description="Show the skill block (its own segment).")
    system_prompt: str | None = Field(
        None,
        description="System message; None: the env's default for the action format (format "
        "published: none); '' sends no system message.",
    )
    invalid_action_penalty: float = Field(
        0.1,
        ge=0.0,
        description="Subtracted from the advantage (after the GRPO normalisation) of each turn "
        "whose reply carried no valid action (published 0.1; 0 turns it off); the env return "
        "the version tester sees is not changed (reskill_gym.rollout.penalize_invalid).",
    )
    record_prompts: bool = Field(
        False,
        description="Keep each turn's user message in its record (Turn.prompt): the published "
        "assertion grading matches observation checks against the prompt, as published. "
        "Costs memory: up to prompt_chars characters per turn in the reservoir.",
    )
    record_scores: bool = Field(
        False,
        description="score mode: keep every candidate's score in the turn record (evaluation "
        "turns it on so every figure can be recomputed from episodes.jsonl).",
    )

    @model_validator(mode="after")
    def _check(self) -> TurnConfig:
        if self.action_mode == "score" and self.action_format == "passthrough":
            raise ValueError(
                "action_format: passthrough needs action_mode generate (score mode chooses "
                "among admissible actions; the env does not parse anything)"
            )
        published = self.format == "published"
        if published and (self.layout != "per_turn" or self.action_mode != "generate"):
            raise ValueError(
                "format: published needs layout: per_turn and action_mode: generate (the "
                "published system samples one reply per turn, each turn its own prompt)"
            )
        if (self.action_format == "published") != published and self.action_format is not None:
            raise ValueError(
                f"action_format: {self.action_format} does not go with format: {self.format}; "
                "set action_format: null (the format picks its parser)"
            )
        return self

    def for_agent(self, env_name: str, *, local: bool) -> TurnConfig:
        """This block with ``action_mode`` filled in when the config left it unset.

        The one definition of that default (``reskill train``, ``reskill evolve`` and
        ``reskill eval`` call it): a local model scores the admissible commands on envs that
        list them (the env's ``EnvSpec.local_action_mode``), any other agent generates.

        >>> TurnConfig().for_agent("alfworld", local=True).action_mode
        'score'
        >>> TurnConfig(action_mode="generate").for_agent("alfworld", local=True).action_mode
        'generate'
        >>> TurnConfig().for_agent("search", local=True).action_mode
        'generate'
        """
        if "action_mode" in self.model_fields_set:
            return self
        from reskill_gym.envs.registration import get_spec

        mode = get_spec(env_name).local_action_mode if local else "generate"
        return TurnConfig.model_validate(
            self.model_dump(exclude_unset=True) | {"action_mode": mode}
        )

    def resolve(self, env_name: str) -> TurnConfig:
        """Fill the ``None`` fields with ``env_name``'s defaults (idempotent)."""
        from reskill_gym.rollout.prompt import default_system_prompt

        fmt = self.action_format
        if self.format == "published":
            from reskill_gym.rollout.published import PUBLISHED_ENVS

            if env_name not in PUBLISHED_ENVS:
                raise ValueError(
                    f"format: published has prompts for {', '.join(PUBLISHED_ENVS)}, "
                    f"not {env_name!r}; use format: project"
                )
            fmt = "published"
        if fmt is None:
            from reskill_gym.envs.registration import find_spec

            # passthrough: the engine parses the reply itself (Search-R1's <search>/<answer>)
            spec = find_spec(env_name)
            fmt = spec.reply_format if spec is not None else "tagged"
            if self.action_mode == "score":
                fmt = "lenient"
        show = self.show_admissible
        if show is None:
            show = self.action_mode == "generate"
        system = self.system_prompt
        if system is None:
            system = (
                "" if fmt == "published" else default_system_prompt(env_name, fmt, self.action_mode)
            )
        return self.model_copy(
            update={"action_format": fmt, "show_admissible": show, "system_prompt": system}
        )
