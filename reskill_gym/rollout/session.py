"""One episode through the turn contract: reset, prompt, reply -> action, step, record.

Exports ``RolloutSession`` and ``Encoder``.

Every loop that plays an episode — the local trainer (many sessions advanced together, one
batched model call per turn), the veRL agent loop (one session per trajectory, env calls in
a thread pool), ``reskill eval`` and ``reskill creator record`` (scripted agents) — drives a
``RolloutSession``. The session owns the history, builds each turn's prompt
(:func:`~reskill_gym.rollout.prompt.build_turn_prompt`), reads replies
(:func:`~reskill_gym.rollout.parse.parse_action`) or score-mode choices, steps the env and
fills the :class:`~reskill_gym.rollout.recorder.EpisodeRecorder`. What differs between the
loops is only who produces the reply and how it is batched.

An invalid reply (no action in the required format) does not step the env: the turn is
recorded with ``valid=False``, counts against the turn cap, and the next prompt's observation
starts with feedback saying what was wrong. Under ``format: published`` it steps the env with
what the published projection found (recorded ``valid=False, stepped=True``), as published. Env exceptions propagate to the caller, which
decides (drop the episode, retry, record an error) and calls :meth:`fail`.

>>> from reskill_gym.envs.base import EngineStep, TextEnv
>>> from reskill_gym.rollout.config import TurnConfig
>>> class Door(TextEnv):
...     def task_ids(self, split=None): return ["t0"]
...     def _engine_reset(self, task_id, seed, options):
...         return "A closed door.", {"task": "open the door", "task_type": "door",
...                                    "admissible_actions": ["open door", "look"]}
...     def _engine_step(self, action):
...         won = action == "open door"
...         return EngineStep("It opens." if won else "Nothing.", float(won), won, won,
...                           admissible_actions=["open door", "look"])
>>> s = RolloutSession(Door(max_turns=4), TurnConfig(), episode_id="e0")
>>> s.reset(task_id="t0", seed=0)
>>> _ = s.act("I will open it.")          # no <action> tag: invalid, the env does not run
>>> s.prompt().user_segments[-2].text.splitlines()[1][:38]
'Your previous reply was not executed: '
>>> _ = s.act("<think>Open it.</think><action>open door</action>")
>>> ep = s.episode()
>>> ep.won, len(ep.turns), ep.valid_action_ratio, ep.stop_reason
(True, 2, 0.5, 'done')
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reskill_gym.episode import Episode, ParseHow, StopReason, Turn
from reskill_gym.rollout.choice import ScoreChoice
from reskill_gym.rollout.config import TurnConfig
from reskill_gym.rollout.parse import ParseOutcome, parse_action
from reskill_gym.rollout.prompt import (
    PastTurn,
    TurnPrompt,
    build_turn_prompt,
    invalid_reply_feedback,
)
from reskill_gym.rollout.recorder import EpisodeRecorder

__all__ = ["RolloutSession", "Encoder"]

Encoder = Callable[[list[dict[str, str]]], Sequence[int]]
"""A trainer's ``messages -> prompt token ids`` (chat template and generation prompt applied)."""

#: Longest reply kept (LLMConfig.max_answer_chars' default): longer ones are clipped.
MAX_REPLY_CHARS = 262_144

logger = logging.getLogger(__name__)


def _bare(observation: str, info: Mapping[str, Any]) -> str:
    """The engine's observation, without the skill block.

    ``SkillWrapper`` hands it over as ``info["observation"]`` (next to ``bundle_text``, which
    the prompt shows in its own segment), so the session never has to cut the block back
    off the augmented observation. An env without the wrapper has no block: its observation
    is already bare. Both keys are required so that a foreign env whose ``info`` happens to
    carry an ``observation`` of its own is read as before.
    """
    bare = info.get("observation")
    if isinstance(bare, str) and "bundle_text" in info:
        return bare
    return observation


def env_name_of(env: Any) -> str:
    """The short env name (``alfworld``, ...) of a (wrapped) ReSkill env."""
    return str(getattr(getattr(env, "unwrapped", env), "env_name", "text"))


def env_id_of(env: Any) -> str:
    """The Gymnasium id of a (wrapped) env, or its registered id by name."""
    from reskill_gym.envs.registration import find_spec

    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    registered = find_spec(env_name_of(env))
    if registered is not None:
        return registered.gym_id
    return type(getattr(env, "unwrapped", env)).__name__


