"""Per-step episode metrics under one namespace, written by every trainer.

Exports ``episode_metrics`` and ``EPISODE_METRIC_KEYS``.

The local trainer and the veRL adapter both log these keys (next to their own ``losses/``,
``perf/`` ... keys and ``reskill_gym.coevolve.coevolution_metrics``), so ``reskill report``
draws the same plots for either:

- ``episode/count`` (episodes that ran), ``episode/dropped`` (episodes an environment error
  ended: they train nothing), ``episode/reward_mean`` (over the episodes that ran),
  ``episode/success_rate`` (wins over *all* episodes: a dropped one counts as a failure, so
  a node without its data cannot make the rate look better), ``episode/turns_mean``, ``episode/valid_action_ratio`` (turns whose reply carried a valid
  action), ``episode/invalid_command_ratio`` (commands the engine rejected),
  ``episode/parse/<how>`` (share of turns per parse outcome);
- ``arms/<arm>/episodes``, ``arms/<arm>/reward_mean``, ``arms/<arm>/success_rate`` (``head``
  when no version test is live, else ``incumbent``/``candidate``).

>>> from reskill_gym.episode import Episode, Turn
>>> eps = [Episode(episode_id=str(i), env_id="x", task_id="t", arm="head", reward=float(i),
...                won=bool(i), turns=[Turn(observation="o", action="a", parse="tagged")])
...        for i in range(2)]
>>> m = episode_metrics(eps)
>>> m["episode/success_rate"], m["arms/head/episodes"], m["episode/parse/tagged"]
(0.5, 2.0, 1.0)
>>> broken = Episode(episode_id="2", env_id="x", task_id="t", error="no data")
>>> m = episode_metrics([*eps, broken])
>>> m["episode/count"], m["episode/dropped"], round(m["episode/success_rate"], 3)
(2.0, 1.0, 0.333)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from reskill_gym.episode import Episode

__all__ = ["episode_metrics", "EPISODE_METRIC_KEYS"]

EPISODE_METRIC_KEYS: tuple[str, ...] = (
    "episode/count",
    "episode/dropped",
    "episode/reward_mean",
    "episode/success_rate",
    "episode/turns_mean",
    "episode/valid_action_ratio",
    "episode/invalid_command_ratio",
)


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Metrics of one step's episodes (dropped ones, ``error`` set, count as failures in
    ``episode/success_rate`` and nowhere else)."""
    kept = [e for e in episodes if e.error is None]
    n = len(kept)
    turns = [t for e in kept for t in e.turns]
    nan = float("nan")
    out: dict[str, float] = {
        "episode/count": float(n),
        "episode/dropped": float(len(episodes) - n),
        "episode/reward_mean": sum(e.reward for e in kept) / n if n else nan,
        "episode/success_rate": (sum(e.won for e in kept) / len(episodes) if episodes else nan),
        "episode/turns_mean": len(turns) / n if n else nan,
        "episode/valid_action_ratio": sum(t.valid for t in turns) / len(turns) if turns else nan,
        "episode/invalid_command_ratio": (
            sum(t.invalid_action for t in turns) / len(turns) if turns else nan
        ),
    }
    for how, count in sorted(Counter(t.parse for t in turns).items()):
        out[f"episode/parse/{how}"] = count / len(turns)
    arms: dict[str, list[Episode]] = {}
    for e in kept:
        arms.setdefault(e.arm or "head", []).append(e)
    for arm, eps in sorted(arms.items()):
        out[f"arms/{arm}/episodes"] = float(len(eps))
        out[f"arms/{arm}/reward_mean"] = sum(e.reward for e in eps) / len(eps)
        out[f"arms/{arm}/success_rate"] = sum(e.won for e in eps) / len(eps)
    return out
