"""``reskill eval --metric expert``: score expert-labelled states under skill conditions.

Exports ``ExpertScore``, ``ExpertRun``,
``StatePrompt``, ``state_prompt``, ``placebo_view``, ``placebo_pool``, ``score_figures``,
``run_expert`` and ``STATES_FILE`` / ``SCORES_FILE``.

Every state (see :mod:`reskill_gym.evaluation.states`) is shown to the agent under each
condition through the turn contract: ``RolloutSession(SkillWrapper(ReplayEnv(state), view))``
is reset and fed the state's prefix, so the skill bundle comes from the same wrapper and
triggers, and the prompt from the same builder and history window, as in training. The
``score``-mode agent (``ScoreAgent``: ``LocalBackend.token_logprobs`` + the one choice rule
:func:`~reskill_gym.rollout.choose_action`) scores every admissible command.

Conditions (``view`` is the ``LibraryView`` the wrapper gets):

- ``none``: no skills;
- ``library``: the library under test (one ``--skills`` path);
- ``placebo``: skills from other domains (default: the library folder's sibling libraries,
  e.g. ``skills/scienceworld`` and ``skills/search``), one per library skill that fired in
  this state, each cut so its rendered item has the same length as the library item it
  stands for; all ``general`` (they fire here). Same block size and structure, no
  information about this env;
- ``shuffled``: the library itself, but its triggers read the task sentence of a task of
  another type (:func:`~reskill_gym.evaluation.states.shuffled_task_texts`): the task-type
  skills (heat, cool, clean, examine) fire on the wrong tasks, state-triggered skills fire as
  usual, the prompt shows the true task.

Figures per (state, condition), from the choice probabilities ``softmax(score / T)`` under
the run's ``score_norm`` and temperature (``T=0``: one-hot on the best command): ``p_opt``
(mass on the optimal commands), ``top1`` (the best-scored command is optimal; ties go to the
first, as ``choose_action`` does) and ``expert_rank`` (1 + the number of commands scored
strictly above the planner's command). When two conditions give a state the very same
prompt (no skill fired under either), the scores are copied, not recomputed (``reused``).

Files in ``--out``: ``states.jsonl`` (the labelled states, written once), ``scores.jsonl``
(one line per state and condition, appended with fsync; a rerun skips what is there),
``config.json`` (what makes results comparable, pinned on the first score), then the
report (``reskill_gym.evaluation.expert_report``).

>>> f = score_figures([0.0, 2.0, 1.0], ["a", "b", "c"], optimal=["c"], expert="c", temperature=0)
>>> f["p_opt"], f["top1"], f["expert_rank"]
(0.0, False, 2)
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_json, atomic_write_text
from reskill_gym.evaluation.config import EvalAbortedError, EvalConfig, ExpertConfig
from reskill_gym.evaluation.episode_log import CONFIG_FILE, EpisodeLog, check_resume, config_meta
from reskill_gym.evaluation.runner import open_frozen, select_tasks
from reskill_gym.evaluation.states import (
    ExpertState,
    ReplayEnv,
    collect_states,
    shuffled_task_texts,
)
from reskill_gym.rollout import RolloutSession, TurnConfig, choice_probabilities
from reskill_gym.skills import LibraryView, Skill, Trigger
from reskill_gym.skills.bundle import DEFAULT_TEMPLATE, BundleTemplate

__all__ = [
    "ExpertScore",
    "ExpertRun",
    "StatePrompt",
    "state_prompt",
    "placebo_view",
    "placebo_pool",
    "score_figures",
    "run_expert",
    "STATES_FILE",
    "SCORES_FILE",
]

log = logging.getLogger(__name__)

STATES_FILE = "states.jsonl"
SCORES_FILE = "scores.jsonl"


class ExpertScore(BaseModel):
    """One line of ``scores.jsonl``: one state under one condition."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="condition|state key: what resume skips by.")
    state_key: str
    condition: str
    skill_ids: list[str] = Field(default_factory=list, description="Skills in the bundle.")
    bundle_chars: int = 0
    candidates: list[str]
    scores: list[float] = Field(description="The choice rule's score of each candidate.")
    score_norm: str
    temperature: float
    p_opt: float = Field(description="Probability mass on the optimal commands.")
    top1: bool = Field(description="The best-scored command is optimal.")
    expert_rank: int = Field(description="1 + commands scored strictly above the planner's.")
    chosen: str = Field(description="The command the choice rule drew (u from the state's rng).")
    input_tokens: int = 0
    reused: str | None = Field(
        None, description="Condition whose identical prompt these scores were copied from."
    )
    wall_s: float = 0.0


