"""Batched multi-turn rollouts: every live episode of a step advances together.

Exports ``RolloutSpec``, ``Sampling``, ``TurnSample``, ``Rollout``, ``RolloutStats``,
``run_rollouts`` and ``EnvFactory``.

Each rollout is a :class:`reskill_gym.rollout.RolloutSession` (the project's one turn
contract: prompt layout, reply parsing, score-mode choice rule, episode record). Per turn
the prompts of all live sessions go to the policy in one batched call (one packed scoring
pass in ``score`` mode, one ``generate`` in ``generate`` mode), then every session takes its
reply and steps its env. A rollout is a list of (prompt tokens -> reply tokens) turn samples
for the loss plus the session's ``Episode`` record; only reply tokens are trained on, never
the prompt, the observation or the skill block.

A prompt longer than ``max_prompt_tokens`` is fitted by the turn contract
(:meth:`reskill_gym.rollout.RolloutSession.fit_prompt`, as in veRL): in the per_turn layout
the largest history window that fits; when nothing fits (per_turn without history, or the
concat stream) the episode stops there (``stop_reason="length"``), and a first prompt that
does not fit drops the episode (no turn to train on). An env that raises drops its episode: the error is
logged and kept on the record, the other episodes go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from reskill_gym.episode import Episode
from reskill_gym.rollout import RolloutSession, TurnConfig, choose_action
from reskill_gym.runloop import PlannedRollout
from reskill_local.policy import Policy

__all__ = [
    "RolloutSpec",
    "Sampling",
    "TurnSample",
    "Rollout",
    "RolloutStats",
    "run_rollouts",
    "EnvFactory",
]

logger = logging.getLogger(__name__)

EnvFactory = Callable[[str, "str | None"], gym.Env]
"""``make_env(task_id, version) -> env``: an env for one rollout (closed after it)."""


RolloutSpec = PlannedRollout
"""Which task, skill version, seed and arm one rollout uses (the run driver's step planner
makes them: :class:`reskill_gym.runloop.PlannedRollout`)."""


@dataclass(frozen=True)
class Sampling:
    """How the model samples (a slice of ``GRPOConfig``)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 24
    max_prompt_tokens: int = 768


@dataclass
class TurnSample:
    """One training sample: the prompt the agent saw and the tokens it answered with."""

    prompt_ids: list[int]
    action_ids: list[int]
    old_logprobs: list[float]


@dataclass
class Rollout:
    """One episode as the trainer needs it (samples) and as everyone else does (episode)."""

    spec: RolloutSpec
    episode: Episode | None = None
    samples: list[TurnSample] = field(default_factory=list)
    error: str | None = None

    @property
    def dropped(self) -> bool:
        return self.error is not None


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

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_processed / self.policy_seconds if self.policy_seconds > 0 else 0.0


@dataclass
class _Live:
    rollout: Rollout
    env: gym.Env
    session: RolloutSession


def _close(env: gym.Env, rollout_id: str) -> None:
    try:
        env.close()
    except Exception as exc:  # a dead engine may fail to close; the episode is over anyway
        logger.warning(
            "rollout %s: env.close() failed: %s: %s", rollout_id, type(exc).__name__, exc
        )


def _drop(live: _Live, exc: BaseException, where: str) -> None:
    live.rollout.error = f"{where}: {type(exc).__name__}: {exc}"
    live.rollout.episode = live.session.fail(live.rollout.error)
    logger.warning("rollout %s dropped (%s)", live.rollout.spec.rollout_id, live.rollout.error)
    _close(live.env, live.rollout.spec.rollout_id)


def _prompt_ids(policy: Policy, live: _Live, limit: int) -> list[int] | None:
    """This turn's prompt ids within ``limit`` (the turn contract's
    :meth:`~reskill_gym.rollout.RolloutSession.fit_prompt`), else ``None``."""
    ids = live.session.fit_prompt(policy.encode_prompt, limit)
    if ids is None and live.session.config.layout == "per_turn":
        logger.warning(
            "rollout %s: turn %d does not fit max_prompt_tokens=%d even without history; "
            "the episode stops (raise max_prompt_tokens or lower rollout.max_observation_chars)",
            live.rollout.spec.rollout_id,
            live.session.turn,
            limit,
        )
    return ids


