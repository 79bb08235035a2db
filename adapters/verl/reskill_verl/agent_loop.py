"""The veRL agent loop that plays one ReSkill environment episode per trajectory.

Exports ``ReskillEnvAgentLoop`` (registered as ``reskill_env``), ``EnvError``, ``env_pool``,
``default_root``, ``EXTRA_FIELD_KEYS`` and ``AGENT_LOOP_NAME``.

veRL 0.9.1 builds one agent-loop object per trajectory inside its agent-loop worker processes
(``AgentLoopWorker._run_agent_loop``: ``hydra.utils.instantiate`` of the registry entry) and
awaits ``run(sampling_params, **row)``. One run drives one
:class:`reskill_gym.rollout.RolloutSession` — the project's one turn contract, shared with the
local trainer and ``reskill eval``: it builds every prompt, parses every reply, steps the env
and fills the ``Episode`` record. This module only turns the session's messages into tokens,
asks ``server_manager.generate`` for the reply and packs veRL samples:

1. the task comes from the row's ``extra_info`` (``env``, ``task_id``, ``split``; written by
   ``reskill verl prepare``); co-evolution says which library version this rollout uses
   (training rows: by the GRPO group ``uid`` and the rollout's ``session_id``; validation
   rows, ``split != train``: HEAD, or with ``reskill.validation: published`` an arm of the
   live test drawn per rollout), see :mod:`reskill_verl.coevolution_actor`;
2. an env is leased from the worker's :class:`reskill_gym.rollout.EnvPool` with that version
   pinned; every env call (lease, reset, ``session.act``, release) runs in a thread pool,
   never on the event loop;
3. per turn the reply is generated token-in/token-out and handed to ``session.act``. Two
   layouts (``reskill.rollout.layout``):

   - ``per_turn`` (the published system's, after verl-agent): each turn is its own sample.
     prompt = the chat template of ``session.messages()`` (system, task, the last
     ``history_turns`` turns, observation, skills, admissible actions) with the generation
     prompt; when it exceeds ``rollout.prompt_length`` the history window shrinks to the
     largest that fits (the turn contract's ``RolloutSession.fit_prompt``). response = the reply's tokens. ``run`` returns a list of
     ``AgentLoopOutput`` (one per turn), which only veRL's V1 trainer stores (one row per
     turn, keys ``{uid}_{session}_{turn}``); the loop refuses to start on the legacy trainer.
   - ``concat``: one growing chat token stream per episode (veRL's continuous-token helpers):
     each turn's user message is the new last user message of ``session.messages()``; reply
     tokens get mask 1, everything else 0. The episode stops when the response budget
     (``rollout.response_length``) is spent.

4. every sample carries the episode's env return as ``reward_score`` (veRL's reward manager
   is skipped), so GRPO groups are episodes of one task (the ``uid``); ``extra_fields`` carry
   the turn index, the validity of the reply (``turn_invalid``, ``invalid_spans`` for the
   trainer's invalid-action penalty), the library version, the arm, ... (``EXTRA_FIELD_KEYS``);
5. the episode is reported to co-evolution (training rows only).

An environment that raises ends the episode: it is recorded with ``session.fail`` (the error
names the node), the env is discarded instead of pooled, and the trajectory yields no sample
on the V1 trainer (``[]``: the group's statistics use the other episodes) or, on the legacy
trainer (concat only), a sample with its response mask zeroed and reward 0. Every session,
failed or not, is reported to co-evolution (evaluation ones only counted): the trainer stops
when too many fail (``reskill.max_failed_session_share``). A failing
``generate`` call is not an env error: it propagates to veRL (which marks the group failed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from reskill_gym.episode import Episode
from reskill_gym.rollout import EnvLease, EnvPool, RolloutSession
from reskill_gym.skills.bundle import BundleTemplate
from reskill_verl.coevolution_actor import get_client
from reskill_verl.config import AGENT_LOOP_NAME, ReskillVerlConfig, check_trainer_config
from reskill_verl.preflight import node_label

__all__ = [
    "ReskillEnvAgentLoop",
    "EnvError",
    "env_pool",
    "default_root",
    "EXTRA_FIELD_KEYS",
    "AGENT_LOOP_NAME",
]

logger = logging.getLogger(__name__)

EXTRA_FIELD_KEYS: tuple[str, ...] = (
    "layout",
    "episode_id",
    "turn",
    "turn_invalid",
    "invalid_spans",
    "action",
    "library_version",
    "arm",
    "skill_ids",
    "env_return",
    "turns",
    "won",
    "env",
    "task_id",
    "split",
    "stop_reason",
    "env_error",
    "turn_scores",
    "tool_rewards",
    "reward_extra_info",
)
"""Keys every output's ``extra_fields`` carries (plus veRL's global-step fields from the
server). Per sample: ``turn`` (index of its first turn), ``turn_invalid`` (a reply in it
carried no valid action), ``invalid_spans`` (``[start, end)`` response-token spans of those
replies), ``action`` (per_turn: the command that ran, '' if invalid), ``skill_ids`` (skills
shown in its prompts), ``turn_scores`` (env rewards of its turns). Per episode (the same on
every sample of it): the rest."""


# --------------------------------------------------------------------------------------------
# Per-process state: veRL creates a loop object per trajectory, so pools live at module level.


def _build_env(key: tuple[str, str, int, int | None, BundleTemplate]) -> Any:
    """``EnvPool`` factory: a ``SkillWrapper`` env for ``(env, kwargs json, skills cap, budget,
    bundle template)``."""
    from reskill_gym.envs.registration import make_skill_env

    env_name, kwargs_json, max_active, budget, template = key
    return make_skill_env(
        env_name,
        skills=None,
        max_active_skills=max_active,
        skill_budget_chars=budget,
        template=template,
        **json.loads(kwargs_json),
    )


env_pool = EnvPool(_build_env, max_idle=64)
"""The worker process's env pool (engines are expensive to start: ALFWorld ~15-20 s)."""

