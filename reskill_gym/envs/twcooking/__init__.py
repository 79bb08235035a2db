"""TextWorld Cooking for ReSkill: games from TextWorld's own ``tw-cooking`` generator.

Exports ``TextWorldCookingEnv`` (the ``ReSkill-TextWorld-v0`` entry point), ``GameRef``,
``LEVELS``, ``game_ref`` and ``ensure_game``.

Nothing here imports ``textworld``: games are generated and played on first ``reset``.
"""

from __future__ import annotations

from reskill_gym.envs.twcooking.env import TextWorldCookingEnv
from reskill_gym.envs.twcooking.games import LEVELS, GameRef, ensure_game, game_ref

__all__ = ["TextWorldCookingEnv", "GameRef", "LEVELS", "game_ref", "ensure_game"]
