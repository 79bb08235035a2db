"""The one turn contract: how an env turn becomes model input and a reply becomes an action.

Exports ``TurnConfig``, ``TurnPrompt``, ``PromptSegment``, ``PastTurn``, ``build_turn_prompt``,
``default_system_prompt``, ``parse_action``, ``ParseOutcome``, ``ScoreChoice``,
``choose_action``, ``candidate_scores``, ``choice_probabilities``, ``EpisodeRecorder``,
``penalize_invalid``, ``RolloutSession``, ``EnvPool``, ``EnvLease``, ``episode_metrics``,
``validation_metrics``, ``ScriptedAgent``, ``record_episode`` and ``record_episodes``.

Used by every trainer (``reskill_local``, ``reskill_verl``), ``reskill eval`` and
``reskill creator record``: if two places built a prompt or parsed a reply, a policy would be
trained and evaluated as different agents. Modules, one concept each: ``config`` (the
settings), ``prompt`` (segments, layouts, system prompts), ``parse`` (reply -> action),
``choice`` (score-mode rule), ``recorder`` (the ``Episode`` record, training rewards),
``session`` (one episode driven through all of it), ``pool`` (engines reused across
rollouts), ``metrics`` (the per-step episode metric namespace), ``scripted`` (agents that send
ready commands, e.g. ``reskill creator record``, played through a session).
"""

from __future__ import annotations

from reskill_gym.rollout.choice import (
    ScoreChoice,
    candidate_scores,
    choice_probabilities,
    choose_action,
)
from reskill_gym.rollout.config import TurnConfig
from reskill_gym.rollout.metrics import episode_metrics, validation_metrics
from reskill_gym.rollout.parse import ParseOutcome, parse_action
from reskill_gym.rollout.pool import EnvLease, EnvPool
from reskill_gym.rollout.prompt import (
    PastTurn,
    PromptSegment,
    TurnPrompt,
    build_turn_prompt,
    default_system_prompt,
)
from reskill_gym.rollout.recorder import EpisodeRecorder, penalize_invalid
from reskill_gym.rollout.scripted import ScriptedAgent, record_episode, record_episodes
from reskill_gym.rollout.session import RolloutSession

__all__ = [
    "TurnConfig",
    "TurnPrompt",
    "PromptSegment",
    "PastTurn",
    "build_turn_prompt",
    "default_system_prompt",
    "parse_action",
    "ParseOutcome",
    "ScoreChoice",
    "choose_action",
    "candidate_scores",
    "choice_probabilities",
    "EpisodeRecorder",
    "penalize_invalid",
    "RolloutSession",
    "EnvPool",
    "EnvLease",
    "episode_metrics",
    "validation_metrics",
    "ScriptedAgent",
    "record_episode",
    "record_episodes",
]
