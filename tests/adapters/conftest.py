"""Fixtures shared by the adapter tests: an unmodified Gymnasium text env."""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest
from gymnasium import spaces

KEYPAD_ID = "TestKeypad-v0"


class Keypad(gym.Env[dict[str, str], str]):
    """A Gymnasium env written with no knowledge of reskill-gym: its goal in ``info["goal"]``,
    its valid moves in ``info["moves"]``, a dict observation, reward 1 when the code is typed."""

    def __init__(self, code_len: int = 2) -> None:
        self.observation_space = spaces.Dict({"text": spaces.Text(200, charset=string.printable)})
        self.action_space = spaces.Text(50, charset=string.printable)
        self.code_len = code_len

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        super().reset(seed=seed)
        self.code = "".join(str(int(d)) for d in self.np_random.integers(0, 2, self.code_len))
        self.typed = ""
        info = {"goal": f"type the code {self.code}", "moves": ["press 0", "press 1"]}
        return {"text": "A keypad with two keys."}, info

    def step(self, action: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        if action.startswith("press "):
            self.typed += action[6:]
        won = self.typed == self.code
        done = won or len(self.typed) >= self.code_len
        text = "Access granted." if won else f"Typed {self.typed}."
        return {"text": text}, float(won), done, False, {"moves": ["press 0", "press 1"]}


@pytest.fixture()
def keypad() -> Iterator[str]:
    """``TestKeypad-v0`` registered with Gymnasium (not with reskill-gym) for one test."""
    gym.register(KEYPAD_ID, entry_point=Keypad)
    yield KEYPAD_ID
    gym.registry.pop(KEYPAD_ID, None)
