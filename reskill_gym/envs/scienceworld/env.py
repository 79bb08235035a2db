"""``ReSkill-ScienceWorld-v0``: the real ScienceWorld simulator as a Gymnasium text env.

Exports ``ScienceWorldEnv``, ``PUBLISHED_WIN_REWARD``, ``PUBLISHED_SCORE_THRESHOLD`` and
``PUBLISHED_STEP_LIMITS``.

Episode = one task variation (task id ``"<task_name>:<variation>"``, splits in
:mod:`reskill_gym.envs.scienceworld.tasks`). The first observation is the room
description followed by the task text; each step sends the action to the engine
verbatim (including its disambiguation protocol: an ambiguous command is answered with a
numbered list and the next action ``"0"``, ``"1"``, ... picks one).

Reward (``reward=``): ``score`` (default) is the change of the engine score normalised to
[0, 1] (``score / 100``, a negative score — the engine's "failed" — clamps to 0); summed over
an episode it is the final normalised score, so a win returns exactly 1. ``published`` is the
published ReSkill signal (``scienceworld/envs.py`` ``compute_reward``): 0 on every step and,
on the step that ends the episode, 10 if the engine score is above 70. As published, the
episode also ends once the engine's clock passes the task's step limit
(``PUBLISHED_STEP_LIMITS``, in ticks: most commands take one, ``wait`` more); running out of
``max_turns`` before that earns nothing. ``info["score"]`` is the current normalised score, ``info["raw_score"]``
the engine's integer score in [-100, 100]. ``won`` = the engine marked the task completed
(score 100: the published success metric, ``env_manager.py`` ``_process_batch``, is score
>= 100 too); the episode terminates on completion or failure and truncates at ``max_turns``.

``action_hint=True`` puts the published per-turn action list in ``info["action_hint"]`` on
every reset and step: the engine's action templates and the objects observable now
(``envs.py`` ``_build_actions_hint``), which ``rollout.format: published`` shows as the
prompt's "Current available actions".

Determinism: the seed picks the task; the engine seeds its world by the variation
index, so an action sequence replays exactly in most tasks. Measured exceptions, engine
behaviour we cannot fix from outside: ``grow-fruit`` (bees move in an order that changes
from run to run) and ``power-component`` (the first episode after a gold-plan generation
completed one tick earlier than later ones). Gold plans won in every replay we ran.

Speed: valid actions are the slow part of the engine (~25x a bare step), so they are
computed only when ``admissible_actions=True`` (then every reset/step info carries them)
or on demand with :meth:`ScienceWorldEnv.admissible_actions`.

>>> env = ScienceWorldEnv(split="unseen")    # no JVM yet: it starts on the first reset
>>> env.task_ids()[0]
'change-the-state-of-matter-of:21'
>>> env.close()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv
from reskill_gym.envs.scienceworld.engine import (
    DEFAULT_JAVA_OPTIONS,
    EngineActionError,
    ScienceWorldEngine,
)
from reskill_gym.envs.scienceworld.tasks import (
    HELD_OUT_TASKS,
    SIMPLIFICATIONS,
    VariationSet,
    load_task_table,
    parse_task_id,
    split_task_ids,
)

__all__ = [
    "ScienceWorldEnv",
    "PUBLISHED_WIN_REWARD",
    "PUBLISHED_SCORE_THRESHOLD",
    "PUBLISHED_STEP_LIMITS",
]

PUBLISHED_WIN_REWARD = 10.0
"""``reward="published"``: what an episode ending above the threshold earns (``envs.py``)."""
PUBLISHED_SCORE_THRESHOLD = 70
"""``reward="published"``: the engine score an episode must end above (agent-lightning's)."""
PUBLISHED_STEP_LIMITS: dict[str, int] = {
    **dict.fromkeys(
        ("boil", "change-the-state-of-matter-of", "freeze", "melt",
         "measure-melting-point-known-substance", "measure-melting-point-unknown-substance",
         "grow-fruit", "chemistry-mix"),
        50,
    ),
    "use-thermometer": 30, "power-component": 30,
    "power-component-renewable-vs-nonrenewable-energy": 30, "test-conductivity": 30,
    "test-conductivity-of-unknown-substances": 30, "find-animal": 30, "find-living-thing": 30,
    "find-non-living-thing": 30, "find-plant": 30, "grow-plant": 30,
    "chemistry-mix-paint-secondary-color": 30, "chemistry-mix-paint-tertiary-color": 30,
    "lifespan-longest-lived": 30, "lifespan-longest-lived-then-shortest-lived": 30,
    "lifespan-shortest-lived": 30, "identify-life-stages-1": 30, "identify-life-stages-2": 30,
    "inclined-plane-determine-angle": 30, "inclined-plane-friction-named-surfaces": 30,
    "inclined-plane-friction-unnamed-surfaces": 30, "mendelian-genetics-known-plant": 30,
    "mendelian-genetics-unknown-plant": 30,
}  # fmt: skip
"""``reward="published"``: the engine's per-task step limit (``envs.py`` ``MAX_STEPS_PER_TASK``,
default 50): past it (in engine ticks, ``info["moves"]``) the published env is done."""

logger = logging.getLogger(__name__)

#: Engine replies that mean "this input did nothing" (InputParser / PythonInterface).
INVALID_PREFIXES: tuple[str, ...] = (
    "No known action matches that input.",
    "Unknown action.",
    "ERROR:",
)
AMBIGUOUS_PREFIX = "Ambiguous request"
_ELECTRICAL = ("power-component", "conductivity")


class ScienceWorldEnv(TextEnv):
    """ScienceWorld (30 tasks, engine variations) with one JVM per env instance.

    Args:
        split: ``train``, ``seen`` or ``unseen`` (see ``tasks.py`` for the definition).
        max_turns: truncation horizon (the engine's own default step limit is 100).
        admissible_actions: put the engine's valid actions in every ``info`` (slow).
        action_hint: put the published action templates + object list in every ``info``.
        reward: ``score`` (normalised score changes) or ``published`` (10 above 70 at the end).
        simplifications: engine simplifications, comma-separated (e.g. ``"easy"``).
        held_out_tasks: the task families of ``unseen`` (the rest are trained on).
        eval_variations: engine variation set of ``seen``/``unseen``: ``test`` or ``dev``.
        tasks: restrict every split to these task families.
        java_options: JVM flags (default: 1 GiB heap cap, serial GC; ``()`` = JVM defaults).
        engine_timeout_s: an engine call slower than this kills the JVM (crash error).
    """

    env_name = "scienceworld"

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 100,
        max_action_chars: int = 512,
        admissible_actions: bool = False,
        action_hint: bool = False,
        reward: Literal["score", "published"] = "score",
        simplifications: str = "",
        held_out_tasks: Sequence[str] = HELD_OUT_TASKS,
        eval_variations: VariationSet = "test",
        tasks: Sequence[str] | None = None,
        java_options: Sequence[str] = DEFAULT_JAVA_OPTIONS,
        engine_timeout_s: float = 600.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            max_action_chars=max_action_chars,
            render_mode=render_mode,
        )
        self._table = load_task_table()
        for part in filter(None, simplifications.split(",")):
            if part not in SIMPLIFICATIONS:
                raise ValueError(
                    f"unknown ScienceWorld simplification {part!r}; choose from {SIMPLIFICATIONS}"
                )
        self.simplifications = simplifications
        self.with_admissible = bool(admissible_actions)
        self.with_hint = bool(action_hint)
        if reward not in ("score", "published"):
            raise ValueError(f"reward must be 'score' or 'published', got {reward!r}")
        self.reward_mode = reward
        self.held_out_tasks = tuple(held_out_tasks)
        self.eval_variations = eval_variations
        self.tasks = None if tasks is None else tuple(tasks)
        # Validates every name now rather than at the first reset.
        split_task_ids(
            "train", held_out=self.held_out_tasks, eval_variations=eval_variations, tasks=self.tasks
        )
        self.engine = ScienceWorldEngine(java_options=java_options, timeout_s=engine_timeout_s)
        self._split_cache: dict[str, list[str]] = {}
        self._gold_cache: dict[tuple[str, int, str], list[str]] = {}
        self._score = 0  # clamped engine score (0..100) after the last step
        self._step_limit = 50  # reward="published": the task's engine step limit
        self.last_reset_seconds: float | None = None

    # ----- TextEnv hooks -----------------------------------------------------------------
    def task_ids(self, split: str | None = None) -> list[str]:
        split = split or self.split
        if split not in self._split_cache:
            self._split_cache[split] = split_task_ids(
                split,
                held_out=self.held_out_tasks,
                eval_variations=self.eval_variations,
                tasks=self.tasks,
            )
        return self._split_cache[split]

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        began = time.perf_counter()
        name, variation = parse_task_id(task_id, self._table)
        if "noElectricalAction" in self.simplifications and name.startswith(_ELECTRICAL):
            raise ValueError(f"task {name} needs electrical actions; drop 'noElectricalAction'")
        expert = bool(options.pop("expert", False))
        if options:
            logger.warning("scienceworld: ignoring unknown reset options %s", sorted(options))
        if not self.engine.alive:
            if self.engine.pid is not None:
                logger.warning(
                    "scienceworld: engine (pid %s) is gone; starting a fresh JVM", self.engine.pid
                )
            self.engine.start()
        key = (name, variation, self.simplifications)
        need_gold = expert and key not in self._gold_cache
        self.engine.load(name, variation, self.simplifications, gold=need_gold)
        if need_gold:
            self._gold_cache[key] = self.engine.gold_actions()
        # The engine's score is stale until the first step: an episode starts at 0.
        self._score = 0
        self._step_limit = PUBLISHED_STEP_LIMITS.get(name, 50)
        goal = self.engine.task_description()
        observation = f"{self.engine.look().rstrip()}\n\n{goal}"
        family = self._table[name]
        info: dict[str, Any] = {
            "task": goal,
            "task_type": name,
            "topic": family.topic,
            "variation": variation,
            "simplifications": self.simplifications,
            "score": 0.0,
            "raw_score": 0,
        }
        if expert:
            info["expert_plan"] = list(self._gold_cache[key])
        if self.with_admissible:
            info["admissible_actions"] = self.engine.valid_actions()
        if self.with_hint:
            info["action_hint"] = self._action_hint()
        self.last_reset_seconds = time.perf_counter() - began
        return observation, info

    def _engine_step(self, action: str) -> EngineStep:
        try:
            observation = self.engine.step(action)
        except EngineActionError as exc:
            # The JVM lived through it: report the engine's complaint as an invalid action.
            logger.warning("scienceworld: engine rejected %r: %s", action, exc)
            extra: dict[str, Any] = {"score": self._score / 100.0, "raw_score": self._score}
            if self.with_hint:
                extra["action_hint"] = self._action_hint()
            return EngineStep(
                observation=f"ERROR: the engine could not process that input ({exc}).",
                reward=0.0,
                done=False,
                won=False,
                invalid_action=True,
                admissible_actions=self.engine.valid_actions() if self.with_admissible else None,
                extra=extra,
            )
        raw_score = int(round(100 * self.engine.score()))
        completed = self.engine.completed()
        failed = raw_score < 0
        clamped = max(raw_score, 0)
        reward, self._score = (clamped - self._score) / 100.0, clamped
        done = completed or failed
        moves = self.engine.moves()
        if self.reward_mode == "published":  # envs.py: done includes the engine's step limit
            done = done or moves > self._step_limit
            win = done and raw_score > PUBLISHED_SCORE_THRESHOLD
            reward = PUBLISHED_WIN_REWARD if win else 0.0
        admissible = None
        if self.with_admissible:
            admissible = [] if done else self.engine.valid_actions()
        extra = {
            "score": clamped / 100.0,
            "raw_score": raw_score,
            "failed": failed,
            "ambiguous": observation.startswith(AMBIGUOUS_PREFIX),
            "moves": moves,
        }
        if self.with_hint:
            extra["action_hint"] = self._action_hint()
        return EngineStep(
            observation=observation,
            reward=reward,
            done=done,
            won=completed and not failed,
            invalid_action=observation.startswith(INVALID_PREFIXES),
            admissible_actions=admissible,
            extra=extra,
        )

    def _action_hint(self) -> str:
        """The published actions hint (``envs.py`` ``_build_actions_hint``, verbatim layout)."""
        actions, objects = self.engine.possible_actions(), self.engine.possible_objects()
        return (
            f"Valid_actions: {actions}, OBJ needs to be replaced with one of the following "
            f"objects: {objects}\n example: focus on door"
        )

    # ----- extras ------------------------------------------------------------------------
    def admissible_actions(self) -> list[str]:
        """The engine's valid action-object combinations now (~25x a step's cost)."""
        if self._episode_over:
            raise RuntimeError(
                "scienceworld: admissible_actions() needs an episode in progress (call reset())"
            )
        if not self.engine.alive:
            raise EngineCrashedError(
                "scienceworld: the engine is not running; call reset() to start a fresh one"
            )
        return self.engine.valid_actions()

    def close(self) -> None:
        """End the JVM (idempotent); a later reset() would start a new one."""
        self.engine.close()
        self._episode_over = True
        super().close()
