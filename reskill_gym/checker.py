"""``check_skill_env``: the contract a skill-wrapped environment keeps.

Exports ``check_skill_env`` and ``REQUIRED_INFO_KEYS``.

Gymnasium's ``check_env`` checks the spaces and the API; this adds what trainers and the
skill creator rely on: seeded determinism of the augmented observation, the bare
observation recoverable from the augmented one, and the info keys present every turn.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

from reskill_gym.wrapper import SkillWrapper, strip_skill_block

__all__ = ["check_skill_env", "REQUIRED_INFO_KEYS"]

REQUIRED_INFO_KEYS: tuple[str, ...] = (
    "won",
    "task",
    "task_id",
    "task_type",
    "split",
    "turn",
    "observation",
    "skill_ids",
    "library_version",
    "bundle_text",
    "bundle_chars",
)


def _check_info(info: dict[str, Any], where: str) -> None:
    missing = [k for k in REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise AssertionError(f"{where}: info lacks {missing}")


def check_skill_env(
    env: gym.Env[str, str], *, seed: int = 0, actions: list[str] | None = None
) -> None:
    """Raise ``AssertionError`` when ``env`` breaks the skill-env contract.

    ``actions`` are stepped after ``reset``; by default the first admissible action (when
    the env lists them) or ``"look"``, three times.
    """
    wrapper = env
    while not isinstance(wrapper, SkillWrapper):
        if not isinstance(wrapper, gym.Wrapper):
            raise AssertionError("env is not wrapped by SkillWrapper")
        wrapper = wrapper.env
    check_env(env.unwrapped, skip_render_check=True)

    def run() -> list[tuple[str, dict[str, Any]]]:
        out = []
        obs, info = env.reset(seed=seed)
        _check_info(info, "reset")
        out.append((obs, info))
        for i in range(3):
            if actions is not None:
                if i >= len(actions):
                    break
                action = actions[i]
            else:
                adm = info.get("admissible_actions") or ["look"]
                action = adm[0]
            obs, _, term, trunc, info = env.step(action)
            _check_info(info, f"step {i}")
            if (term or trunc) and "skill_log" not in info:
                raise AssertionError("episode ended without info['skill_log']")
            out.append((obs, info))
            if term or trunc:
                break
        return out

    first, second = run(), run()
    for (o1, i1), (o2, i2) in zip(first, second, strict=True):
        if o1 != o2 or i1["skill_ids"] != i2["skill_ids"]:
            raise AssertionError("same seed, different augmented observations or bundles")
        if strip_skill_block(o1, i1) != i1["observation"]:
            raise AssertionError("bare observation not recoverable from the augmented one")