_EXECUTOR: list[ThreadPoolExecutor] = []
_EXECUTOR_LOCK = threading.Lock()
_SETTINGS: dict[int, tuple[Any, ReskillVerlConfig]] = {}


def _executor(threads: int) -> ThreadPoolExecutor:
    with _EXECUTOR_LOCK:
        if not _EXECUTOR:
            _EXECUTOR.append(ThreadPoolExecutor(threads, thread_name_prefix="reskill-env"))
        return _EXECUTOR[0]


def _settings(config: Any) -> ReskillVerlConfig:
    cached = _SETTINGS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    settings = ReskillVerlConfig.from_trainer_config(config)
    check_trainer_config(config, settings)
    _SETTINGS.clear()
    _SETTINGS[id(config)] = (config, settings)
    env_pool.max_idle = settings.env_pool_size
    return settings


def default_root(config: Any) -> str:
    """``<trainer.default_local_dir>/reskill`` as an absolute path (actor state, run log)."""
    import os

    trainer = config.get("trainer", {}) if hasattr(config, "get") else {}
    base = trainer.get("default_local_dir", None) or "checkpoints/reskill"
    return os.path.abspath(os.path.join(str(base), "reskill"))


def _failed_episode(episode_id: str, env: str, task_id: str, split: str, error: str) -> Episode:
    """The record of a session that failed before its env existed (lease/reset error)."""
    from reskill_gym.envs.registration import find_spec

    spec = find_spec(env)
    return Episode(
        episode_id=episode_id,
        env_id=spec.gym_id if spec is not None else env,
        task_id=task_id,
        split=split,
        stop_reason="error",
        error=error or "failed before the episode started",
    )


class EnvError(RuntimeError):
    """An environment call failed (engine crash, unknown task, ...): ends the episode only."""