def run_rollouts(
    policy: Policy,
    specs: Sequence[RolloutSpec],
    make_env: EnvFactory,
    turn: TurnConfig,
    sampling: Sampling,
    *,
    generator: torch.Generator,
    step: int = 0,
) -> tuple[list[Rollout], RolloutStats]:
    """Play every spec to the end, all live episodes advancing one turn per batched call."""
    stats = RolloutStats()
    t_start = time.perf_counter()
    tokens_before = policy.tokens_processed
    rollouts = [Rollout(spec=s) for s in specs]
    live: list[_Live] = []
    for rollout in rollouts:
        spec = rollout.spec
        env: Any = None
        try:
            env = make_env(spec.task_id, spec.version)
            session = RolloutSession(
                env,
                turn,
                episode_id=spec.rollout_id,
                group_id=spec.group_id,
                arm=spec.arm,
                step=step,
            )
            session.reset(task_id=spec.task_id, seed=spec.seed)
        except Exception as exc:
            rollout.error = f"reset: {type(exc).__name__}: {exc}"
            rollout.episode = Episode(
                episode_id=spec.rollout_id,
                env_id="",
                task_id=spec.task_id,
                group_id=spec.group_id,
                arm=spec.arm,
                step=step,
                seed=spec.seed,
                stop_reason="error",
                error=rollout.error,
            )
            logger.warning("rollout %s dropped (%s)", spec.rollout_id, rollout.error)
            if env is not None:
                _close(env, spec.rollout_id)
            continue
        live.append(_Live(rollout, env, session))

    score = turn.action_mode == "score"
    while live:
        prompts: list[list[int]] = []
        ready: list[_Live] = []
        for item in live:
            ids = _prompt_ids(policy, item, sampling.max_prompt_tokens)
            if ids is None and item.session.turn == 0:  # no turn to train on: as an env error
                why = (
                    f"the first prompt does not fit max_prompt_tokens={sampling.max_prompt_tokens}"
                )
                _drop(item, ValueError(why), "turn 0")
                continue
            if ids is None:
                item.rollout.episode = item.session.stop("length")
                _close(item.env, item.rollout.spec.rollout_id)
                continue
            prompts.append(ids)
            ready.append(item)
        live = ready
        if not live:
            break
        t0 = time.perf_counter()
        with torch.no_grad():
            if score:
                admissible = [list(item.session.admissible or []) for item in live]
                cand_ids, cand_lps = policy.score_candidates(prompts, admissible)
            else:
                replies = policy.generate(
                    prompts,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_new_tokens=sampling.max_new_tokens,
                )
        stats.policy_seconds += time.perf_counter() - t0
        stats.policy_calls += 1

        t0 = time.perf_counter()
        still: list[_Live] = []
        for b, (item, prompt) in enumerate(zip(live, prompts)):
            session = item.session
            try:
                if score:
                    u = float(torch.rand((), generator=generator))
                    choice = choose_action(
                        admissible[b],
                        cand_lps[b],
                        norm=turn.score_norm,
                        temperature=sampling.temperature,
                        u=u,
                    )
                    sample = TurnSample(
                        prompt, cand_ids[b][choice.index], cand_lps[b][choice.index]
                    )
                    session.act_choice(choice)
                else:
                    gen = replies[b]
                    sample = TurnSample(prompt, gen.ids, gen.logprobs)
                    session.act(gen.text, output_tokens=len(gen.ids), input_tokens=len(prompt))
            except Exception as exc:
                _drop(item, exc, f"step {session.turn}")
                continue
            item.rollout.samples.append(sample)
            stats.turns += 1
            stats.action_tokens += len(sample.action_ids)
            if session.done:
                item.rollout.episode = session.episode()
                _close(item.env, item.rollout.spec.rollout_id)
            else:
                still.append(item)
        stats.env_seconds += time.perf_counter() - t0
        live = still

    stats.seconds = time.perf_counter() - t_start
    stats.tokens_processed = policy.tokens_processed - tokens_before
    return rollouts, stats
