"""Episode records: what a rollout leaves behind for the skill creator and the version tester.

Exports ``Turn`` and ``Episode``. One schema is shared by the wrapper (which fills the skill
fields), the trainers (which fill rewards and versions), the reservoir (which persists them as
JSON lines) and the creator (which reads them), so every component agrees on one record.

>>> ep = Episode(episode_id="e1", env_id="ReSkill-ALFWorld-v0", task_id="t1", task="put a mug in cabinet",
...              task_type="pick_and_place_simple", turns=[Turn(observation="You are in a room.",
...              action="go to cabinet 1", reward=0.0, skill_ids=["open-before-take"])], reward=1.0, won=True)
>>> ep.success
True
>>> Episode.model_validate_json(ep.model_dump_json()) == ep
True
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Turn", "Episode"]


class Turn(BaseModel):
    """One agent turn: the bare observation the agent acted on, its action and the result."""

    model_config = ConfigDict(extra="allow")

    observation: str = Field(description="Observation before the action, without the skill block.")
    action: str = Field(description="The action the agent took.")
    reward: float = Field(0.0, description="Reward returned by the step.")
    skill_ids: list[str] = Field(default_factory=list, description="Skills in this turn's bundle.")
    invalid_action: bool = Field(False, description="The engine rejected the action.")


class Episode(BaseModel):
    """A finished (or dropped) episode with the skill library version it ran under."""

    model_config = ConfigDict(extra="allow")

    episode_id: str
    env_id: str
    task_id: str
    task: str = Field(description="Goal text shown to the agent.")
    task_type: str = ""
    split: str = "train"
    library_version: str | None = Field(None, description="Skill library version the episode saw.")
    arm: str | None = Field(None, description="Version-test arm, when a test was live.")
    group_id: str | None = Field(None, description="GRPO group the rollout belonged to.")
    step: int = Field(0, description="Training step that produced the episode.")
    turns: list[Turn] = Field(default_factory=list)
    final_observation: str = ""
    reward: float = Field(0.0, description="Episode return.")
    won: bool = False
    error: str | None = Field(None, description="Why the episode was dropped, if it was.")

    @property
    def success(self) -> bool:
        """Success as the engine reports it (``won``)."""
        return self.won

    @property
    def actions(self) -> list[str]:
        return [t.action for t in self.turns]

    @property
    def skills_fired(self) -> set[str]:
        return {s for t in self.turns for s in t.skill_ids}
