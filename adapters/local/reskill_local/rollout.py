"""Batched multi-turn rollouts: every live episode of a step advances together.

Exports ``RolloutSpec``, ``RolloutSettings``, ``TurnSample``, ``Rollout``, ``RolloutStats``,
``run_rollouts`` and ``build_messages``.

Each turn, the prompts of all live episodes go to the policy in one batched call (one packed
scoring pass in ``score`` mode, one ``generate`` in ``generate`` mode), then every env steps.
A rollout is a list of (prompt tokens -> action tokens) turn samples plus the ``Turn``
records the skill creator reads. Prompts follow the chat layout of
:func:`reskill_gym.wrapper.turn_prompt` (system, task, the last few turns, the bare
observation, the skill block as its own segment, optionally the admissible commands), so the
skill block is never part of what the loss trains on: only action tokens are.

An env that raises (``EngineCrashedError`` or anything else) drops its episode: the error is
logged and kept on the rollout, the other episodes go on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import torch

from reskill_gym.episode import Episode, Turn
from reskill_gym.wrapper import strip_skill_block, turn_prompt
from reskill_local.policy import ActionChoice, Policy

__all__ = [
    "RolloutSpec",
    "RolloutSettings",
    "TurnSample",
    "Rollout",
    "RolloutStats",
    "run_rollouts",
    "build_messages",
    "EnvFactory",
]

logger = logging.getLogger(__name__)

EnvFactory = Callable[[str, "str | None"], gym.Env]
"""``make_env(task_id, version) -> env``: a fresh env for one rollout (closed after it)."""


@dataclass(frozen=True)
class RolloutSpec:
    """Which task, skill version and seed one rollout uses."""

    rollout_id: str
    group_id: str
    task_id: str
    version: str | None
    seed: int
    arm: str | None = None


@dataclass(frozen=True)
class RolloutSettings:
    """How prompts are built and actions chosen (a slice of ``GRPOConfig``)."""

    action_mode: Literal["score", "generate"] = "score"
    score_norm: Literal["sum", "mean"] = "sum"
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 24
    history_turns: int = 2
    max_history_observation_chars: int = 300
    max_prompt_tokens: int = 768
    system_prompt: str = ""
    show_admissible: bool = False
    include_skills: bool = True


@dataclass
class TurnSample:
    """One training sample: the prompt the agent saw and the tokens it answered with."""

    prompt_ids: list[int]
    action_ids: list[int]
    old_logprobs: list[float]


@dataclass
class Rollout:
    """One episode as the trainer needs it (samples) and as the creator needs it (turns)."""

    spec: RolloutSpec
    env_id: str = ""
    task: str = ""
    task_type: str = ""
    split: str = "train"
    library_version: str | None = None
    turns: list[Turn] = field(default_factory=list)
    samples: list[TurnSample] = field(default_factory=list)
    parses: list[str] = field(default_factory=list)
    reward: float = 0.0
    won: bool = False
    final_observation: str = ""
    error: str | None = None
    done: bool = False

    @property
    def dropped(self) -> bool:
        return self.error is not None

    def to_episode(self, step: int) -> Episode:
        """The shared ``Episode`` record (bare observations, skills fired, version, arm)."""
        return Episode(
            episode_id=self.spec.rollout_id,
            env_id=self.env_id,
            task_id=self.spec.task_id,
            task=self.task,
            task_type=self.task_type,
            split=self.split,
            library_version=self.library_version,
            arm=self.spec.arm,
            group_id=self.spec.group_id,
            step=step,
            turns=list(self.turns),
            final_observation=self.final_observation,
            reward=self.reward,
            won=self.won,
            error=self.error,
        )


@dataclass
class RolloutStats:
    """Throughput of one batch of rollouts."""

    seconds: float = 0.0
    policy_seconds: float = 0.0
    env_seconds: float = 0.0
    policy_calls: int = 0
    turns: int = 0
    tokens_processed: int = 0
    action_tokens: int = 0
    parses: Counter[str] = field(default_factory=Counter)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_processed / self.policy_seconds if self.policy_seconds > 0 else 0.0


def build_messages(
    observation: str,
    info: dict[str, Any],
    history: Sequence[tuple[str, str]],
    settings: RolloutSettings,
) -> list[dict[str, str]]:
    """The chat messages of one turn: the wrapper's layout with our system message.

    ``history`` is (action, bare observation) pairs, oldest first (already cut to length).
    """
    return turn_prompt(
        observation,
        info,
        system=settings.system_prompt,
        history=history,
        show_admissible=settings.show_admissible,
        include_skills=settings.include_skills,
    ).messages()


@dataclass
class _Live:
    rollout: Rollout
    env: gym.Env
    obs: str
    info: dict[str, Any]
    history: list[tuple[str, str]] = field(default_factory=list)


def _close(env: gym.Env, rollout_id: str) -> None:
    try:
        env.close()
    except Exception as exc:  # a dead engine may fail to close; the episode is over anyway
        logger.warning(
            "rollout %s: env.close() failed: %s: %s", rollout_id, type(exc).__name__, exc
        )


def _drop(live: _Live, exc: BaseException, where: str) -> None:
    live.rollout.error = f"{where}: {type(exc).__name__}: {exc}"
    logger.warning("rollout %s dropped (%s)", live.rollout.spec.rollout_id, live.rollout.error)
    _close(live.env, live.rollout.spec.rollout_id)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _prompt_ids(policy: Policy, live: _Live, settings: RolloutSettings) -> list[int]:
    """Tokenise the turn prompt, dropping the oldest history turns until it fits."""
    history = live.history[-settings.history_turns :] if settings.history_turns > 0 else []
    while True:
        ids = policy.encode_prompt(build_messages(live.obs, live.info, history, settings))
        if len(ids) <= settings.max_prompt_tokens or not history:
            if len(ids) > settings.max_prompt_tokens:
                logger.warning(
                    "rollout %s: prompt of %d tokens exceeds max_prompt_tokens=%d with no history left",
                    live.rollout.spec.rollout_id,
                    len(ids),
                    settings.max_prompt_tokens,
                )
            return ids
        history = history[1:]


def run_rollouts(
    policy: Policy,
    specs: Sequence[RolloutSpec],
    make_env: EnvFactory,
    settings: RolloutSettings,
    *,
    generator: torch.Generator,
) -> tuple[list[Rollout], RolloutStats]:
    """Play every spec to the end, all live episodes advancing one turn per batched call."""
    stats = RolloutStats()
    t_start = time.perf_counter()
    tokens_before = policy.tokens_processed
    rollouts = [Rollout(spec=s) for s in specs]
    live: list[_Live] = []
    for rollout in rollouts:
        spec = rollout.spec
        env = None
        try:
            env = make_env(spec.task_id, spec.version)
            obs, info = env.reset(seed=spec.seed, options={"task_id": spec.task_id})
        except Exception as exc:
            rollout.error = f"reset: {type(exc).__name__}: {exc}"
            logger.warning("rollout %s dropped (%s)", spec.rollout_id, rollout.error)
            if env is not None:
                _close(env, spec.rollout_id)
            continue
        rollout.env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        rollout.task = str(info.get("task", ""))
        rollout.task_type = str(info.get("task_type", ""))
        rollout.split = str(info.get("split", "train"))
        rollout.library_version = info.get("library_version")
        live.append(_Live(rollout, env, obs, dict(info)))

    while live:
        prompts = [_prompt_ids(policy, item, settings) for item in live]
        t0 = time.perf_counter()
        with torch.no_grad():
            if settings.action_mode == "score":
                choices: list[ActionChoice] = policy.act_score(
                    prompts,
                    [list(item.info.get("admissible_actions") or []) for item in live],
                    temperature=settings.temperature,
                    generator=generator,
                    norm=settings.score_norm,
                )
            else:
                choices = policy.act_generate(
                    prompts,
                    [item.info.get("admissible_actions") for item in live],
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    max_new_tokens=settings.max_new_tokens,
                )
        stats.policy_seconds += time.perf_counter() - t0
        stats.policy_calls += 1

        t0 = time.perf_counter()
        still: list[_Live] = []
        for item, prompt, choice in zip(live, prompts, choices):
            rollout = item.rollout
            try:
                obs, reward, terminated, truncated, info = item.env.step(choice.action)
            except Exception as exc:
                _drop(item, exc, f"step {len(rollout.turns)}")
                continue
            bare = strip_skill_block(item.obs, item.info)
            rollout.turns.append(
                Turn(
                    observation=bare,
                    action=choice.action,
                    reward=float(reward),
                    skill_ids=list(item.info.get("skill_ids", [])),
                    invalid_action=bool(info.get("invalid_action", False)),
                )
            )
            rollout.samples.append(
                TurnSample(prompt, list(choice.action_ids), list(choice.logprobs))
            )
            rollout.parses.append(choice.parse)
            rollout.reward += float(reward)
            stats.turns += 1
            stats.action_tokens += len(choice.action_ids)
            stats.parses[choice.parse] += 1
            item.history.append(
                (choice.action, _clip(bare, settings.max_history_observation_chars))
            )
            item.obs, item.info = obs, dict(info)
            if rollout.library_version is None:
                rollout.library_version = info.get("library_version")
            if terminated or truncated:
                rollout.won = bool(info.get("won", False))
                rollout.final_observation = strip_skill_block(obs, info)
                rollout.done = True
                _close(item.env, rollout.spec.rollout_id)
            else:
                still.append(item)
        stats.env_seconds += time.perf_counter() - t0
        live = still

    stats.seconds = time.perf_counter() - t_start
    stats.tokens_processed = policy.tokens_processed - tokens_before
    return rollouts, stats
