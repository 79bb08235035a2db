"""Playing one episode with an agent: ask each turn, retry transient failures, record.

Exports ``EpisodePlayer``, ``EpisodeFailure``, ``EnvFailure``, ``EpisodeInterrupted`` and
``error_type``.

``EpisodePlayer`` drives a reset :class:`~reskill_gym.rollout.RolloutSession` (the turn
contract) to its end: the session builds the prompt, parses a generated reply (or takes a
score-mode choice), steps the env and fills the one ``Episode`` record; the player only asks
the agent, re-asks it after a transient failure and stops between turns when told to.
``reskill eval`` (:mod:`reskill_gym.evaluation.runner`) and ``reskill evolve``
(:mod:`reskill_gym.evolve`) play every episode with it.

Agent failures (timeouts, 429, 5xx, refusals) are retried with exponential backoff per turn
(on top of the backend's own transport retries); when retries are spent the episode fails
with an :class:`EpisodeFailure` naming the cause (:func:`error_type` classifies it). An agent
that raises anything else or returns something that is not an answer fails the episode at
once (re-asking a buggy policy will not help). A reply without a valid action is not a
failure: it is an invalid turn, as in training.

>>> error_type(EnvFailure("reset failed")), error_type(ValueError("bug"))
('env', 'agent')
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from reskill_gym.episode import Episode
from reskill_gym.evaluation.agents import (
    ActionMode,
    Agent,
    AgentChoice,
    AgentRefusalError,
    AgentReply,
)
from reskill_gym.evaluation.episode_log import ErrorType
from reskill_gym.llm import (
    LLMAuthError,
    LLMConfigError,
    LLMError,
    LLMOutputError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    LLMTransientError,
)
from reskill_gym.rollout import RolloutSession

__all__ = ["EpisodePlayer", "EpisodeFailure", "EnvFailure", "EpisodeInterrupted", "error_type"]

log = logging.getLogger(__name__)


def error_type(e: BaseException) -> ErrorType:
    """Why an episode failed, for ``EvalEpisode.error_type``."""
    for cls, name in (
        (LLMRateLimitError, "rate_limit"),
        (LLMTimeoutError, "timeout"),
        (LLMServerError, "server"),
        (LLMTransientError, "transient"),
        (LLMOutputError, "unparsable"),
        (AgentRefusalError, "refusal"),
        (LLMRequestError, "request"),
        (LLMError, "llm"),
    ):
        if isinstance(e, cls):
            return name  # type: ignore[return-value]
    return "env" if isinstance(e, EnvFailure) else "agent"


class EnvFailure(RuntimeError):
    """The environment (not the agent) failed: reset/step raised."""


class EpisodeInterrupted(Exception):
    """The run is stopping; the episode in flight is dropped and runs again on resume."""


@dataclass
class EpisodeFailure(Exception):
    """An episode that could not finish: the cause and the re-asks spent on the last turn."""

    cause: BaseException
    retries: int = 0

    def message(self) -> str:
        if isinstance(self.cause, EnvFailure):
            return f"env: {self.cause}"
        return f"{type(self.cause).__name__}: {self.cause}"


class EpisodePlayer:
    """Plays one episode with an agent through a :class:`RolloutSession`: asks the agent each
    turn (transient failures re-asked with backoff), gives its answer to the session, stops
    when the session is done. ``run_eval`` and ``reskill evolve`` play every episode with it.

    ``stop`` (an event) interrupts between turns; ``LLMAuthError`` / ``LLMConfigError``
    propagate (every episode would fail the same way).

    >>> from reskill_gym.evaluation.agents import CallableAgent
    >>> player = EpisodePlayer(CallableAgent(lambda m, i: "<action>go</action>", name="f"))
    >>> player.mode, player.turn_retries
    ('generate', 3)
    """

    def __init__(
        self,
        agent: Agent,
        mode: ActionMode = "generate",
        *,
        turn_retries: int = 3,
        retry_backoff_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.agent = agent
        self.mode = mode
        self.turn_retries = turn_retries
        self.retry_backoff_s = retry_backoff_s
        self.sleep = sleep
        self.stop = stop if stop is not None else threading.Event()
        self._jitter = random.Random(0)
        self._answer_type = AgentChoice if mode == "score" else AgentReply

    # ----- one turn's answer ------------------------------------------------------------
    def ask(
        self,
        messages: list[dict[str, str]],
        info: dict[str, Any],
        rng: np.random.Generator,
    ) -> tuple[AgentReply | AgentChoice, int]:
        """The agent's answer to one turn and the re-asks it took."""
        for attempt in range(self.turn_retries + 1):
            try:
                answer = self.agent.act(messages, info, rng)
            except (LLMAuthError, LLMConfigError):
                raise
            except (LLMTransientError, LLMOutputError, AgentRefusalError) as e:
                if self.stop.is_set():
                    raise EpisodeInterrupted() from e
                if attempt >= self.turn_retries:
                    raise EpisodeFailure(e, attempt) from e
                delay = self.retry_backoff_s * 2**attempt * (0.5 + self._jitter.random())
                log.info(
                    "eval: %s: %s; turn retry %d/%d in %.2fs",
                    self.agent.name,
                    type(e).__name__,
                    attempt + 1,
                    self.turn_retries,
                    delay,
                )
                self.sleep(delay)
                continue
            except (
                Exception
            ) as e:  # a rejected request or a bug in the policy: re-asking won't help
                raise EpisodeFailure(e, attempt) from e
            if not isinstance(answer, self._answer_type):
                raise EpisodeFailure(
                    TypeError(
                        f"agent {self.agent.name} returned {type(answer).__name__}, expected "
                        f"{self._answer_type.__name__} in {self.mode} mode"
                    ),
                    attempt,
                )
            return answer, attempt
        raise AssertionError("unreachable")

    def play(self, session: RolloutSession, rng: np.random.Generator) -> None:
        """Play a reset ``session`` to its end; raises ``EpisodeFailure`` when it cannot finish."""
        while not session.done:
            if session.turn and self.stop.is_set():
                raise EpisodeInterrupted()
            answer, retries = self.ask(session.messages(), session.info, rng)
            try:
                if isinstance(answer, AgentChoice):
                    session.act_choice(
                        answer.choice, input_tokens=answer.input_tokens, retries=retries
                    )
                else:
                    session.act(
                        answer.text,
                        input_tokens=answer.input_tokens,
                        output_tokens=answer.output_tokens,
                        cost_usd=answer.cost_usd,
                        retries=retries,
                    )
            except Exception as e:
                raise EpisodeFailure(EnvFailure(f"step failed: {type(e).__name__}: {e}")) from e
            t = session.recorder.episode.turns[-1]
            log.debug(
                "eval: %s turn %d: %r (%s%s) -> reward %.1f",
                session.recorder.episode.episode_id,
                session.turn,
                t.action,
                t.parse,
                "" if t.valid else ", invalid",
                t.reward,
            )

    def episode(self, session: RolloutSession, rng: np.random.Generator) -> Episode:
        """Play ``session`` to its end; an episode that could not finish comes back with
        ``error`` set (``session.fail``) instead of raising."""
        try:
            self.play(session, rng)
        except EpisodeFailure as f:
            return session.fail(f.message())
        return session.episode()
