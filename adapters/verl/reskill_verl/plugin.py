"""Registers the ReSkill agent loop and trainer in every process that imports veRL.

Exports ``load`` and ``REGISTERED``.

veRL imports this module from ``verl/__init__.py``: through the ``verl.plugins`` entry point
(``reskill = "reskill_verl.plugin"``) or through ``VERL_USE_EXTERNAL_MODULES=reskill_verl.plugin``
(our configs set it in Ray's runtime environment, so it reaches every worker on every node).
veRL swallows a failing plugin at DEBUG level, so this module logs the failure itself at
ERROR before re-raising: a missing registration shows up as one clear line, not as
"Agent loop reskill_env not registered" minutes later.
"""

from __future__ import annotations

import logging

__all__ = ["load", "REGISTERED"]

logger = logging.getLogger("reskill_verl.plugin")

REGISTERED: dict[str, str] = {}


def load() -> None:
    """Import the modules whose decorators register ``reskill_env`` and ``reskill_sync``."""
    try:
        from reskill_verl import agent_loop

        REGISTERED["agent_loop"] = agent_loop.AGENT_LOOP_NAME
        from reskill_verl import trainer

        REGISTERED["trainer"] = trainer.TRAINER_MODE
    except Exception:
        logger.exception(
            "reskill_verl plugin failed to load: the reskill_env agent loop / reskill_sync "
            "trainer are NOT registered in this process"
        )
        raise


load()
