"""Steps/s per environment (single env and an AsyncVectorEnv of 2), reset time, memory.

    python benchmarks/perf/env_throughput.py [--envs alfworld scienceworld search] [--quick]

Random engine-meaningful actions (admissible ones when listed); skills off (raw engines).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time

import gymnasium as gym

import reskill_gym  # noqa: F401
from reskill_gym.testing.workload import ENV_KWARGS, machine, pick_action, rss_mib


def single(env_name: str, steps: int, resets: int) -> dict[str, float]:
    rss0 = rss_mib(os.getpid())
    env = gym.make(reskill_gym.envs.get_spec(env_name).gym_id, skills=None, **ENV_KWARGS[env_name])
    rng = random.Random(0)
    t = time.perf_counter()
    obs, info = env.reset(seed=0)
    first_reset = time.perf_counter() - t
    reset_times = []
    for i in range(resets):
        t = time.perf_counter()
        obs, info = env.reset(seed=i + 1)
        reset_times.append(time.perf_counter() - t)
    n = 0
    t = time.perf_counter()
    while n < steps:
        obs, _, term, trunc, info = env.step(pick_action(env_name, info, rng))
        n += 1
        if term or trunc:
            obs, info = env.reset(seed=n)
    elapsed = time.perf_counter() - t
    mem = rss_mib(os.getpid()) - rss0
    env.close()
    gc.collect()
    return {
        "steps_s": n / elapsed,
        "first_reset_s": first_reset,
        "reset_ms": 1000 * sum(reset_times) / max(len(reset_times), 1),
        "mem_mib": mem,
    }


def vector(env_name: str, steps: int) -> float:
    fns = [
        (
            lambda: gym.make(
                reskill_gym.envs.get_spec(env_name).gym_id, skills=None, **ENV_KWARGS[env_name]
            )
        )
        for _ in range(2)
    ]
    venv = gym.vector.AsyncVectorEnv(fns)
    rng = random.Random(0)
    _, infos = venv.reset(seed=[0, 1])
    n = 0
    t = time.perf_counter()
    while n < steps:
        actions = []
        for i in range(2):
            one = {k: v[i] for k, v in infos.items() if not k.startswith("_")}
            actions.append(pick_action(env_name, one, rng))
        _, _, _, _, infos = venv.step(actions)
        n += 2
    elapsed = time.perf_counter() - t
    venv.close()
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--envs", nargs="+", default=["alfworld", "scienceworld", "search", "textworld"]
    )
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    args = ap.parse_args()
    steps, resets = (40, 3) if args.quick else (200, 10)
    print(f"# env throughput ({machine()})")
    print(
        "| env | steps/s (1 env) | steps/s (AsyncVectorEnv x2) | first reset s | reset ms | memory MiB/env |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.envs:
        try:
            s = single(name, steps, resets)
            v = vector(name, steps)
        except Exception as exc:  # report, keep measuring the others
            print(f"| {name} | error: {type(exc).__name__}: {exc} | | | | |")
            continue
        print(
            f"| {name} | {s['steps_s']:.1f} | {v:.1f} | {s['first_reset_s']:.2f} | "
            f"{s['reset_ms']:.1f} | {s['mem_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