class RolloutSession:
    """Drive one episode of ``env`` under ``config`` (see the module docstring).

    Args:
        env: a ReSkill text env, usually inside ``SkillWrapper`` (its ``info`` then carries
            the skill bundle of each turn).
        config: the turn contract's settings; resolved for the env's name here.
        episode_id: the ``Episode`` record's id.
        group_id: the GRPO group the rollout belongs to (copied into the record).
        arm: the version-test arm, when a test is live (copied into the record).
        step: the training step (copied into the record).
        max_turns: turn cap (invalid turns count); default: the env's ``max_turns``.
    """

    def __init__(
        self,
        env: Any,
        config: TurnConfig,
        *,
        episode_id: str,
        group_id: str | None = None,
        arm: str | None = None,
        step: int = 0,
        max_turns: int | None = None,
    ) -> None:
        self.env = env
        self.env_name = env_name_of(env)
        self.config = config.resolve(self.env_name)
        self.recorder = EpisodeRecorder(
            episode_id, env_id=env_id_of(env), group_id=group_id, arm=arm, step=step
        )
        cap = max_turns or getattr(getattr(env, "unwrapped", env), "max_turns", None) or 50
        self.max_turns = int(cap)
        self.info: dict[str, Any] = {}
        self.bare = ""
        self._shown = ""  # the observation text of the current prompt (feedback included)
        self._past: list[PastTurn] = []
        self._prompt: TurnPrompt | None = None
        self.done = False
        self._reset = False

    # ----- state ------------------------------------------------------------------------
    @property
    def turn(self) -> int:
        """Turns taken so far (the index of the next turn)."""
        return len(self._past)

    @property
    def admissible(self) -> list[str] | None:
        adm = self.info.get("admissible_actions")
        return list(adm) if adm else None

    @property
    def task(self) -> str:
        return self.recorder.episode.task

    def reset(
        self,
        *,
        task_id: str | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Reset the env to ``task_id`` (env errors propagate; call :meth:`fail` after one)."""
        opts = dict(options or {})
        if task_id is not None:
            opts["task_id"] = task_id
        obs, info = self.env.reset(seed=seed, options=opts)
        self.recorder.begin(info, seed=seed, task_id=task_id)
        self._observe(obs, info, shown=None)
        self._reset = True

    def _observe(self, obs: str, info: Mapping[str, Any], *, shown: str | None) -> None:
        self.info = dict(info)
        self.bare = _bare(obs, info)
        self._shown = self.bare if shown is None else shown
        self._prompt = None

    # ----- the prompt -------------------------------------------------------------------
    def prompt(self, *, history_turns: int | None = None) -> TurnPrompt:
        """This turn's prompt (built once per turn).

        ``history_turns`` overrides the per_turn history window for this call only (a
        trainer shrinking a prompt to its token budget); the turn is still recorded under
        the configured prompt.
        """
        if not self._reset:
            raise RuntimeError("call reset() before prompt()")
        if history_turns is not None and history_turns != self.config.history_turns:
            return self._build(self.config.model_copy(update={"history_turns": history_turns}))
        if self._prompt is None:
            self._prompt = self._build(self.config)
        return self._prompt

    def _build(self, config: TurnConfig) -> TurnPrompt:
        return build_turn_prompt(
            config,
            task=self.task,
            observation=self._shown,
            bundle_text=str(self.info.get("bundle_text") or ""),
            admissible=self.admissible,
            past=self._past,
            env_name=self.env_name,
            action_hint=self.info.get("action_hint"),
        )

    def messages(self) -> list[dict[str, str]]:
        """This turn's chat messages."""
        return self.prompt().messages()

    def fit_prompt(self, encode: Encoder, limit: int) -> list[int] | None:
        """This turn's prompt as token ids within ``limit`` tokens, or ``None``.

        The one prompt-budget policy both trainers use (``encode`` is theirs: chat template,
        generation prompt, tokenizer). The configured prompt when it fits; else, in the
        ``per_turn`` layout, the largest history window below the configured one that fits
        (oldest turns dropped first; found by binary search, as a longer window never has
        fewer tokens); else ``None``: not even the turn without history fits, or the
        ``concat`` stream, which cannot drop anything, has outgrown the budget. What to do
        with ``None`` is the caller's (stop the episode: ``stop("length")``). The turn is
        recorded under the configured prompt either way.

        >>> from reskill_gym.envs.base import EngineStep, TextEnv
        >>> class Hall(TextEnv):
        ...     def task_ids(self, split=None): return ["t0"]
        ...     def _engine_reset(self, task_id, seed, options):
        ...         return "A hall.", {"task": "walk", "task_type": "walk",
        ...                            "admissible_actions": ["walk"]}
        ...     def _engine_step(self, action):
        ...         return EngineStep("Another hall.", 0.0, False, False, admissible_actions=["walk"])
        >>> s = RolloutSession(Hall(max_turns=9), TurnConfig(history_turns=3), episode_id="e")
        >>> s.reset(task_id="t0")
        >>> for _ in range(3): _ = s.act("<action>walk</action>")
        >>> words = lambda messages: " ".join(m["content"] for m in messages).split()
        >>> sizes = [len(words(s.prompt(history_turns=h).messages())) for h in range(4)]
        >>> s.fit_prompt(words, sizes[3]) == words(s.messages())
        True
        >>> s.fit_prompt(words, sizes[2] - 1) == words(s.prompt(history_turns=1).messages())
        True
        >>> s.fit_prompt(words, sizes[0] - 1) is None
        True
        """
        ids = list(encode(self.messages()))
        if len(ids) <= limit:
            return ids
        if self.config.layout != "per_turn":
            return None
        best: list[int] | None = None
        lo, hi = 0, min(self.config.history_turns, self.turn) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            cand = list(encode(self.prompt(history_turns=mid).messages()))
            if len(cand) <= limit:
                best, lo = cand, mid + 1
            else:
                hi = mid - 1
        return best

    # ----- acting -----------------------------------------------------------------------
    def act(self, reply: str, **usage: Any) -> Turn:
        """Parse a generated reply under the configured format, then step (or not).

        Lone surrogates in ``reply`` become U+FFFD first (the record must encode as UTF-8),
        and a reply over ``MAX_REPLY_CHARS`` is clipped with a marker, as an LLM backend clips
        its answers: a policy's 30 MB string must not be parsed, prompted and stored whole."""
        from reskill_gym.safe_text import clip_text, valid_unicode

        reply = clip_text(valid_unicode(reply), MAX_REPLY_CHARS)
        fmt = self.config.action_format
        assert fmt is not None, "TurnConfig.resolve() fills action_format"
        outcome = parse_action(reply, self.admissible, action_format=fmt, env_name=self.env_name)
        return self._take(outcome, reply, **usage)

    def act_choice(self, choice: ScoreChoice, **usage: Any) -> Turn:
        """Take a score-mode choice (always a valid admissible command)."""
        extra: dict[str, Any] = {"choice_prob": choice.prob}
        if self.config.record_scores:
            extra["candidates"] = list(self.admissible or [])
            extra["scores"] = list(choice.scores)
        return self._take(ParseOutcome(choice.action, "score"), choice.action, **extra, **usage)

    def act_command(self, command: str, *, how: ParseHow = "scripted", reply: str = "") -> Turn:
        """Send a ready command (scripted agents): no parsing, always valid."""
        return self._take(ParseOutcome(command, how), reply or command)

    def _take(self, outcome: ParseOutcome, reply: str, **fields: Any) -> Turn:
        if self.done:
            raise RuntimeError(f"episode {self.recorder.episode.episode_id} is over")
        prompt = self.prompt()
        if self.config.record_prompts:
            fields.setdefault("prompt", prompt.user_text())
        skill_ids = [str(s) for s in self.info.get("skill_ids", ())]
        # the published format steps the env with whatever its projection found
        runs_anyway = not outcome.valid and self.config.format == "published"
        if not outcome.valid and not runs_anyway:
            turn = Turn(
                observation=self.bare,
                action="",
                reward=0.0,
                skill_ids=skill_ids,
                reply=reply,
                parse=outcome.how,
                valid=False,
                **fields,
            )
            self.recorder.add(turn)
            self._past.append(
                PastTurn(self._shown, f"(invalid reply: {outcome.why})", prompt.user_text(), reply)
            )
            feedback = invalid_reply_feedback(str(self.config.action_format), outcome.why)
            self._observe_same(feedback)
        else:
            obs, reward, terminated, truncated, info = self.env.step(outcome.action)
            rejected = bool(info.get("invalid_action", False))
            valid = outcome.valid and not (outcome.how == "passthrough" and rejected)
            turn = Turn(
                observation=self.bare,
                action=outcome.action,
                reward=float(reward),
                skill_ids=skill_ids,
                invalid_action=rejected,
                reply=reply,
                parse=outcome.how,
                valid=valid,
                stepped=True if runs_anyway else None,
                **fields,
            )
            self.recorder.add(turn)
            self._past.append(PastTurn(self._shown, outcome.action, prompt.user_text(), reply))
            self._observe(obs, info, shown=None)
            if terminated or truncated:
                self._finish("done" if terminated else "truncated")
                return turn
        if len(self._past) >= self.max_turns:
            self._finish("turn_cap")
        return turn

    def _observe_same(self, feedback: str) -> None:
        self._shown = f"{feedback}\n\n{self.bare}"
        self._prompt = None

    def _finish(self, reason: StopReason) -> None:
        self.done = True
        self.recorder.end(
            won=bool(self.info.get("won", False)), final_observation=self.bare, stop_reason=reason
        )

    # ----- ending -----------------------------------------------------------------------
    def stop(self, reason: StopReason) -> Episode:
        """End the episode early (e.g. ``length``: the trainer's token budget is spent)."""
        if not self.done:
            self._finish(reason)
        return self.recorder.episode

    def fail(self, error: BaseException | str) -> Episode:
        """End the episode as dropped: ``error`` is kept on the record."""
        msg = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.done = True
        return self.recorder.fail(msg)

    def episode(self) -> Episode:
        """The record (call after the episode is done, or :meth:`stop`/:meth:`fail`)."""
        if not self.done:
            raise RuntimeError("the episode is still running: stop() or fail() it first")
        return self.recorder.episode
