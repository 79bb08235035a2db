"""Episode records: what a rollout leaves behind for trainers, the evaluator, the version
tester and the skill creator.

Exports ``Turn``, ``Episode``, ``ParseHow`` and ``StopReason``.

One schema, written by one recorder (:class:`reskill_gym.rollout.EpisodeRecorder`) for every
trainer, ``reskill eval`` and ``reskill creator record``, read by the reservoir, the tester,
the creator and the reports. Fields are declared (``extra="forbid"``): a value that is not
in the schema is a bug to fix here, not a side channel.

>>> ep = Episode(episode_id="e1", env_id="ReSkill-ALFWorld-v0", task_id="t1", task="put a mug in cabinet",
...              task_type="pick_and_place_simple", turns=[Turn(observation="You are in a room.",
...              action="go to cabinet 1", reward=0.0, skill_ids=["open-before-take"])], reward=1.0, won=True)
>>> ep.success, ep.valid_action_ratio
(True, 1.0)
>>> Episode.model_validate_json(ep.model_dump_json()) == ep
True
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Turn", "Episode", "ParseHow", "StopReason"]

StopReason = Literal["done", "truncated", "turn_cap", "length", "error", ""]
"""Why an episode ended (see ``Episode.stop_reason``; empty while it runs)."""

ParseHow = Literal[
    "tagged", "exact", "contained", "raw", "passthrough", "empty", "projected", "score", "scripted"
]
"""How a reply became an action (see :func:`reskill_gym.rollout.parse_action`): ``tagged``
(inside ``<action>...</action>``), ``exact`` / ``contained`` / ``raw`` (lenient parsing),
``passthrough`` (the env parses the reply itself), ``empty`` (no action found), ``projected``
(the published format without an action tag: the reply's last 30 characters ran), ``score``
(chosen among admissible actions by the model's log-probabilities), ``scripted`` (a
programmed agent)."""


class Turn(BaseModel):
    """One agent turn: what the agent saw (bare), what it replied, what ran and the result."""

    model_config = ConfigDict(extra="forbid")

    observation: str = Field(description="Observation before the action, without the skill block.")
    action: str = Field(description="The command sent to the env ('' when the reply had none).")
    reward: float = Field(0.0, description="Reward returned by the step (0 when nothing ran).")
    skill_ids: list[str] = Field(default_factory=list, description="Skills in this turn's bundle.")
    invalid_action: bool = Field(False, description="The engine rejected the command.")
    reply: str = Field("", description="The model's raw reply (score mode: the chosen command).")
    prompt: str | None = Field(
        None,
        description="The user message the reply answered, when the rollout records prompts "
        "(rollout.record_prompts; the published assertion grading reads it).",
    )
    parse: ParseHow = Field("scripted", description="How the reply became the action.")
    valid: bool = Field(
        True,
        description="The reply carried an action in the required format. An invalid turn "
        "does not step the env (the agent is told why on the next turn), except in the "
        "published format, which steps it with what its projection found (``stepped``).",
    )
    stepped: bool | None = Field(
        None,
        description="The env ran ``action``. None: exactly when the reply was valid (the "
        "project's formats); true on a published-format invalid turn, which still runs.",
    )
    choice_prob: float | None = Field(
        None, description="Score mode: probability of the chosen command under the choice rule."
    )
    candidates: list[str] | None = Field(
        None, description="Score mode, when recorded: the admissible commands scored."
    )
    scores: list[float] | None = Field(
        None, description="Score mode, when recorded: each candidate's score (same order)."
    )
    input_tokens: int = Field(0, description="Prompt tokens the agent read (when known).")
    output_tokens: int = Field(0, description="Tokens the agent generated (when known).")
    cost_usd: float = Field(0.0, description="Metered cost of this turn's model calls.")
    retries: int = Field(0, description="Re-asks of this turn after agent failures.")

    @property
    def ran(self) -> bool:
        """The env ran this turn's ``action`` (see ``stepped``)."""
        return self.valid if self.stepped is None else self.stepped


class Episode(BaseModel):
    """A finished (or dropped) episode with the skill library version it ran under."""

    model_config = ConfigDict(extra="forbid")

    episode_id: str
    env_id: str
    task_id: str
    task: str = Field("", description="Goal text shown to the agent.")
    task_type: str = ""
    split: str = "train"
    seed: int | None = Field(None, description="Seed the env was reset with.")
    library_version: str | None = Field(None, description="Skill library version the episode saw.")
    arm: str | None = Field(None, description="Version-test arm, when a test was live.")
    group_id: str | None = Field(None, description="GRPO group the rollout belonged to.")
    step: int = Field(0, description="Training step that produced the episode.")
    turns: list[Turn] = Field(default_factory=list)
    final_observation: str = ""
    reward: float = Field(0.0, description="Episode return (sum of env rewards).")
    won: bool = False
    stop_reason: StopReason = Field(
        "",
        description="done (the env ended it), truncated (the env's horizon), turn_cap (the "
        "rollout's turn cap), length (the token budget), error (see ``error``).",
    )
    error: str | None = Field(None, description="Why the episode was dropped, if it was.")

    @property
    def success(self) -> bool:
        """Success as the engine reports it (``won``)."""
        return self.won

    @property
    def actions(self) -> list[str]:
        """Commands sent to the env (invalid turns that ran nothing are left out)."""
        return [t.action for t in self.turns if t.ran]

    @property
    def skills_fired(self) -> set[str]:
        return {s for t in self.turns for s in t.skill_ids}

    @property
    def invalid_turns(self) -> int:
        """Turns whose reply carried no valid action (penalised in training)."""
        return sum(not t.valid for t in self.turns)

    @property
    def valid_action_ratio(self) -> float:
        """Share of turns with a valid action (1.0 for an episode without turns)."""
        return 1.0 - self.invalid_turns / len(self.turns) if self.turns else 1.0

    @property
    def parse_counts(self) -> dict[str, int]:
        """Turns per parse outcome."""
        return dict(Counter(t.parse for t in self.turns))
