"""reskill-gym: skill–policy co-evolution for agentic RL.

Importing the package registers the Gymnasium ids (``ReSkill-ALFWorld-v0``,
``ReSkill-ScienceWorld-v0``, ``ReSkill-Search-v0``) through lazy entry points, so no
engine, and no torch/verl/ray/vllm/transformers, is imported here.
"""

from __future__ import annotations

from reskill_gym.envs.registration import register_envs

__all__ = ["__version__"]
__version__ = "0.1.0"

register_envs()
