"""The veRL agent loop that plays one ReSkill environment episode per trajectory.

Exports ``ReskillEnvAgentLoop`` (registered as ``reskill_env``), ``EnvPool``, ``EnvError``,
``env_pool``, ``default_root``, ``EXTRA_FIELD_KEYS`` and ``AGENT_LOOP_NAME``.

veRL 0.9.1 builds one agent-loop object per trajectory inside its agent-loop worker processes
(``AgentLoopWorker._run_agent_loop``: ``hydra.utils.instantiate`` of the registry entry) and
awaits ``run(sampling_params, **row)``. One run:

1. reads the task from the row's ``extra_info`` (``env``, ``task_id``, ``split``; written by
   ``reskill verl prepare``);
2. asks co-evolution which skill-library version this rollout uses (training rows: by the
   GRPO group ``uid`` and the rollout's ``session_id``; validation rows, ``split != train``:
   HEAD), see :mod:`reskill_verl.coevolution_actor`;
3. takes an environment from the worker's pool (engines are expensive to start), pins the
   version with ``SkillWrapper.set_skills`` and resets it to the task; every blocking env call
   runs in a thread pool, never on the event loop;
4. grows one chat token stream: the system message of the row, then per turn a user message
   from :func:`reskill_gym.wrapper.turn_prompt` (task, bare observation, the skill block as
   its own segment, admissible commands) and the assistant reply generated token-in/token-out
   by ``server_manager.generate``. veRL's continuous-token helpers keep the bookkeeping:
   assistant tokens get mask 1 (and their log-probs), observation/skill/template tokens 0;
5. parses the reply into a command (:func:`reskill_verl.actions.parse_action`) and steps;
6. stops at the end of the episode, at the turn cap, or when the response budget
   (``rollout.response_length``) is spent; an observation that would overflow the budget is
   dropped, so ``len(response) == len(mask) <= response_length`` always holds;
7. reports the ``Episode`` (bare observations, actions, skills fired, version, arm) to
   co-evolution and returns ``AgentLoopOutput`` with ``reward_score`` = env return (veRL's
   reward manager is skipped) and ``extra_fields`` (``EXTRA_FIELD_KEYS``).

An environment that raises ends the episode: the trajectory is returned with its response mask
zeroed (no gradient), reward 0, the error in ``extra_fields["env_error"]``; the env is closed
instead of pooled, and the tester never sees the episode. A failing ``generate`` call is not an
env error: it propagates to veRL (which marks the group failed), the env is closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from reskill_gym.envs.registration import ENV_IDS
from reskill_gym.episode import Episode, Turn
from reskill_gym.skills import LibraryView, SkillLibrary
from reskill_gym.wrapper import (
    DEFAULT_SYSTEM_PROMPT,
    SKILL_SEPARATOR,
    SkillWrapper,
    strip_skill_block,
    turn_prompt,
)
from reskill_verl.actions import parse_action
from reskill_verl.coevolution_actor import get_client
from reskill_verl.config import AGENT_LOOP_NAME, ReskillVerlConfig

__all__ = [
    "ReskillEnvAgentLoop",
    "EnvPool",
    "EnvError",
    "env_pool",
    "default_root",
    "EXTRA_FIELD_KEYS",
    "AGENT_LOOP_NAME",
]

logger = logging.getLogger(__name__)

EXTRA_FIELD_KEYS: tuple[str, ...] = (
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
"""Keys every output's ``extra_fields`` carries (plus veRL's global-step fields from the server)."""


# --------------------------------------------------------------------------------------------
# Per-process state: veRL creates a loop object per trajectory, so pools live at module level.


class EnvPool:
    """Idle wrapped environments per (env name, kwargs), reused across trajectories.

    >>> pool = EnvPool(max_idle=1)
    >>> env = pool.acquire(("demo", ()), lambda: object())
    >>> pool.release(("demo", ()), env)
    >>> pool.acquire(("demo", ()), lambda: object()) is env
    True
    """

    def __init__(self, max_idle: int = 64) -> None:
        self.max_idle = max_idle
        self._idle: dict[Any, list[Any]] = {}
        self._lock = threading.Lock()
        self.created = 0

    def acquire(self, key: Any, factory: Any) -> Any:
        """An idle env for ``key``, else a new one from ``factory()`` (call in a thread)."""
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
            self.created += 1
        return factory()

    def release(self, key: Any, env: Any, *, healthy: bool = True) -> None:
        """Return ``env`` to the pool, or close it (unhealthy, or the pool is full)."""
        if healthy:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.max_idle:
                    idle.append(env)
                    return
        try:
            env.close()
        except Exception as exc:  # a crashed engine may fail to close; it is gone either way
            logger.warning("closing env failed: %s: %s", type(exc).__name__, exc)

    def idle(self, key: Any) -> int:
        with self._lock:
            return len(self._idle.get(key, []))

    def close(self) -> None:
        """Close every idle env."""
        with self._lock:
            envs = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
        for env in envs:
            self.release(None, env, healthy=False)


env_pool = EnvPool()
_EXECUTOR: list[ThreadPoolExecutor] = []
_EXECUTOR_LOCK = threading.Lock()
_SETTINGS: dict[int, tuple[Any, ReskillVerlConfig]] = {}
_FIXED_VIEWS: dict[tuple[str, str | None], LibraryView | None] = {}


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
    _SETTINGS.clear()
    _SETTINGS[id(config)] = (config, settings)
    env_pool.max_idle = settings.env_pool_size
    return settings


def _fixed_view(env_name: str, skills: str | None) -> LibraryView | None:
    """The library view used when co-evolution is off (read once per process)."""
    key = (env_name, skills)
    if key not in _FIXED_VIEWS:
        if skills is None:
            view = None
        else:
            from pathlib import Path

            from reskill_gym.envs.registration import seed_library_path

            path = seed_library_path(env_name) if skills == "seed" else Path(skills)
            if (path / ".reskill" / "HEAD").is_file():
                view = SkillLibrary.open(path).view()
            else:
                view = LibraryView.from_folder(path)
        _FIXED_VIEWS[key] = view
    return _FIXED_VIEWS[key]


def default_root(config: Any) -> str:
    """``<trainer.default_local_dir>/reskill`` as an absolute path (actor state lives there)."""
    import os

    trainer = config.get("trainer", {}) if hasattr(config, "get") else {}
    base = trainer.get("default_local_dir", None) or "checkpoints/reskill"
    return os.path.abspath(os.path.join(str(base), "reskill"))


class EnvError(RuntimeError):
    """An environment call failed (engine crash, unknown task, ...): ends the episode only."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _user_text(obs: str, info: dict[str, Any], settings: ReskillVerlConfig, first: bool) -> str:
    """The user message of a turn: the wrapper's layout (task only on the first turn)."""
    bare = _clip(strip_skill_block(obs, info), settings.max_observation_chars)
    bundle = info.get("bundle_text") or ""
    clipped = bare + SKILL_SEPARATOR + bundle if bundle else bare
    tp = turn_prompt(
        clipped,
        info,
        show_admissible=settings.show_admissible,
        include_skills=settings.include_skills,
    )
    segments = [s for s in tp.user_segments if s.text and (first or s.kind != "task")]
    return tp.joiner.join(s.text for s in segments)