def score_figures(
    scores: Sequence[float],
    candidates: Sequence[str],
    *,
    optimal: Sequence[str],
    expert: str,
    temperature: float,
) -> dict[str, Any]:
    """``p_opt``, ``top1`` and ``expert_rank`` of one scored state (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    probs = choice_probabilities(s, temperature)
    opt = np.array([c in set(optimal) for c in candidates])
    best = int(np.argmax(s))
    rank = 1 + int(np.sum(s > s[list(candidates).index(expert)])) if expert in candidates else 0
    return {"p_opt": float(probs[opt].sum()), "top1": bool(opt[best]), "expert_rank": rank}


# ----- conditions ----------------------------------------------------------------------------
def placebo_pool(folders: Sequence[str | os.PathLike[str]]) -> list[Skill]:
    """Skills of the placebo folders, in folder order then name order."""
    pool: list[Skill] = []
    for f in folders:
        path = Path(f)
        if not path.is_dir():
            raise FileNotFoundError(f"placebo skills: {path} is not a folder")
        pool += list(LibraryView.from_folder(path))
    if not pool:
        raise ValueError(f"placebo skills: no skill in {', '.join(map(str, folders))}")
    return pool


def _fit_item(
    name: str, description: str, stream: str, target: int, template: BundleTemplate
) -> Skill:
    """A ``general`` skill whose rendered item is ``target`` characters, its content a cut of
    ``stream`` (the template strips the content, so the cut must start and end on a
    non-space: the first word start that allows it is used)."""

    def make(content: str) -> Skill:
        return Skill(
            name=name, description=description, content=content, trigger=Trigger(type="general")
        )

    overhead = len(template.render_item(make("x"))) - 1
    n = max(1, target - overhead)
    text = stream.strip()
    if len(text) < n:
        text = (text + " ") * (n // max(1, len(text)) + 1)
        text = text.strip()
    starts = [0] + [i + 1 for i, ch in enumerate(text[: len(text) - n]) if ch.isspace()]
    for i in starts:
        cut = text[i : i + n]
        if len(cut) == n and not cut[0].isspace() and not cut[-1].isspace():
            return make(cut)
    return make(text[:n].strip() or "x")  # pragma: no cover - a stream of one long word


def placebo_view(
    fired: Sequence[Skill],
    pool: Sequence[Skill],
    *,
    offset: int = 0,
    template: BundleTemplate = DEFAULT_TEMPLATE,
) -> LibraryView | None:
    """The placebo for one state: per library skill that fired, one pool skill (taken in turn
    from ``offset``) cut to the same rendered length; ``None`` when nothing fired.

    >>> lib = [Skill(name="open-first", description="d", content="Open the drawer 1 first.")]
    >>> pool = [Skill(name="look-around", description="d", content="Look around the lab, then act.")]
    >>> v = placebo_view(lib, pool)
    >>> [len(DEFAULT_TEMPLATE.render_item(s)) for s in (*lib, *v)]
    [39, 39]
    """
    if not fired:
        return None
    if not pool:
        raise ValueError("placebo_view: empty placebo pool")
    contents = [p.content.strip() for p in pool]
    out = []
    for i, s in enumerate(fired):
        j = (offset + i) % len(pool)
        name = pool[j].name if i < len(pool) else f"{pool[j].name}-{i // len(pool) + 1}"
        stream = " ".join(contents[j:] + contents[:j])
        target = len(template.render_item(s))
        out.append(_fit_item(name, pool[j].description, stream, target, template))
    return LibraryView(f"placebo-{offset}-{len(out)}", out)


class _TriggerTask(gym.Wrapper[str, str, str, str]):
    """Show the skill wrapper another task sentence at reset (the shuffled condition)."""

    def __init__(self, env: Any, trigger_task: str) -> None:
        super().__init__(env)
        self.trigger_task = trigger_task

    def reset(self, **kw: Any) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(**kw)
        info = dict(info)
        info["shown_task"], info["task"] = info["task"], self.trigger_task
        return obs, info


class _ShowTask(gym.Wrapper[str, str, str, str]):
    """Put the true task back above the skill wrapper (the prompt shows the real task)."""

    def reset(self, **kw: Any) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(**kw)
        info = dict(info)
        info["task"] = info.pop("shown_task")
        return obs, info


@dataclass
class StatePrompt:
    """The prompt of one state under one condition, as the agent would see it."""

    messages: list[dict[str, str]]
    info: dict[str, Any]

    @property
    def skill_ids(self) -> list[str]:
        return [str(s) for s in self.info.get("skill_ids", ())]

    @property
    def bundle_chars(self) -> int:
        return int(self.info.get("bundle_chars", 0))


def state_prompt(
    state: ExpertState,
    view: LibraryView | None,
    rollout: TurnConfig,
    *,
    trigger_task: str | None = None,
) -> StatePrompt:
    """Replay ``state``'s prefix through ``SkillWrapper`` and a ``RolloutSession``: the
    messages and info of its turn, exactly as an episode under ``view`` would show them."""
    from reskill_gym.wrapper import SkillWrapper

    env: Any = ReplayEnv(
        env_name=state.env,
        task=state.task,
        task_type=state.task_type,
        task_id=state.task_id,
        observations=state.observations,
        prefix=state.prefix,
        admissible=state.admissible,
        split=state.split,
    )
    if trigger_task is not None:
        env = _ShowTask(SkillWrapper(_TriggerTask(env, trigger_task), view))
    else:
        env = SkillWrapper(env, view)
    session = RolloutSession(env, rollout, episode_id=state.key, max_turns=state.step + 1)
    session.reset(task_id=state.task_id, seed=0)
    for action in state.prefix:
        session.act_command(action)
    return StatePrompt(session.messages(), dict(session.info))


# ----- running -----------------------------------------------------------------------------
@dataclass
class ExpertRun:
    """What ``run_expert`` did and every record it has (old and new)."""

    out_dir: Path
    states: list[ExpertState]
    scores: list[ExpertScore] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    collect_s: float = 0.0
    label_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def _read_states(path: Path) -> list[ExpertState]:
    out = []
    for n, line in enumerate(safe_files.read_text(path).splitlines(), 1):
        if line.strip():
            try:
                out.append(ExpertState.model_validate_json(line))
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not an expert state ({e})") from None
    return out


def _default_placebo(library: str) -> list[str]:
    root = Path(library).resolve()

    def holds_skills(folder: Path) -> bool:
        # links and FIFOs among the siblings are left out: never followed, never opened
        subs = safe_files.list_folder(folder, links="skip", special="skip")
        return any(q.kind == "folder" and (q.path / "SKILL.md").is_file() for q in subs)

    siblings = safe_files.list_folder(root.parent, links="skip", special="skip")
    sibs = [
        e.path for e in siblings if e.kind == "folder" and e.path != root and holds_skills(e.path)
    ]
    if not sibs:
        raise ValueError(
            f"placebo: {library} has no sibling skill library to draw other-domain skills "
            "from; set expert.placebo_skills (--placebo-skills)"
        )
    return [str(p) for p in sibs]


def _collect(config: EvalConfig, ecfg: ExpertConfig, out: Path) -> tuple[list[ExpertState], float]:
    from reskill_gym.envs.registration import make_env

    env: Any = make_env(config.env, split=config.splits[0], **config.env_options())
    t0 = time.monotonic()
    try:
        tasks = {s: select_tasks(env.unwrapped.task_ids(s), config.tasks) for s in config.splits}
        for split, ids in tasks.items():
            if not ids:
                raise ValueError(f"env {config.env}: split {split!r} has no tasks")

        def progress(task_id: str, n: int, secs: float) -> None:
            log.info("expert states: %s: %d states (%.1fs)", task_id, n, secs)

        states = collect_states(
            env, tasks, ecfg, label=ecfg.label, env_name=config.env, progress=progress
        )
    finally:
        env.close()
    donors = shuffled_task_texts(states)
    for s in states:
        s.shuffled_task = donors.get(s.task_id)
    atomic_write_text(out / STATES_FILE, "".join(s.model_dump_json() + "\n" for s in states))
    return states, time.monotonic() - t0


def run_expert(
    config: EvalConfig,
    out_dir: str | os.PathLike[str],
    *,
    agent: Any = None,
    stop_after: int | None = None,
    progress: Callable[[ExpertScore, int, int], None] | None = None,
) -> ExpertRun:
    """Collect (or reload) the states, then score each under every condition (resumable)."""
    from reskill_gym.evaluation.agents import AgentChoice, make_agent

    ecfg = config.expert
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalAbortedError(f"--out {out}: cannot create it ({e})") from e
    if (out / STATES_FILE).exists() or (out / SCORES_FILE).exists():
        check_resume(out, config)
    t0 = time.monotonic()
    lib_ref = config.skills[0]
    lib_view, lib_source = open_frozen(lib_ref, config.env)
    pool: list[Skill] = []
    placebo_src: list[str] = []
    if "placebo" in ecfg.conditions:
        try:
            placebo_src = ecfg.placebo_skills or _default_placebo(lib_source)
            pool = placebo_pool(placebo_src)
        except (ValueError, FileNotFoundError) as e:
            raise EvalAbortedError(str(e)) from e

    collect_s = 0.0
    if (out / STATES_FILE).exists():
        states = _read_states(out / STATES_FILE)
        log.info("expert: %d states from %s", len(states), out / STATES_FILE)
    else:
        try:
            states, collect_s = _collect(config, ecfg, out)
        except (ValueError, KeyError) as e:
            raise EvalAbortedError(f"env {config.env}: {e}") from e
    conditions: list[str] = list(ecfg.conditions)
    if "shuffled" in conditions and not any(s.shuffled_task for s in states):
        log.warning("expert: one task type only: the shuffled condition is left out")
        conditions.remove("shuffled")
    meta = config_meta(config) | {
        "library": {"source": lib_ref, "version": lib_view.version},
        "placebo_skills": placebo_src,
        "conditions": conditions,
        "states": len(states),
    }

    log_ = EpisodeLog(out / SCORES_FILE, record_type=ExpertScore)
    done = {r.key for r in log_.records()}
    jobs = [(s, c) for s in states for c in conditions]
    pending_states = [s for s in states if any(f"{c}|{s.key}" not in done for c in conditions)]
    run = ExpertRun(out, states, conditions=conditions, collect_s=collect_s, meta=meta)
    run.label_s = sum(s.label_s for s in states)
    run.skipped = sum(f"{c}|{s.key}" in done for s, c in jobs)
    if stop_after is not None:
        pending_states = pending_states[:stop_after]
    if pending_states:
        own = agent is None
        if own:
            agent = make_agent(
                config.agent,
                mode="score",
                temperature=config.temperature,
                score_norm=config.rollout.score_norm,
                llm_overrides=config.llm,
            )
        pinned = (out / CONFIG_FILE).exists()
        try:
            for state in pending_states:
                for rec in _score_state(
                    state, conditions, done, config, lib_view, pool, agent, AgentChoice
                ):
                    if not pinned:
                        atomic_write_json(
                            out / CONFIG_FILE, meta, indent=2, sort_keys=True, default=str
                        )
                        pinned = True
                    log_.append(rec)
                    done.add(rec.key)
                    run.ran += 1
                    if progress is not None:
                        progress(rec, run.ran + run.skipped, len(jobs))
        finally:
            if own:
                agent.close()
    run.scores = log_.records()
    run.wall_s = time.monotonic() - t0
    return run


def _score_state(
    state: ExpertState,
    conditions: Sequence[str],
    done: set[str],
    config: EvalConfig,
    lib_view: LibraryView,
    pool: Sequence[Skill],
    agent: Any,
    choice_type: type[Any],
) -> list[ExpertScore]:
    """Every condition of one state not yet in ``done`` (identical prompts scored once)."""
    rollout = config.rollout
    prompts: dict[str, StatePrompt] = {}
    lib = state_prompt(state, lib_view, rollout)
    for c in conditions:
        if c == "none":
            prompts[c] = state_prompt(state, None, rollout)
        elif c == "library":
            prompts[c] = lib
        elif c == "placebo":
            fired = [lib_view.get(str(i).rpartition("@")[0]) for i in lib.skill_ids]
            offset = zlib.crc32(state.key.encode()) % max(1, len(pool))
            prompts[c] = state_prompt(state, placebo_view(fired, pool, offset=offset), rollout)
        elif c == "shuffled":
            prompts[c] = state_prompt(state, lib_view, rollout, trigger_task=state.shuffled_task)
    out: list[ExpertScore] = []
    scored: dict[str, tuple[str, Any, int]] = {}  # prompt text -> (condition, choice, tokens)
    answer: Any
    for c in conditions:
        key = f"{c}|{state.key}"
        if key in done:
            continue
        p = prompts[c]
        text = json.dumps(p.messages)
        t0 = time.monotonic()
        reused = None
        if text in scored:
            reused, choice, tokens = scored[text]
        else:
            rng = np.random.default_rng([config.seeds[0], zlib.crc32(state.key.encode())])
            answer = agent.act(p.messages, p.info, rng)
            if not isinstance(answer, choice_type):
                raise TypeError(f"expert metric: agent answered {type(answer).__name__}")
            choice, tokens = answer.choice, answer.input_tokens
            scored[text] = (c, choice, tokens)
        figs = score_figures(
            choice.scores,
            state.admissible,
            optimal=state.optimal,
            expert=state.expert_action,
            temperature=config.temperature,
        )
        out.append(
            ExpertScore(
                key=key,
                state_key=state.key,
                condition=c,
                skill_ids=p.skill_ids,
                bundle_chars=p.bundle_chars,
                candidates=list(state.admissible),
                scores=list(choice.scores),
                score_norm=config.rollout.score_norm,
                temperature=config.temperature,
                chosen=choice.action,
                input_tokens=0 if reused else tokens,
                reused=reused,
                wall_s=round(time.monotonic() - t0, 3),
                **figs,
            )
        )
    return out
