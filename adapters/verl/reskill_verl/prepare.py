"""Dataset files for veRL: one parquet row per environment task.

Exports ``prepare_dataset``, ``task_rows``, ``shuffled``, ``per_source``, ``PreparedData`` and
``DEFAULT_VAL_SPLITS``.

veRL's ``RLHFDataset`` reads a parquet file whose ``prompt`` column is a list of chat
messages; every other column reaches the agent loop as a keyword of ``run`` (``extra_info``
included). The prompt holds only the turn contract's default system message for the env
(``reskill_gym.rollout.default_system_prompt``; veRL's dataset needs a prompt, e.g. for
``filter_overlong_prompts``): the agent loop builds every model input itself with the turn
contract (``reskill.rollout``), the first observation comes from the environment at reset. ``extra_info`` names the environment, the task and its split; the
agent loop treats every split other than ``train`` as evaluation (HEAD library, nothing
reported to the version tester). ``data_source`` is ``reskill/<env>/<split>`` (Search:
``reskill/search/<split>/<benchmark>``), so veRL's validation metrics (``won``,
``env_return``, ``turns`` from the loop's ``reward_extra_info``) come out per split: seen vs
unseen tasks, the paper's headline comparison. Each row has a unique ``extra_info.index`` (veRL groups
consecutive rows by it) and every row has the same ``extra_info`` keys (parquet structs).

>>> rows = task_rows("alfworld", ["tiny/train/0000", "tiny/train/0001"], "train", start=5)
>>> rows[1]["extra_info"], rows[1]["agent_name"], rows[1]["data_source"]
({'index': 6, 'env': 'alfworld', 'env_id': 'ReSkill-ALFWorld-v0', 'task_id': 'tiny/train/0001', 'split': 'train'}, 'reskill_env', 'reskill/alfworld/train')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from reskill_gym.atomic import atomic_path, atomic_write_json
from reskill_gym.envs.registration import get_spec, make_env
from reskill_gym.rollout import TurnConfig

__all__ = [
    "prepare_dataset",
    "task_rows",
    "shuffled",
    "per_source",
    "PreparedData",
    "DEFAULT_VAL_SPLITS",
]

logger = logging.getLogger(__name__)

AGENT_NAME = "reskill_env"  # == reskill_verl.config.AGENT_LOOP_NAME (kept import-free of pydantic)
DEFAULT_VAL_SPLITS: tuple[str, ...] = ("seen", "unseen")


@dataclass
class PreparedData:
    """What ``prepare_dataset`` wrote."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def task_rows(
    env: str,
    task_ids: Sequence[str],
    split: str,
    *,
    start: int = 0,
    system_prompt: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Dataset rows for ``task_ids`` of ``split`` (indices from ``start``); ``system_prompt``
    None: the turn contract's default for ``env``. ``sources`` maps a task to its data source
    (Search: its benchmark), appended to the row's ``data_source`` so veRL's validation
    metrics come out per benchmark as in the published runs."""
    src = dict(sources or {})
    gym_id = get_spec(env).gym_id  # unknown: a close match and the registered list
    if system_prompt is None:
        system_prompt = str(TurnConfig().resolve(env).system_prompt)
    return [
        {
            "data_source": f"reskill/{env}/{split}" + (f"/{src[tid]}" if tid in src else ""),
            "prompt": [{"role": "system", "content": system_prompt}],
            "ability": "agent",
            "reward_model": {"style": "env", "ground_truth": ""},
            "extra_info": {
                "index": start + i,
                "env": env,
                "env_id": gym_id,
                "task_id": str(tid),
                "split": split,
            },
            "agent_name": AGENT_NAME,
        }
        for i, tid in enumerate(task_ids)
    ]


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Atomic parquet write (temp file + fsync + rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ValueError(f"{path}: no rows to write (the split has no tasks?)")
    table = pa.Table.from_pylist(rows)
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def shuffled(items: Sequence[str], seed: int | None) -> list[str]:
    """``items`` in a seeded random order (``None``: unchanged).

    The order is numpy's ``RandomState(seed).permutation``, which is what pandas'
    ``DataFrame.sample(frac=1.0, random_state=seed)`` draws: the published data script shuffles
    the merged Search-R1 files that way (``scripts/data_prep/prepare_search.py``), so the same
    seed over the same file order picks the same questions.

    >>> shuffled(["a", "b", "c", "d"], 42)
    ['b', 'd', 'a', 'c']
    """
    if seed is None:
        return list(items)
    import numpy as np

    return [items[i] for i in np.random.RandomState(seed).permutation(len(items))]


def per_source(
    task_ids: Sequence[str], source_of: Callable[[str], str], n: int, seed: int | None
) -> list[str]:
    """At most ``n`` tasks of every data source, sources in sorted order, each shuffled with a
    fresh ``seed`` first (published ``_split_by_domain``: 300 validation questions per test set).

    >>> per_source(["q1", "q2", "p1", "q3"], lambda t: t[0], 2, None)
    ['p1', 'q1', 'q2']
    """
    groups: dict[str, list[str]] = {}
    for tid in task_ids:
        groups.setdefault(source_of(tid), []).append(tid)
    return [t for src in sorted(groups) for t in shuffled(groups[src], seed)[:n]]


def _source_of(raw: Any, env: str) -> Callable[[str], str]:
    fn = getattr(raw, "data_source_of", None)
    if fn is None:
        raise ValueError(
            f"--val-per-source needs an env whose tasks name a data source; {env} has none"
        )
    return cast(Callable[[str], str], fn)


def prepare_dataset(
    env: str,
    out_dir: str | os.PathLike[str],
    *,
    train_split: str = "train",
    val_splits: Sequence[str] = DEFAULT_VAL_SPLITS,
    env_kwargs: dict[str, Any] | None = None,
    limit_train: int | None = None,
    limit_val: int | None = None,
    shuffle_seed: int | None = None,
    val_per_source: int | None = None,
    val_per_split: int | None = None,
    system_prompt: str | None = None,
) -> PreparedData:
    """Write ``train.parquet`` (``train_split``) and ``val.parquet`` (``val_splits``).

    ``env_kwargs`` select the task set (e.g. ``{"difficulty": "tiny"}`` for ALFWorld, or
    ``{"dataset": "nq", "data_dir": ...}`` for Search) and must match ``reskill.env_kwargs``
    of the training config. ``shuffle_seed``: the training tasks are shuffled (``shuffled``)
    before ``limit_train`` cuts them, and each data source's validation tasks before
    ``val_per_source`` does. ``val_per_source``: at most this many validation tasks per data
    source (Search: per benchmark) in every val split. ``val_per_split``: at most this many
    validation tasks of every val split, after the seeded shuffle (the published ALFWorld
    validation plays 32 random games of each of its two splits). A ``manifest.json`` records
    what was written.
    """
    spec = get_spec(env)  # unknown: a close match and the registered list
    kwargs = dict(env_kwargs or {})
    raw = make_env(env, **kwargs)
    try:
        train_ids = shuffled(list(raw.unwrapped.task_ids(train_split)), shuffle_seed)[:limit_train]
        val_ids: list[tuple[str, str]] = []
        for split in val_splits:
            ids = list(raw.unwrapped.task_ids(split))
            if val_per_source is not None:
                ids = per_source(ids, _source_of(raw, env), val_per_source, shuffle_seed)
            if val_per_split is not None:
                ids = shuffled(ids, shuffle_seed)[:val_per_split]
            val_ids += [(split, t) for t in ids[:limit_val]]
        source_of = getattr(raw, "data_source_of", None)
        sources = (
            {t: source_of(t) for t in [*train_ids, *(t for _, t in val_ids)]} if source_of else {}
        )
    finally:
        raw.close()
    out = Path(out_dir)
    result = PreparedData(out)
    train_rows = task_rows(
        env, train_ids, train_split, system_prompt=system_prompt, sources=sources
    )
    _write_parquet(train_rows, out / "train.parquet")
    result.files["train"], result.counts["train"] = out / "train.parquet", len(train_rows)
    if val_splits:
        val_rows: list[dict[str, Any]] = []
        for split in val_splits:
            ids = [t for s, t in val_ids if s == split]
            val_rows += task_rows(
                env, ids, split, start=len(val_rows), system_prompt=system_prompt, sources=sources
            )
        _write_parquet(val_rows, out / "val.parquet")
        result.files["val"], result.counts["val"] = out / "val.parquet", len(val_rows)
    manifest = {
        "env": env,
        "env_id": spec.gym_id,
        "env_kwargs": kwargs,
        "train_split": train_split,
        "val_splits": list(val_splits),
        "shuffle_seed": shuffle_seed,
        "val_per_source": val_per_source,
        "val_per_split": val_per_split,
        "counts": result.counts,
        "files": {k: v.name for k, v in result.files.items()},
    }
    atomic_write_json(out / "manifest.json", manifest, indent=2, default=str)
    logger.info("wrote %s to %s", result.counts, out)
    return result
