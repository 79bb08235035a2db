"""The contract every ReSkill text environment follows.

Exports ``FreeText``, ``EngineStep``, ``EngineCrashedError`` and ``TextEnv``.

``TextEnv`` owns what is common to ALFWorld, ScienceWorld and Search: task choice from a
split under a seed, ``max_turns`` truncation, empty/over-long action handling and the
``info`` keys trainers and the skill wrapper rely on (``won``, ``task``, ``task_id``,
``task_type``, ``split``, ``turn``, ``invalid_action``, ``admissible_actions`` when known).
Subclasses implement three engine hooks and nothing else.
"""

from __future__ import annotations

import abc
import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["FreeText", "EngineStep", "EngineCrashedError", "TextEnv", "SPLITS"]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "seen", "unseen")


class FreeText(spaces.Text):
    """A ``Text`` space that accepts any string up to ``max_length``.

    Gymnasium's ``Text`` only contains strings over a fixed charset; engine observations
    carry punctuation, newlines and the occasional non-ASCII character, so membership here
    is "a ``str`` no longer than ``max_length``". ``sample()`` draws printable ASCII.

    >>> space = FreeText(max_length=32)
    >>> space.contains("Nothing happens.\\n")
    True
    >>> space.contains("x" * 33)
    False
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None) -> None:
        super().__init__(
            max_length=max_length,
            min_length=min_length,
            charset=string.ascii_letters + string.digits + " ",
            seed=seed,
        )

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FreeText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, FreeText) and other.max_length == self.max_length


class _SharedTextBatch(Sequence[str]):
    """Strings of a vector env's shared int32 buffer (Unicode code points, 0-terminated)."""

    def __init__(self, shared_memory: Any, n: int, max_length: int) -> None:
        buffer = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)
        self._data: np.ndarray = buffer.reshape((n, max_length))

    def __len__(self) -> int:
        return self._data.shape[0]

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(len(self))[i])
        row = self._data[i]
        end = np.flatnonzero(row == 0)
        return "".join(map(chr, (row[: end[0]] if end.size else row).tolist()))

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return repr(tuple(self))


def _register_shared_memory() -> None:
    """Let ``AsyncVectorEnv`` (shared memory on, its default) carry any ``FreeText`` string.

    Gymnasium stores ``Text`` as indices into the space's charset, which fails on the
    punctuation of real observations; ``FreeText`` stores Unicode code points instead
    (0 = end of string) in the same int32 buffer layout.
    """
    from gymnasium.vector.utils import shared_memory as sm

    @sm.read_from_shared_memory.register(FreeText)
    def _read(space: FreeText, shared_memory: Any, n: int = 1) -> _SharedTextBatch:
        # Gymnasium reads shared memory once, at construction, and hands out that object
        # after every step; a tuple of str would freeze at the first value, so this is a
        # live view that decodes on access (and deep-copies into a plain tuple).
        return _SharedTextBatch(shared_memory, n, space.max_length)

    @sm.write_to_shared_memory.register(FreeText)
    def _write(space: FreeText, index: int, values: str, shared_memory: Any) -> None:
        size = space.max_length
        dest = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)
        codes = np.fromiter(map(ord, values[:size]), dtype=np.int32, count=min(len(values), size))
        dest[index * size : index * size + codes.size] = codes
        dest[index * size + codes.size : (index + 1) * size] = 0


_register_shared_memory()


class EngineCrashedError(RuntimeError):
    """The engine process died (JVM killed, planner crash); ``reset()`` starts a fresh one."""