@register(AGENT_LOOP_NAME)
class ReskillEnvAgentLoop(AgentLoopBase):
    """Multi-turn ReSkill environment episodes for veRL (see the module docstring).

    Constructed by veRL's worker with ``trainer_config``, ``server_manager``, ``tokenizer``,
    ``processor``, ``dataset_cls``, ``data_config``, ``hf_model_type`` and extra keywords
    (``tools``, ``name``), all forwarded to ``AgentLoopBase``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = _settings(self.config)
        self.response_length = int(self.rollout_config.response_length)
        multi_turn = self.rollout_config.get("multi_turn", None)
        cap = multi_turn.get("max_assistant_turns", None) if multi_turn is not None else None
        self.max_assistant_turns: int | None = int(cap) if cap else None

    # ----- helpers -----------------------------------------------------------------------
    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking env call in the worker's env threads; its failure is an ``EnvError``."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                _executor(self.settings.env_threads), lambda: fn(*args, **kwargs)
            )
        except Exception as exc:
            raise EnvError(f"{type(exc).__name__}: {exc}") from exc

    def _make_env(self, env_name: str) -> SkillWrapper:
        from reskill_gym.envs.registration import make_skill_env

        s = self.settings
        kwargs = dict(s.env_kwargs) if env_name == s.env else {}
        return make_skill_env(
            env_name,
            skills=None,
            max_active_skills=s.max_active_skills,
            skill_budget_chars=s.skill_budget_chars,
            **kwargs,
        )

    def _pool_key(self, env_name: str) -> tuple[str, str]:
        s = self.settings
        kwargs = s.env_kwargs if env_name == s.env else {}
        return (env_name, repr(sorted(kwargs.items())))

    # ----- the trajectory ----------------------------------------------------------------
    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
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
        session = kwargs.get("session_id")
        session_id = int(session) if session is not None else None

        # 1. library version of this rollout
        arm, version, view = "head", None, None
        if s.coevolution.enabled:
            client = get_client(s, default_root=default_root(self.config))
            if training:
                a = await client.assign(uid, task_id, int(self.rollout_config.n), session_id)
                arm, version = a.arm, a.version
                view = await client.view(version)
                session_id = a.index
            else:
                arm = "eval"
                view = await client.view(None)
        else:
            client = None
            view = _fixed_view(env_name, s.skills)
        version = view.version if view is not None else None

        # 2. messages: the row's system message, then the env's first observation
        raw_prompt = list(kwargs.get("raw_prompt") or [])
        messages: list[dict[str, Any]] = [dict(m) for m in raw_prompt if m.get("role") == "system"]
        if not messages:
            messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
        n_fixed = len(messages)

        key = self._pool_key(env_name)
        env: SkillWrapper | None = None
        healthy = True
        error = ""
        turns: list[Turn] = []
        turn_scores: list[float] = []
        parses: Counter[str] = Counter()
        fired: set[str] = set()
        ret, won, stop = 0.0, False, "turn_cap"
        t_env, t_gen = 0.0, 0.0
        request_id = uuid.uuid4().hex
        mask: list[int] = []
        lps: list[float] | None = [] if sampling_params.get("logprobs") else None
        ids: list[int] = []
        gen_extra: dict[str, Any] = {}
        task_text, task_type, final_obs = "", "", ""
        try:
            t0 = time.perf_counter()
            env = await self._call(env_pool.acquire, key, lambda: self._make_env(env_name))
            env.set_skills(view)
            seed = zlib.crc32(f"{uid}:{session_id}".encode())
            obs, info = await self._call(
                env.reset, seed=seed, options={"task_id": task_id, "split": split}
            )
            t_env += time.perf_counter() - t0
            task_text, task_type = str(info.get("task", "")), str(info.get("task_type", ""))
            max_turns = s.max_turns or int(getattr(env.unwrapped, "max_turns", 50))
            if self.max_assistant_turns:
                max_turns = min(max_turns, self.max_assistant_turns)
            messages.append({"role": "user", "content": _user_text(obs, info, s, first=True)})
            ids = await self.ct_build_initial_tokens(messages)
            while True:
                if len(turns) >= max_turns:
                    stop = "turn_cap"
                    break
                budget = self.response_length - len(mask)
                if budget <= 0:
                    stop = "length"
                    break
                params = {**sampling_params, "max_tokens": min(budget, s.max_tokens_per_turn)}
                t0 = time.perf_counter()
                out = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=ids, sampling_params=params
                )
                t_gen += time.perf_counter() - t0
                # V1 tags need int min/max_global_steps: keep the server's (ToolAgentLoop does too)
                if not gen_extra:
                    gen_extra.update(out.extra_fields or {})
                elif (out.extra_fields or {}).get("max_global_steps") is not None:
                    gen_extra["max_global_steps"] = out.extra_fields["max_global_steps"]
                merge, mask, lps = await self.ct_merge_assistant_token(
                    ids, list(out.token_ids), mask, lps, assistant_logprobs=out.log_probs
                )
                ids = merge.token_ids
                reply = self.tokenizer.decode(out.token_ids, skip_special_tokens=True)
                messages.append({"role": "assistant", "content": reply})
                parsed = parse_action(reply, info.get("admissible_actions"), mode=s.action_parser)
                parses[parsed.how] += 1
                t0 = time.perf_counter()
                obs2, reward, terminated, truncated, info2 = await self._call(
                    env.step, parsed.action
                )
                t_env += time.perf_counter() - t0
                skill_ids = list(info.get("skill_ids", ()))
                fired.update(skill_ids)
                turns.append(
                    Turn(
                        observation=strip_skill_block(obs, info),
                        action=parsed.action,
                        reward=float(reward),
                        skill_ids=skill_ids,
                        invalid_action=bool(info2.get("invalid_action", False)),
                        reply=reply,
                        parse=parsed.how,
                    )
                )
                turn_scores.append(float(reward))
                ret += float(reward)
                obs, info = obs2, info2
                if terminated or truncated:
                    won = bool(info.get("won", False))
                    final_obs = strip_skill_block(obs, info)
                    stop = "done" if terminated else "env_truncated"
                    break
                if len(mask) >= self.response_length:
                    stop = "length"
                    break
                previous = list(messages)
                messages.append({"role": "user", "content": _user_text(obs, info, s, first=False)})
                merge, mask2, lps2 = await self.ct_merge_context_msg(
                    previous, messages, ids, mask, lps
                )
                if len(mask2) >= self.response_length:
                    messages.pop()  # the observation does not fit: the stream ends after the reply
                    stop = "length"
                    break
                ids, mask, lps = merge.token_ids, mask2, lps2
        except EnvError as exc:  # an env failure ends this episode, never the training step
            healthy = False
            error = str(exc)
            stop = "error"
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
            healthy = False  # generation/tokenizer failure: veRL handles it; the env is not reused
            raise
        finally:
            if env is not None:
                await asyncio.get_running_loop().run_in_executor(
                    _executor(s.env_threads), lambda: env_pool.release(key, env, healthy=healthy)
                )

        if not ids:  # failed before the first prompt was built
            messages.append({"role": "user", "content": f"(environment error: {error})"})
            ids = await self.ct_build_initial_tokens(messages)
        prompt_ids, response_ids, mask, lps = self._split(ids, mask, lps)
        if error:
            mask = [0] * len(mask)  # no learning signal from a broken episode
            ret, won = 0.0, False

        if training and client is not None:
            episode = Episode(
                episode_id=f"{uid}/{session_id}",
                env_id=ENV_IDS.get(env_name, env_name),
                task_id=task_id,
                task=task_text,
                task_type=task_type,
                split=split,
                library_version=version,
                arm=arm,
                group_id=uid,
                step=int(kwargs.get("global_steps") or gen_extra.get("global_steps") or 0),
                turns=turns,
                final_observation=final_obs,
                reward=ret,
                won=won,
                error=error or None,
                parse_counts=dict(parses),
            )
            try:
                await client.record([episode])
            except Exception as exc:  # reporting must not fail the rollout
                logger.warning("%s: could not report episode %s: %s", AGENT_LOOP_NAME, uid, exc)

        steps = kwargs.get("global_steps")
        if steps is not None:  # V1 tags read these as ints, also when nothing was generated
            for k in ("global_steps", "min_global_steps", "max_global_steps"):
                if gen_extra.get(k) is None:
                    gen_extra[k] = int(steps)
        extra = {
            **gen_extra,
            "library_version": version,
            "arm": arm,
            "skill_ids": sorted(fired),
            "env_return": float(ret),
            "turns": len(turns),
            "won": bool(won),
            "env": env_name,
            "task_id": task_id,
            "split": split,
            "stop_reason": stop,
            "env_error": error,
            "turn_scores": turn_scores,
            "tool_rewards": [],
            "reward_extra_info": {
                "won": float(won),
                "env_return": float(ret),
                "turns": float(len(turns)),
            },
        }
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids,
            response_mask=mask,
            response_logprobs=lps,
            reward_score=float(ret),
            num_turns=len(messages) - n_fixed,
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
            pad = self.tokenizer.pad_token_id
            response_ids, mask = [pad if pad is not None else 0], [0]
            lps = [0.0] if lps is not None else None
        rl = self.response_length
        response_ids, mask = response_ids[:rl], mask[:rl]
        if lps is not None:
            lps = lps[:rl]
            if len(lps) != len(mask):
                raise RuntimeError(f"log-probs ({len(lps)}) and mask ({len(mask)}) disagree")
        pl = int(self.rollout_config.prompt_length)
        if len(prompt_ids) > pl:
            prompt_ids = prompt_ids[-pl:]
        return prompt_ids, response_ids, mask, lps
