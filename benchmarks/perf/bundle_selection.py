"""Bundle selection speed: mean microseconds per turn to select and render a skill bundle.

Run: ``python benchmarks/perf/bundle_selection.py`` (``--quick`` for a fast pass).

Synthetic libraries of 10 / 100 / 1,000 / 10,000 skills with ALFWorld-like regex
triggers. Episodes are 30 turns; each turn has a fresh observation (so the observation
pattern set is really scanned), the previous action comes from a realistic command
vocabulary, and every episode has a new task (so retrieval ranks once per episode).

Columns:
* ``mixed``: general / beginning / action_pattern / observation_pattern, a quarter each.
* ``+retrieval``: the same with a fifth of the skills retrieval-triggered (BM25).
* ``retr. 1st turn``: a retrieval-only library, first turn of a new task (BM25 scoring of
  the task text, uncached; later turns of the episode hit the cache).
* ``build ms``: building the view's selector (once per library version).
Goal (issue 2): <= 50 us/turn at 1,000 non-retrieval skills; <= 1 ms with retrieval.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time

from reskill_gym.skills import BundleSelector, Skill, Trigger, TurnContext

OBJECTS = ["apple", "mug", "bowl", "cup", "plate", "knife", "egg", "lettuce", "pencil", "book"]
PLACES = ["countertop", "fridge", "microwave", "sinkbasin", "cabinet", "drawer", "shelf", "desk"]
VERBS = ["heat", "cool", "clean", "examine", "put", "find", "place", "slice"]


def make_library(n: int, retrieval_share: float, rng: random.Random) -> list[Skill]:
    skills = []
    kinds = ["general", "beginning", "action_pattern", "observation_pattern"]
    for i in range(n):
        if rng.random() < retrieval_share:
            kind = "retrieval"
        else:
            kind = kinds[i % 4]
        obj, place, verb = rng.choice(OBJECTS), rng.choice(PLACES), rng.choice(VERBS)
        pattern = None
        if kind == "action_pattern":
            pattern = rf"^(take|open|go to) {obj}{i % 97}? ?\d* ?(from )?{place}"
        elif kind == "observation_pattern":
            pattern = rf"\b{place} {i % 13 + 1}\b.*\b{obj}\b"
        skills.append(
            Skill(
                name=f"skill-{i:05d}",
                description=f"{verb} the {obj} using the {place} number {i}.",
                when_to_use=f"The task mentions {verb}ing a {obj} near the {place}.",
                content=f"Go to {place} {i % 13 + 1} and {verb} the {obj}. " * 3,
                trigger=Trigger(type=kind, pattern=pattern),
            )
        )
    return skills


def make_episodes(n_episodes: int, turns: int, rng: random.Random) -> list[list[TurnContext]]:
    episodes = []
    for e in range(n_episodes):
        task = f"put a {rng.choice(VERBS)}ed {rng.choice(OBJECTS)} in {rng.choice(PLACES)} (episode {e})"
        prev = None
        eps = []
        for t in range(turns):
            place = rng.choice(PLACES)
            obs = (
                f"You arrive at {place} {rng.randint(1, 13)}. On the {place}, you see a "
                f"{rng.choice(OBJECTS)} {rng.randint(1, 3)}, and a {rng.choice(OBJECTS)} "
                f"{rng.randint(1, 3)}. (turn {t}, episode {e})"
            )
            eps.append(TurnContext(turn=t, previous_action=prev, observation=obs, task=task))
            prev = rng.choice(
                [
                    f"go to {rng.choice(PLACES)} {rng.randint(1, 5)}",
                    f"take {rng.choice(OBJECTS)} {rng.randint(1, 3)} from {rng.choice(PLACES)} 1",
                    f"open {rng.choice(PLACES)} {rng.randint(1, 5)}",
                ]
            )
        episodes.append(eps)
    return episodes


CLOCK = time.process_time  # CPU time of this process: robust on a shared, loaded machine


def per_turn_us(selector: BundleSelector, episodes: list[list[TurnContext]]) -> float:
    n = 0
    t0 = CLOCK()
    for eps in episodes:
        for ctx in eps:
            selector.select(ctx)
            n += 1
    return (CLOCK() - t0) / n * 1e6


def first_turn_us(selector: BundleSelector, episodes: list[list[TurnContext]]) -> float:
    t0 = CLOCK()
    for eps in episodes:
        selector.select(eps[0])
    return (CLOCK() - t0) / len(episodes) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer turns, no 10,000-skill row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of CPU time")
    args = ap.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10000]
    n_eps = 20 if args.quick else 100
    try:
        import re2  # noqa: F401

        engine = "re2"
    except ImportError:
        engine = "python re"
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.platform()}; regex: {engine}"
    )
    clock = "wall-clock" if args.wall else "process CPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"episodes: {n_eps} x 30 turns, a new task per episode; {clock} time; load {load:.1f}\n")
    header = (
        f"{'skills':>7} | {'mixed us/turn':>13} | {'+retrieval us/turn':>18} | "
        f"{'retr. 1st turn us':>17} | {'build ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        rng = random.Random(args.seed + n)
        mixed = make_library(n, 0.0, rng)
        t0 = CLOCK()
        sel = BundleSelector(mixed)
        build_ms = (CLOCK() - t0) * 1e3
        warm = make_episodes(2, 30, rng)
        per_turn_us(sel, warm)
        eps = make_episodes(n_eps, 30, rng)
        mixed_us = per_turn_us(sel, eps)

        retr = make_library(n, 0.2, rng)
        sel_r = BundleSelector(retr)
        per_turn_us(sel_r, warm)  # builds the BM25 index
        retr_us = per_turn_us(sel_r, make_episodes(n_eps, 30, rng))
        sel_only = BundleSelector(make_library(n, 1.0, rng))  # retrieval triggers only
        per_turn_us(sel_only, warm)
        first_us = first_turn_us(sel_only, make_episodes(max(5, n_eps // 2), 1, rng))
        print(
            f"{n:>7,} | {mixed_us:>13.1f} | {retr_us:>18.1f} | {first_us:>17.1f} | {build_ms:>8.1f}"
        )


if __name__ == "__main__":
    main()
