"""Cost of skill injection: steps/s of the raw env vs the wrapped env, same process.

    python benchmarks/perf/wrapper_overhead.py [--envs alfworld scienceworld search] [--quick]

One engine instance is stepped through three fronts in alternating blocks: raw, wrapped
with the env's seed library, wrapped with a generated 1,000-skill library (a mix of
general/beginning/action/observation/retrieval triggers). Overhead = 1 - wrapped/raw.
Goal: <= 5 % on ALFWorld and ScienceWorld (fast step mode) with 1,000 skills.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workload import ENV_KWARGS, machine, pick_action  # noqa: E402

from reskill_gym.envs.registration import env_class, seed_library_path  # noqa: E402
from reskill_gym.skills import LibraryView, Skill, Trigger  # noqa: E402
from reskill_gym.wrapper import SkillWrapper  # noqa: E402

_VERBS = ["go to", "take", "open", "close", "put", "heat", "cool", "clean", "use", "examine"]
_NOUNS = ["apple", "mug", "drawer", "fridge", "sink", "lamp", "knife", "plate", "shelf", "box"]


def synthetic_library(n: int, seed: int = 0) -> LibraryView:
    """``n`` skills with realistic triggers; most patterns rarely match, as in a real library."""
    rng = random.Random(seed)
    kinds = ["action_pattern", "observation_pattern", "general", "beginning", "retrieval"]
    skills = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        verb, noun = rng.choice(_VERBS), rng.choice(_NOUNS)
        pattern = None
        if kind == "action_pattern":
            pattern = rf"^{verb} {noun} \d+"
        elif kind == "observation_pattern":
            pattern = rf"\b{noun}s? {i}\b"
        skills.append(
            Skill(
                name=f"skill-{i:05d}",
                description=f"How to {verb} the {noun} (variant {i}).",
                when_to_use=f"When the task involves a {noun}.",
                content=f"If you need the {noun}, {verb} it carefully; variant {i}.",
                trigger=Trigger(type=kind, pattern=pattern),
            )
        )
    return LibraryView(f"synthetic-{n}", skills)


def measure(env_name: str, steps_per_block: int, blocks: int) -> dict[str, float]:
    raw = env_class(env_name)(**ENV_KWARGS[env_name])
    fronts = {
        "raw": raw,
        "seed": SkillWrapper(raw, LibraryView.from_folder(seed_library_path(env_name))),
        "1000": SkillWrapper(raw, synthetic_library(1000)),
    }
    for env in fronts.values():  # warm-up: build selectors and indexes outside the clock
        _, info = env.reset(seed=10_000)
        env.step(pick_action(env_name, info, random.Random(1)))
    elapsed = dict.fromkeys(fronts, 0.0)
    counts = dict.fromkeys(fronts, 0)
    rng = random.Random(0)
    episode = 0
    for b in range(blocks):
        order = list(fronts) if b % 2 == 0 else list(reversed(fronts))
        for name in order:
            env = fronts[name]
            _, info = env.reset(seed=episode)
            episode += 1
            t = time.perf_counter()
            for _ in range(steps_per_block):
                _, _, term, trunc, info = env.step(pick_action(env_name, info, rng))
                counts[name] += 1
                if term or trunc:
                    elapsed[name] += time.perf_counter() - t
                    _, info = env.reset(seed=episode)
                    episode += 1
                    t = time.perf_counter()
            elapsed[name] += time.perf_counter() - t
    raw.close()
    return {k: counts[k] / elapsed[k] for k in fronts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--envs", nargs="+", default=["alfworld", "scienceworld", "search"])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    steps, blocks = (15, 4) if args.quick else (40, 10)
    print(f"# wrapper overhead ({machine()})")
    print("| env | raw steps/s | seed lib steps/s | 1,000 skills steps/s | overhead seed | overhead 1,000 |")
    print("|---|---|---|---|---|---|")
    for name in args.envs:
        try:
            r = measure(name, steps, blocks)
        except Exception as exc:
            print(f"| {name} | error: {type(exc).__name__}: {exc} | | | | |")
            continue
        o_seed = 1 - r["seed"] / r["raw"]
        o_k = 1 - r["1000"] / r["raw"]
        print(
            f"| {name} | {r['raw']:.1f} | {r['seed']:.1f} | {r['1000']:.1f} | "
            f"{100 * o_seed:+.1f} % | {100 * o_k:+.1f} % |"
        )


if __name__ == "__main__":
    main()
