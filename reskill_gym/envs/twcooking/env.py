"""``TextWorldCookingEnv``: TextWorld Cooking games on the real TextWorld engine.

Exports ``TextWorldCookingEnv``.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar

from reskill_gym.envs.base import SPLITS, EngineStep, TextEnv
from reskill_gym.envs.twcooking.games import LEVELS, ensure_game, game_ref, task_ids
from reskill_gym.llm.cache import cache_root

__all__ = ["TextWorldCookingEnv"]

logger = logging.getLogger(__name__)

_OPTIONS = frozenset({"expert"})
#: The banner TextWorld prints before the first room: everything before the room header.
_ROOM_HEADER = re.compile(r"^-= .+ =-$", re.M)
#: The interpreter's input prompt at the end of each output.
_PROMPT = re.compile(r"\s*>\s*\Z")


def _clean(text: str) -> str:
    return _PROMPT.sub("", text).strip()


class TextWorldCookingEnv(TextEnv):
    """Cook and eat a meal from the kitchen's cookbook: reward 1 when the meal is eaten.

    Args:
        split: ``train``, ``seen`` (held-out seeds over train foods) or ``unseen`` (held-out
            seeds over TextWorld's test foods and preparations).
        difficulty: ``tiny``, ``small`` or ``std`` (:data:`~.games.LEVELS`).
        games: task ids per split: ``{"train": 100, "seen": 20, "unseen": 20}`` by default.
        cache_dir: where games are generated (default ``$RESKILL_CACHE`` or
            ``~/.cache/reskill-gym``).
        max_turns: episode horizon (truncation).
        max_action_chars: longer commands are cut (the interpreter takes < 198 bytes).

    ``info`` carries ``admissible_actions`` (TextWorld's admissible commands), the
    objective as ``task``, ``score``/``max_score`` and, after ``reset(options={"expert":
    True})``, ``expert_plan`` (the engine's ``policy_commands`` from the current state) and
    ``expert_action``. Construction imports no engine:

    >>> env = TextWorldCookingEnv(difficulty="tiny")
    >>> env.task_ids("unseen")[:2]
    ['tiny/unseen/0000', 'tiny/unseen/0001']
    >>> env.close()
    """

    env_name: ClassVar[str] = "textworld"
    max_observation_chars: ClassVar[int] = 8192
    default_games: ClassVar[dict[str, int]] = {"train": 100, "seen": 20, "unseen": 20}

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 50,
        difficulty: str = "tiny",
        games: dict[str, int] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_action_chars: int = 190,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            max_action_chars=max_action_chars,
            render_mode=render_mode,
        )
        if difficulty not in LEVELS:
            raise ValueError(f"difficulty must be one of {tuple(LEVELS)}, got {difficulty!r}")
        counts = {**self.default_games, **(games or {})}
        bad = {
            k: v for k, v in counts.items() if k not in SPLITS or not isinstance(v, int) or v < 0
        }
        if bad:
            raise ValueError(f"games: {bad} (splits {SPLITS}, counts >= 0)")
        self.difficulty = difficulty
        self.games = counts
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else cache_root()
        self._tw: Any = None
        self._game_file: Path | None = None
        self._state: Any = None
        self._expert = False
        self.last_generation_s = 0.0

    # ----- TextEnv hooks -----------------------------------------------------------------
    def task_ids(self, split: str | None = None) -> list[str]:
        split = split or self.split
        return task_ids(self.difficulty, split, self.games.get(split, 0))

    def _start(self, game_file: Path) -> None:
        import textworld

        if self._tw is not None and self._game_file == game_file:
            return
        self._close_engine()
        infos = textworld.EnvInfos(
            admissible_commands=True,
            objective=True,
            policy_commands=True,
            won=True,
            lost=True,
            score=True,
            max_score=True,
        )
        with warnings.catch_warnings():
            # jericho flags every generated game as "not fully supported" (its score and
            # change detection): TextWorld reads score and win from its own game state
            warnings.filterwarnings("ignore", message=".*not fully supported", module="jericho")
            self._tw = textworld.start(str(game_file), infos)
        self._game_file = game_file

    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; TextWorld accepts task_id, split, "
                "expert"
            )
        ref = game_ref(task_id)
        game_file, self.last_generation_s = ensure_game(ref, self.cache_dir)
        self._start(game_file)
        self._expert = bool(options.get("expert", False))
        state = self._state = self._tw.reset()
        text = str(state.feedback)
        header = _ROOM_HEADER.search(text)
        obs = _clean(text[header.start() :] if header else text)
        info: dict[str, Any] = {
            "task": str(state.objective).strip(),
            "task_type": f"cooking-{ref.level}",
            "difficulty": ref.level,
            "admissible_actions": list(state.admissible_commands),
            "score": float(state.score),
            "max_score": float(state.max_score),
            "generation_s": round(self.last_generation_s, 3),
        }
        info.update(self._expert_info(state))
        return obs, info

    def _engine_step(self, action: str) -> EngineStep:
        before = list(self._state.admissible_commands or [])
        state, _score, done = self._tw.step(action)
        self._state = state
        won = bool(state.won)
        return EngineStep(
            observation=_clean(str(state.feedback)),
            reward=1.0 if won else 0.0,
            done=bool(done),
            won=won,
            invalid_action=action not in before,
            admissible_actions=list(state.admissible_commands or []),
            extra={
                "score": float(state.score),
                "lost": bool(state.lost),
                **self._expert_info(state),
            },
        )

    def _expert_info(self, state: Any) -> dict[str, Any]:
        if not self._expert:
            return {}
        plan = list(state.policy_commands or [])
        return {"expert_plan": plan, "expert_action": plan[0] if plan else None}

    # ----- lifecycle ---------------------------------------------------------------------
    def _close_engine(self) -> None:
        tw, self._tw, self._game_file = self._tw, None, None
        if tw is not None:
            try:
                tw.close()
            except Exception as exc:  # the interpreter is gone either way
                logger.debug("textworld: close raised %s", exc)

    def close(self) -> None:
        self._close_engine()
        self._episode_over = True
        super().close()