class _PromptTooLong(EnvError):
    """The episode's first prompt exceeds ``rollout.prompt_length``: dropped like an env
    failure, but the env itself is fine (it goes back to the pool)."""


@dataclass
class _TurnSample:
    """One per_turn sample before the episode's return is known."""

    turn: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float] | None
    valid: bool
    action: str
    skill_ids: list[str]
    reward: float
    server_extra: dict[str, Any]
    t_gen: float
    t_env: float


@dataclass
class _Stream:
    """The concat layout's growing token stream."""

    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    invalid_spans: list[list[int]] = field(default_factory=list)
    chat_turns: int = 0  # user + assistant messages in the stream


@register(AGENT_LOOP_NAME)
class ReskillEnvAgentLoop(AgentLoopBase):
    """Multi-turn ReSkill environment episodes for veRL (see the module docstring).

    Constructed by veRL's worker with ``trainer_config``, ``server_manager``, ``tokenizer``,
    ``processor``, ``dataset_cls``, ``data_config``, ``hf_model_type`` and extra keywords
    (``tools``, ``name``), all forwarded to ``AgentLoopBase``. Raises ``ValueError`` for
    ``reskill.rollout.layout=per_turn`` on the legacy trainer (``trainer.use_v1=false``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = _settings(self.config)
        self.layout = self.settings.rollout.layout
        trainer = self.config.get("trainer", {}) if hasattr(self.config, "get") else {}
        self.use_v1 = bool(trainer.get("use_v1", True))
        self.response_length = int(self.rollout_config.response_length)
        self.prompt_length = int(self.rollout_config.prompt_length)
        multi_turn = self.rollout_config.get("multi_turn", None)
        cap = multi_turn.get("max_assistant_turns", None) if multi_turn is not None else None
        self.max_assistant_turns: int | None = int(cap) if cap else None

    # ----- helpers -----------------------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking env call in the worker's env threads; its failure is an ``EnvError``."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                _executor(self.settings.env_threads), lambda: fn(*args, **kwargs)
            )
        except Exception as exc:
            raise EnvError(f"{type(exc).__name__}: {exc}") from exc

    def _pool_key(self, env_name: str) -> tuple[str, str, int, int | None, BundleTemplate]:
        s = self.settings
        kwargs = s.env_kwargs if env_name == s.env else {}
        return (
            env_name,
            json.dumps(kwargs, sort_keys=True, default=str),
            s.max_active_skills,
            s.skill_budget_chars,
            s.bundle_template,
        )

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Prompt building, chat templates, decoding: CPU work that would stall every other
        trajectory of the worker if it ran on the event loop (the default executor, as
        veRL's own token helpers use)."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _encode(self, messages: list[dict[str, Any]]) -> list[int]:
        """Chat template + generation prompt, uncut (the caller decides what to do if long)."""
        return list(self.continuous_token_builder.build_initial_tokens(messages))

    async def _generate(
        self, request_id: str, prompt_ids: list[int], params: dict[str, Any]
    ) -> tuple[Any, float]:
        t0 = time.perf_counter()
        out = await self.server_manager.generate(
            request_id=request_id, prompt_ids=prompt_ids, sampling_params=params
        )
        return out, time.perf_counter() - t0

    def _decode(self, token_ids: list[int]) -> str:
        # veRL annotates ``tokenizer`` as AutoTokenizer (the factory); it holds a tokenizer
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)  # type: ignore[attr-defined]

    def _max_turns(self, session: RolloutSession) -> int:
        cap = self.settings.max_turns or session.max_turns
        if self.max_assistant_turns:
            cap = min(cap, self.max_assistant_turns)
        return int(cap)

    # ----- the trajectory ----------------------------------------------------------------
    # veRL V1 takes a list of outputs (per_turn: one per turn; [] drops a failed session);
    # the base class annotates one output, the legacy trainer's case.
    async def run(  # type: ignore[override]
        self, sampling_params: dict[str, Any], **kwargs: Any
    ) -> AgentLoopOutput | list[AgentLoopOutput]:
        s = self.settings
        extra_info = dict(kwargs.get("extra_info") or {})
        env_name = str(extra_info.get("env") or s.env)
        task_id = extra_info.get("task_id")
        if task_id is None:
            raise ValueError(
                f"{AGENT_LOOP_NAME}: dataset row has no extra_info.task_id "
                f"(row index {kwargs.get('index')}); write the data with `reskill verl prepare`"
            )
        task_id = str(task_id)
        split = str(extra_info.get("split") or "train")
        training = split == "train"
        uid = str(kwargs.get("uid") or uuid.uuid4().hex)
        sid = kwargs.get("session_id")
        session_id = int(sid) if sid is not None else None
        steps = kwargs.get("global_steps")
        step = int(steps) if steps is not None else 0

        # 1. library version of this rollout (co-evolution off: the fixed library, "head")
        client = get_client(s, default_root=default_root(self.config))
        if training:
            a = await client.assign(uid, task_id, int(self.rollout_config.n), session_id)
            arm = a.arm
            view = await client.view(a.version) if a.version else None
            session_id = a.index
        elif s.validation == "published":  # a live test's arms split validation too
            a = await client.assign_eval(uid, task_id, session_id)
            arm = a.arm
            view = await client.view(a.version) if a.version else None
        else:
            arm = "eval"
            view = await client.view(None)

        # 2. the session on a leased env
        key = self._pool_key(env_name)
        lease: EnvLease | None = None
        session: RolloutSession | None = None
        error = ""
        per_turn: list[_TurnSample] = []
        stream = _Stream(logprobs=[] if sampling_params.get("logprobs") else None)
        server_extra: dict[str, Any] = {}
        t_env = t_gen = 0.0
        request_id = uuid.uuid4().hex  # one per trajectory: sticky server, shared prefix cache
        try:
            t0 = time.perf_counter()
            lease = await self._call(env_pool.lease, key, view)
            session = RolloutSession(
                lease,
                s.rollout,
                episode_id=f"{uid}/{session_id}",
                group_id=uid,
                arm=arm,
                step=step,
                max_turns=s.max_turns,
            )
            session.max_turns = self._max_turns(session)
            seed = zlib.crc32(f"{uid}:{session_id}".encode())
            await self._call(session.reset, task_id=task_id, seed=seed, options={"split": split})
            t_env += time.perf_counter() - t0
            if self.layout == "per_turn":
                await self._play_per_turn(session, sampling_params, request_id, per_turn)
            else:
                t_gen, t_env2 = await self._play_concat(
                    session, sampling_params, request_id, stream, server_extra
                )
                t_env += t_env2
        except EnvError as exc:  # an env failure ends this episode, never the training step
            error = f"{exc} [node {node_label()}]"  # which node lacks data / Java / retriever
            if lease is not None and not isinstance(exc, _PromptTooLong):
                lease.discard()
            if session is not None:
                session.fail(error)
            logger.warning(
                "%s: %s task %s (uid %s, rollout %s) failed: %s",
                AGENT_LOOP_NAME,
                env_name,
                task_id,
                uid,
                session_id,
                error,
            )
        except BaseException:
            if lease is not None:
                lease.discard()  # generation/tokenizer failure: veRL handles it; no reuse
            raise
        finally:
            if lease is not None:
                held = lease
                await asyncio.get_running_loop().run_in_executor(
                    _executor(s.env_threads), held.close
                )

        episode = session.episode() if session is not None else None
        # every session is reported, failed ones too (no env at all: a bare record), so the
        # trainer can count failures (reskill.max_failed_session_share); evaluation episodes
        # only count there, they never reach the version tester or the reservoir
        report = episode or _failed_episode(f"{uid}/{session_id}", env_name, task_id, split, error)
        try:
            if training:
                await client.record([report])
            else:
                await client.record_eval([report])
        except Exception as exc:  # reporting must not fail the rollout
            logger.warning("%s: could not report episode %s: %s", AGENT_LOOP_NAME, uid, exc)

        version = episode.library_version if episode is not None else None
        if version is None and view is not None:
            version = view.version
        ret = float(episode.reward) if episode is not None and not error else 0.0
        won = bool(episode.won) if episode is not None and not error else False
        n_turns = len(episode.turns) if episode is not None else 0
        common: dict[str, Any] = {
            "layout": self.layout,
            "episode_id": f"{uid}/{session_id}",
            "library_version": version,
            "arm": arm,
            "env_return": ret,
            "turns": n_turns,
            "won": won,
            "env": env_name,
            "task_id": task_id,
            "split": split,
            "stop_reason": episode.stop_reason if episode is not None else "error",
            "env_error": error,
            "tool_rewards": [],
            # "acc" opts into veRL's failed-session accounting in validation
            # (process_validation_metrics counts a missing session of a uid as acc 0)
            "reward_extra_info": {
                "acc": float(won),
                "won": float(won),
                "env_return": ret,
                "turns": float(n_turns),
            },
        }
        if error and self.use_v1:
            return []  # the session is absent; the group's statistics use the others
        if self.layout == "per_turn":
            return self._per_turn_outputs(per_turn, common, step, uid, session_id)
        return await self._concat_output(
            stream, common, server_extra, step, error, episode, kwargs, t_gen, t_env
        )

    # ----- per_turn ----------------------------------------------------------------------
    def _fit_prompt(self, session: RolloutSession) -> list[int] | None:
        """This turn's prompt ids within ``prompt_length`` (the turn contract's
        :meth:`~reskill_gym.rollout.RolloutSession.fit_prompt`), else ``None``; encoding is
        CPU work, so it runs off the event loop."""
        return session.fit_prompt(self._encode, self.prompt_length)

    async def _play_per_turn(
        self,
        session: RolloutSession,
        sampling_params: dict[str, Any],
        request_id: str,
        samples: list[_TurnSample],
    ) -> None:
        max_tokens = min(self.response_length, self.settings.max_tokens_per_turn)
        params = {**sampling_params, "max_tokens": max_tokens}
        while not session.done:
            ids = await self._off_loop(self._fit_prompt, session)
            if ids is None:
                logger.warning(
                    "%s: turn %d of %s does not fit rollout.prompt_length=%d even without "
                    "history; the episode stops (raise prompt_length or lower "
                    "reskill.rollout.max_observation_chars)",
                    AGENT_LOOP_NAME,
                    session.turn,
                    session.recorder.episode.episode_id,
                    self.prompt_length,
                )
                if session.turn == 0:
                    raise _PromptTooLong("the first prompt does not fit rollout.prompt_length")
                session.stop("length")
                break
            out, t_gen = await self._generate(request_id, ids, params)
            response = list(out.token_ids)[: self.response_length]
            lps = list(out.log_probs)[: len(response)] if out.log_probs is not None else None
            if sampling_params.get("logprobs") and (lps is None or len(lps) != len(response)):
                raise RuntimeError(
                    f"server returned {0 if lps is None else len(lps)} log-probs for "
                    f"{len(response)} tokens"
                )
            t0 = time.perf_counter()
            reply = await self._off_loop(self._decode, response)
            turn = await self._call(
                session.act,
                reply,
                input_tokens=len(ids),
                output_tokens=len(response),
            )
            samples.append(
                _TurnSample(
                    turn=session.turn - 1,
                    prompt_ids=ids,
                    response_ids=response,
                    logprobs=lps if sampling_params.get("logprobs") else None,
                    valid=turn.valid,
                    action=turn.action,
                    skill_ids=list(turn.skill_ids),
                    reward=float(turn.reward),
                    server_extra=dict(out.extra_fields or {}),
                    t_gen=t_gen,
                    t_env=time.perf_counter() - t0,
                )
            )

    def _per_turn_outputs(
        self,
        samples: list[_TurnSample],
        common: dict[str, Any],
        step: int,
        uid: str,
        session_id: int | None,
    ) -> list[AgentLoopOutput]:
        # a reply of 0 tokens teaches nothing, and a final row without trained tokens would
        # zero the whole session's advantage in veRL's multi-trajectory GRPO: drop such rows
        kept = [t for t in samples if t.response_ids]
        if not kept:
            logger.warning(
                "%s: uid %s rollout %s produced no tokens in %d turns; no sample",
                AGENT_LOOP_NAME,
                uid,
                session_id,
                len(samples),
            )
        outputs = []
        for t in kept:
            extra = _step_fields(t.server_extra, step)
            extra.update(common)
            extra.update(
                {
                    "turn": t.turn,
                    "turn_invalid": not t.valid,
                    "invalid_spans": [] if t.valid else [[0, len(t.response_ids)]],
                    "action": t.action,
                    "skill_ids": t.skill_ids,
                    "turn_scores": [t.reward],
                    "reward_extra_info": dict(common["reward_extra_info"]),
                }
            )
            outputs.append(
                AgentLoopOutput(
                    prompt_ids=t.prompt_ids,
                    response_ids=t.response_ids,
                    response_mask=[1] * len(t.response_ids),
                    response_logprobs=t.logprobs,
                    reward_score=float(common["env_return"]),
                    num_turns=2,
                    metrics=AgentLoopMetrics(generate_sequences=t.t_gen, tool_calls=t.t_env),
                    extra_fields=extra,
                )
            )
        return outputs

    # ----- concat ------------------------------------------------------------------------
    async def _play_concat(
        self,
        session: RolloutSession,
        sampling_params: dict[str, Any],
        request_id: str,
        st: _Stream,
        server_extra: dict[str, Any],
    ) -> tuple[float, float]:
        t_gen = t_env = 0.0
        st.messages = await self._off_loop(session.messages)
        ids = await self._off_loop(self._encode, st.messages)
        if len(ids) > self.prompt_length:
            raise _PromptTooLong(
                f"the first prompt ({len(ids)} tokens) exceeds rollout.prompt_length="
                f"{self.prompt_length}"
            )
        st.ids, st.chat_turns = ids, 1
        while not session.done:
            budget = self.response_length - len(st.mask)
            if budget <= 0:
                session.stop("length")
                break
            params = {
                **sampling_params,
                "max_tokens": min(budget, self.settings.max_tokens_per_turn),
            }
            prompt_len = len(st.ids)
            out, dt = await self._generate(request_id, st.ids, params)
            t_gen += dt
            # V1 tags need int min/max_global_steps: keep the server's (ToolAgentLoop does too)
            if not server_extra:
                server_extra.update(out.extra_fields or {})
            elif (out.extra_fields or {}).get("max_global_steps") is not None:
                server_extra["max_global_steps"] = out.extra_fields["max_global_steps"]
            start = len(st.mask)
            merge, st.mask, st.logprobs = await self.ct_merge_assistant_token(
                st.ids, list(out.token_ids), st.mask, st.logprobs, assistant_logprobs=out.log_probs
            )
            st.ids = merge.token_ids
            st.chat_turns += 1
            reply = await self._off_loop(self._decode, list(out.token_ids))
            t0 = time.perf_counter()
            turn = await self._call(
                session.act, reply, input_tokens=prompt_len, output_tokens=len(out.token_ids)
            )
            t_env += time.perf_counter() - t0
            if not turn.valid:
                st.invalid_spans.append([start, len(st.mask)])
            if session.done:
                break
            if len(st.mask) >= self.response_length:
                session.stop("length")
                break
            previous = [*st.messages, {"role": "assistant", "content": reply}]
            updated = await self._off_loop(session.messages)
            if updated[: len(previous)] != previous:
                raise RuntimeError(
                    "concat layout: the session's messages do not extend the previous turn's "
                    "(the turn contract must repeat earlier messages verbatim)"
                )
            merge, mask2, lps2 = await self.ct_merge_context_msg(
                previous, updated, st.ids, st.mask, st.logprobs
            )
            if len(mask2) >= self.response_length:
                session.stop("length")  # the observation does not fit: the stream ends here
                break
            st.ids, st.mask, st.logprobs, st.messages = merge.token_ids, mask2, lps2, updated
            st.chat_turns += 1
        return t_gen, t_env

    async def _concat_output(
        self,
        st: _Stream,
        common: dict[str, Any],
        server_extra: dict[str, Any],
        step: int,
        error: str,
        episode: Any,
        kwargs: dict[str, Any],
        t_gen: float,
        t_env: float,
    ) -> AgentLoopOutput:
        ids, mask, lps = st.ids, st.mask, st.logprobs
        if not ids:  # failed before the first prompt: veRL's row prompt + the error, no reply
            raw = [dict(m) for m in kwargs.get("raw_prompt") or [] if m.get("role") == "system"]
            raw.append({"role": "user", "content": f"(environment error: {error})"})
            ids = await self.ct_build_initial_tokens(raw)
        prompt_ids, response_ids, mask, lps = self._split(ids, mask, lps)
        if error:
            mask = [0] * len(mask)  # no learning signal from a broken episode
        turns = episode.turns if episode is not None else []
        extra = _step_fields(server_extra, step)
        extra.update(common)
        extra.update(
            {
                "turn": 0,
                "turn_invalid": any(not t.valid for t in turns),
                "invalid_spans": [
                    [a, min(b, len(mask))] for a, b in st.invalid_spans if a < len(mask)
                ],
                "action": "",
                "skill_ids": sorted({i for t in turns for i in t.skill_ids}),
                "turn_scores": [float(t.reward) for t in turns],
            }
        )
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids,
            response_mask=mask,
            response_logprobs=lps,
            reward_score=float(common["env_return"]),
            num_turns=st.chat_turns,
            metrics=AgentLoopMetrics(generate_sequences=t_gen, tool_calls=t_env),
            extra_fields=extra,
        )

    def _split(
        self, ids: list[int], mask: list[int], lps: list[float] | None
    ) -> tuple[list[int], list[int], list[int], list[float] | None]:
        """Prompt / response split with veRL's length invariants (never trust, always cut)."""
        n = len(mask)
        prompt_ids, response_ids = ids[: len(ids) - n], ids[len(ids) - n :]
        if not response_ids:
            # a trajectory without a reply still needs one (masked) response token
            pad = self.tokenizer.pad_token_id  # type: ignore[attr-defined]  # see _decode
            response_ids, mask = [pad if pad is not None else 0], [0]
            lps = [0.0] if lps is not None else None
        rl = self.response_length
        response_ids, mask = response_ids[:rl], mask[:rl]
        if lps is not None:
            lps = lps[:rl]
            if len(lps) != len(mask):
                raise RuntimeError(f"log-probs ({len(lps)}) and mask ({len(mask)}) disagree")
        if len(prompt_ids) > self.prompt_length:
            prompt_ids = prompt_ids[-self.prompt_length :]
        return prompt_ids, response_ids, mask, lps


def _step_fields(server_extra: dict[str, Any], step: int) -> dict[str, Any]:
    """The server's fields, with int ``global_steps``/``min_global_steps``/``max_global_steps``
    (V1's staleness tags are cast to int: ``None`` would break ``_compute_metrics``)."""
    out = dict(server_extra)
    for k in ("global_steps", "min_global_steps", "max_global_steps"):
        v = out.get(k)
        out[k] = int(v) if v is not None else int(step)
    return out