@dataclass
class EngineStep:
    """What an engine hook returns for one action."""

    observation: str
    reward: float
    done: bool
    won: bool
    invalid_action: bool = False
    admissible_actions: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TextEnv(gym.Env[str, str], abc.ABC):
    """Base class: a text observation, a text action, one task per episode.

    Subclasses implement :meth:`task_ids`, :meth:`_engine_reset` and :meth:`_engine_step`.
    """

    # Not ClassVar: gymnasium declares ``metadata`` as an instance-overridable attribute.
    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 4}
    env_name: ClassVar[str] = "text"
    max_observation_chars: ClassVar[int] = 65_536

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 50,
        max_action_chars: int = 512,
        render_mode: str | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.split = split
        self.max_turns = max_turns
        self.max_action_chars = max_action_chars
        self.render_mode = render_mode
        self.observation_space = FreeText(max_length=self.max_observation_chars)
        self.action_space = FreeText(max_length=max_action_chars)
        self._turn = 0
        self._task_info: dict[str, Any] = {}
        self._last_obs = ""
        self._episode_over = True

    # ----- hooks -------------------------------------------------------------------------
    @abc.abstractmethod
    def task_ids(self, split: str | None = None) -> list[str]:
        """Task ids of a split (default: this env's split), in a stable order."""

    @abc.abstractmethod
    def _engine_reset(
        self, task_id: str, seed: int, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Start ``task_id``; return the first observation and info with at least
        ``task`` (goal text) and ``task_type``."""

    @abc.abstractmethod
    def _engine_step(self, action: str) -> EngineStep:
        """Apply one (already cleaned) action."""

    # ----- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        split = options.pop("split", None)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"options['split'] must be one of {SPLITS}, got {split!r}")
            self.split = split
        task_id = options.pop("task_id", None)
        if task_id is None:
            ids = self.task_ids(self.split)
            if not ids:
                raise RuntimeError(f"{self.env_name}: split {self.split!r} has no tasks")
            task_id = ids[int(self.np_random.integers(len(ids)))]
        engine_seed = int(self.np_random.integers(2**31 - 1))
        obs, info = self._engine_reset(str(task_id), engine_seed, options)
        self._turn = 0
        self._episode_over = False
        self._task_info = {
            "task": info.pop("task"),
            "task_id": str(task_id),
            "task_type": info.pop("task_type"),
            "split": self.split,
        }
        self._last_obs = self._clip(obs)
        return self._last_obs, {
            **info,
            **self._task_info,
            "turn": 0,
            "won": False,
            "invalid_action": False,
        }

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._episode_over:
            raise RuntimeError(f"{self.env_name}: call reset() before step() (episode is over)")
        if not isinstance(action, str):
            raise TypeError(f"action must be str, got {type(action).__name__}")
        from reskill_gym.safe_text import valid_unicode

        # a lone surrogate (a policy's "\ud800") cannot be encoded for an engine or a log
        cleaned = " ".join(valid_unicode(action).split())
        if len(cleaned) > self.max_action_chars:
            logger.warning(
                "%s: action of %d chars truncated to %d",
                self.env_name,
                len(cleaned),
                self.max_action_chars,
            )
            cleaned = cleaned[: self.max_action_chars]
        result = self._engine_step(cleaned)
        self._turn += 1
        terminated = bool(result.done)
        truncated = (not terminated) and self._turn >= self.max_turns
        self._episode_over = terminated or truncated
        self._last_obs = self._clip(result.observation)
        info: dict[str, Any] = {
            **result.extra,
            **self._task_info,
            "turn": self._turn,
            "won": bool(result.won),
            "invalid_action": bool(result.invalid_action),
        }
        if result.admissible_actions is not None:
            info["admissible_actions"] = list(result.admissible_actions)
        return self._last_obs, float(result.reward), terminated, truncated, info

    def render(self) -> str | None:
        text = f"[turn {self._turn}] {self._last_obs}"
        if self.render_mode == "human":
            print(text)  # noqa: T201 - rendering to the terminal is the point of "human"
            return None
        return text

    # ----- shared pieces -----------------------------------------------------------------
    def _clip(self, observation: str) -> str:
        if len(observation) > self.max_observation_chars:
            return observation[: self.max_observation_chars - 3] + "..."
        return observation

    @staticmethod
    def _rng_from(seed: int) -> np.random.Generator:
        return np.random.default_rng(seed)
