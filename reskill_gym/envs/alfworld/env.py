"""``ReSkill-ALFWorld-v0``: ALFWorld's text engine (alfworld 0.4.2 + TextWorld PDDL) as a Gymnasium env.

Exports ``ALFWorldEnv`` and ``packaged_taskset``.

Tasks come from one of two sources, through the same engine path:

- ``generated`` (default): the task set shipped with the package (``taskset.json``: 3
  difficulty levels x train/seen/unseen, each task planner-verified). A task's game files
  are rendered on first use into ``$RESKILL_CACHE/alfworld/<digest>/json_2.1.1/...``
  (default ``~/.cache/reskill-gym``), so the cache is itself an official-layout tree.
- ``official``: the downloaded ALFWorld data, ``data_dir`` or ``$ALFWORLD_DATA`` holding
  ``json_2.1.1/{train,valid_seen,valid_unseen}``. ``source="auto"`` uses it when present.

The engine runs in a worker process per env (see ``worker.py`` for why). Reward is 1.0 on
the step that wins, else 0.0; ``info["score"]`` is the engine's score. Invalid commands get
the engine's own "Nothing happens." and ``info["invalid_action"] = True``. With
``reset(options={"expert": True})`` the planner's plan from the current state is in
``info["expert_plan"]`` and its first command in ``info["expert_action"]`` on every turn,
and :meth:`ALFWorldEnv.lookahead` labels the current state's admissible commands by one-step
look-ahead (each applied to a copy of the state and re-planned; the episode is unchanged).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from reskill_gym.envs.alfworld.engine import EngineProcess
from reskill_gym.envs.alfworld.official import OFFICIAL_SPLITS, find_official_root, index_official
from reskill_gym.envs.alfworld.spec import DIFFICULTIES, TaskSet, default_cache_dir
from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv

__all__ = ["ALFWorldEnv", "packaged_taskset"]

logger = logging.getLogger(__name__)

_GOAL_RE = re.compile(r"Your task is to:\s*(.+?)\s*$", re.S)
_OPTIONS = frozenset({"expert"})


@lru_cache(maxsize=1)
def packaged_taskset() -> TaskSet:
    """The generated task set shipped with the package."""
    ref = resources.files("reskill_gym.envs.alfworld").joinpath("taskset.json")
    with resources.as_file(ref) as path:
        return TaskSet.load(path)


@dataclass(frozen=True)
class _Game:
    task_id: str
    task_type: str
    gamefile: str
    spec: dict[str, Any] | None  # for rendering on first use (generated tasks)
    goal: str | None


_WARNED_GENERATED: list[bool] = []
_ALFWORLD_DEFAULT_DATA = Path("~/.cache/alfworld").expanduser()


def _warn_generated_once() -> None:
    if not _WARNED_GENERATED:
        _WARNED_GENERATED.append(True)
        logger.warning(
            "ALFWorld source='auto': no official data (data_dir and $ALFWORLD_DATA unset); "
            "using the generated tasks (pass source='generated' to say so, or 'official')"
        )


def _unset_if_empty(data_dir: str | os.PathLike[str] | None) -> str | os.PathLike[str] | None:
    """An empty ``data_dir`` or ``$ALFWORLD_DATA`` means "not set" (e.g. a launcher that
    forwards an unset variable as ``""``).

    An empty ``$ALFWORLD_DATA`` is also removed from this process's environment: the
    ``alfworld`` package's import (in the engine worker this env starts, which inherits the
    environment) would otherwise fail on ``mkdirs("")``.
    """
    value = os.environ.get("ALFWORLD_DATA")
    if value is not None and not value.strip():
        logger.info("ALFWorld: $ALFWORLD_DATA is empty; treating it as unset")
        del os.environ["ALFWORLD_DATA"]
    if data_dir is not None and not os.fspath(data_dir).strip():
        return None
    return data_dir


class ALFWorldEnv(TextEnv):
    """ALFWorld household tasks: text observation, text command, reward 1 on success.

    Args:
        split: ``train``, ``seen`` (held-out tasks of training scenes) or ``unseen``
            (held-out scenes and object types; ALFWorld's ``valid_unseen``).
        max_turns: episode horizon (truncation).
        difficulty: generated tasks only. ``tiny`` (2-3 receptacles, agent starts facing
            the target, 2-5 step plans), ``small`` (5 receptacles), ``std`` (~10, like ALFWorld).
        source: ``auto`` (official data if ``data_dir``/``$ALFWORLD_DATA`` holds
            ``json_2.1.1``, else generated), ``generated`` or ``official``.
        data_dir: official data folder (overrides ``$ALFWORLD_DATA``).
        taskset: path of a generated task set (default: the packaged one).
        cache_dir: where generated games are rendered (default ``$RESKILL_CACHE`` or
            ``~/.cache/reskill-gym``).
        step_timeout: seconds before a silent engine counts as hung (killed, error raised).

    Construction is cheap and engine-free (the worker starts on the first ``reset``):

    >>> env = ALFWorldEnv(difficulty="tiny", source="generated")
    >>> len(env.task_ids("train")) > 0, env.task_ids("train")[0]
    (True, 'tiny/train/0000')
    >>> env.close()
    """

    env_name: ClassVar[str] = "alfworld"
    max_observation_chars: ClassVar[int] = 8192

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 50,
        difficulty: str = "std",
        source: Literal["auto", "generated", "official"] = "auto",
        data_dir: str | os.PathLike[str] | None = None,
        taskset: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        step_timeout: float = 120.0,
        max_action_chars: int = 512,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            max_action_chars=max_action_chars,
            render_mode=render_mode,
        )
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        if source not in ("auto", "generated", "official"):
            raise ValueError(f"source must be 'auto', 'generated' or 'official', got {source!r}")
        self.difficulty = difficulty
        self.step_timeout = float(step_timeout)
        self.cache_dir = (
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        )

        official_root = None
        data_dir = _unset_if_empty(data_dir)
        if source != "generated":
            candidate = data_dir if data_dir is not None else os.environ.get("ALFWORLD_DATA")
            official_root = find_official_root(candidate) if candidate else None
            # importing the alfworld package sets $ALFWORLD_DATA to its own default cache
            # (~/.cache/alfworld) when unset: that value alone is not a request for the data
            asked = data_dir is not None or (
                candidate is not None and Path(candidate).expanduser() != _ALFWORLD_DEFAULT_DATA
            )
            if official_root is None and (source == "official" or asked):
                # asked for (source='official', or a data_dir / $ALFWORLD_DATA that is set):
                # never fall back to the generated tasks silently
                raise FileNotFoundError(
                    f"ALFWorld source={source!r}: {candidate or '$ALFWORLD_DATA (unset)'} holds "
                    "no json_2.1.1/{train,valid_seen,valid_unseen} tree (download the data with "
                    "`alfworld-download`, or use source='generated')"
                )
            if official_root is None:
                _warn_generated_once()
        self.source = "official" if official_root is not None else "generated"
        self._games: dict[str, dict[str, _Game]] = {}
        if official_root is not None:
            for split_name, games in index_official(
                official_root, cache_dir=self.cache_dir
            ).items():
                self._games[split_name] = {
                    g.task_id: _Game(g.task_id, g.task_type, g.gamefile, None, None) for g in games
                }
        else:
            tasks = TaskSet.load(taskset) if taskset is not None else packaged_taskset()
            root = self.cache_dir / "alfworld" / tasks.digest() / "json_2.1.1"
            for split_name, folder in OFFICIAL_SPLITS.items():
                self._games[split_name] = {
                    t.task_id: _Game(
                        t.task_id,
                        t.task_type,
                        str(root / folder / t.trial_dir / "game.tw-pddl"),
                        t.to_json(),
                        t.goal,
                    )
                    for t in tasks.select(difficulty=difficulty, split=split_name)
                }
        self._engine = EngineProcess(name="alfworld")
        self._expert = False

    # ----- TextEnv hooks -----------------------------------------------------------------
    def task_ids(self, split: str | None = None) -> list[str]:
        return list(self._games[split or self.split])

    def _find(self, task_id: str) -> _Game:
        game = self._games[self.split].get(task_id)
        if game is None:
            for games in self._games.values():
                if task_id in games:
                    return games[task_id]
            raise KeyError(
                f"unknown ALFWorld task id {task_id!r} ({self.source} tasks, difficulty {self.difficulty})"
            )
        return game

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; ALFWorld accepts task_id, split, expert"
            )
        game = self._find(task_id)
        self._expert = bool(options.get("expert", False))
        request = {
            "op": "load",
            "gamefile": game.gamefile,
            "spec": game.spec,
            "expert": self._expert,
        }
        for attempt in (1, 2):
            if not self._engine.alive:
                self._engine.start()
            try:
                reply = self._engine.request(
                    request, timeout=max(self.step_timeout, 300.0), what=f"reset({task_id})"
                )
                break
            except EngineCrashedError:
                if attempt == 2:
                    raise
                logger.warning(
                    "ALFWorld engine died while loading %s; retrying with a fresh worker", task_id
                )
        obs = reply["obs"]
        match = _GOAL_RE.search(obs)
        goal = game.goal or (match.group(1).rstrip(".") if match else "")
        info: dict[str, Any] = {
            "task": goal,
            "task_type": game.task_type,
            "admissible_actions": list(reply["admissible"]),
            "score": float(reply["score"]),
            "difficulty": self.difficulty if self.source == "generated" else None,
            "source": self.source,
            "engine_pid": self._engine.pid,
        }
        info.update(self._expert_info(reply))
        return obs, info

    def _engine_step(self, action: str) -> EngineStep:
        try:
            reply = self._engine.request(
                {"op": "step", "action": action}, timeout=self.step_timeout
            )
        except EngineCrashedError:
            self._episode_over = True
            raise
        except RuntimeError as exc:  # the engine raised mid-episode: its state is unknown
            self._engine.close()
            self._episode_over = True
            raise EngineCrashedError(f"{exc}\nThe engine was restarted; call reset().") from exc
        won = bool(reply["won"])
        return EngineStep(
            observation=reply["obs"],
            reward=1.0 if won else 0.0,
            done=bool(reply["done"]),
            won=won,
            invalid_action=bool(reply["invalid"]),
            admissible_actions=list(reply["admissible"]),
            extra={"score": float(reply["score"]), **self._expert_info(reply)},
        )

    def lookahead(self) -> dict[str, Any]:
        """One-step look-ahead from the current state (needs ``reset(options={"expert": True})``).

        Returns ``{"plan": [...], "lookahead": [{"action", "won", "plan_len", "obs"}, ...]}``:
        for every admissible command, the length of the planner's plan after it (0 if it wins,
        ``None`` if no plan exists from there). The engine state is restored, so the episode
        goes on as if nothing had been tried.
        """
        if self._episode_over:
            raise RuntimeError("alfworld: lookahead needs a running episode (call reset())")
        if not self._expert:
            raise RuntimeError("alfworld: lookahead needs reset(options={'expert': True})")
        try:
            reply = self._engine.request(
                {"op": "lookahead"}, timeout=self.step_timeout, what="lookahead"
            )
        except EngineCrashedError:
            self._episode_over = True
            raise
        except RuntimeError as exc:  # the engine raised: its state is unknown
            self._engine.close()
            self._episode_over = True
            raise EngineCrashedError(f"{exc}\nThe engine was restarted; call reset().") from exc
        return {"plan": list(reply["plan"]), "lookahead": list(reply["lookahead"])}

    def _expert_info(self, reply: dict[str, Any]) -> dict[str, Any]:
        if not self._expert:
            return {}
        plan = list(reply.get("plan") or [])
        return {"expert_plan": plan, "expert_action": plan[0] if plan else None}

    # ----- lifecycle ---------------------------------------------------------------------
    @property
    def engine_pid(self) -> int | None:
        """Process id of the running engine worker (``None`` before the first reset)."""
        return self._engine.pid if self._engine.alive else None

    def close(self) -> None:
        self._engine.close()
        self._episode_over = True
        super().close()
