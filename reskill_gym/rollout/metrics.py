"""Per-step episode metrics under one namespace, written by every trainer.

Exports ``episode_metrics``, ``validation_metrics``, ``success_group`` and
``EPISODE_METRIC_KEYS``.

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

``validation_metrics`` summarises evaluation episodes (the veRL adapter's validation passes):
success per split and, inside each split and over all of them (``all``), per task type and,
for ScienceWorld, per topic — the published trainer logs ALFWorld's success per task type and
ScienceWorld's per topic, and a mean over splits hides which kind of task a library helps.

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

__all__ = ["episode_metrics", "validation_metrics", "success_group", "EPISODE_METRIC_KEYS"]

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


_SCIENCEWORLD_ID = "ReSkill-ScienceWorld-v0"


def _key_part(text: str) -> str:
    """A metric-key segment: no ``/`` (it separates segments), never empty."""
    return text.replace("/", "_").strip() or "unknown"


def success_group(episode: Episode, kind: str) -> str | None:
    """The episode's group of ``kind``: ``task_type`` (every env) or ``topic`` (ScienceWorld:
    ScienceWorld's own topic of the task family; ``None`` for other envs).

    A dropped episode that never reached its task (no ``task_type``) is ``unknown``.

    >>> e = Episode(episode_id="1", env_id="ReSkill-ScienceWorld-v0", task_id="boil:3",
    ...             task_type="boil")
    >>> success_group(e, "task_type"), success_group(e, "topic")
    ('boil', 'Matter')
    """
    if kind == "task_type":
        return _key_part(episode.task_type)
    if kind == "topic":
        if episode.env_id != _SCIENCEWORLD_ID:
            return None
        from reskill_gym.envs.scienceworld.tasks import load_task_table

        family = load_task_table().get(episode.task_type or episode.task_id.split(":", 1)[0])
        return _key_part(family.topic if family is not None else "")
    raise ValueError(f"unknown success group kind {kind!r} (task_type, topic)")


def validation_metrics(episodes: Sequence[Episode], prefix: str = "val") -> dict[str, float]:
    """Success of evaluation episodes: ``<prefix>/<split>/episodes``, ``.../success_rate``,
    ``.../task_type/<type>/success_rate`` and (ScienceWorld) ``.../topic/<topic>/success_rate``
    for every split and for ``all`` of them, plus ``<prefix>/all/arm/<arm>/success_rate`` (the
    published protocol plays validation episodes on both arms of a live test).

    A dropped episode (``error`` set) counts as a failure, as in ``episode/success_rate``.

    >>> eps = [Episode(episode_id=str(i), env_id="x", task_id=f"t{i}", split=s, task_type=tt,
    ...                won=w, arm="eval")
    ...        for i, (s, tt, w) in enumerate([("seen", "heat", True), ("seen", "cool", False),
    ...                                        ("unseen", "heat", False)])]
    >>> m = validation_metrics(eps)
    >>> m["val/all/success_rate"], m["val/seen/task_type/heat/success_rate"]
    (0.3333333333333333, 1.0)
    >>> m["val/all/task_type/heat/success_rate"], m["val/unseen/episodes"]
    (0.5, 1.0)
    """
    if not episodes:
        return {}
    buckets: dict[str, list[bool]] = {}

    def add(key: str, won: bool) -> None:
        buckets.setdefault(key, []).append(won)

    for e in episodes:
        won = bool(e.won) and e.error is None
        for split in ("all", _key_part(e.split)):
            base = f"{prefix}/{split}"
            add(base, won)
            for kind in ("task_type", "topic"):
                group = success_group(e, kind)
                if group is not None:
                    add(f"{base}/{kind}/{group}", won)
        add(f"{prefix}/all/arm/{_key_part(e.arm or 'head')}", won)
    out: dict[str, float] = {}
    for key, wins in sorted(buckets.items()):
        if key.count("/") == 1:  # <prefix>/<split>
            out[f"{key}/episodes"] = float(len(wins))
        out[f"{key}/success_rate"] = sum(wins) / len(wins)
    return out
