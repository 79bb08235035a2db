"""Random-agent win rates of the generated ALFWorld levels (how much reward an untrained policy sees).

Exports ``random_agent_win_rate`` and ``main``.

    python benchmarks/alfworld_random_agent.py --episodes 30 --max-turns 50 [--difficulty tiny]

The agent picks uniformly among ``info["admissible_actions"]`` every turn (seeded); one
episode per task, cycling through the split's tasks in order, so the rate is an average
over task types.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from typing import Any

from reskill_gym.envs.alfworld.env import ALFWorldEnv
from reskill_gym.envs.alfworld.spec import DIFFICULTIES

__all__ = ["random_agent_win_rate", "main"]


def random_agent_win_rate(
    difficulty: str, *, episodes: int, max_turns: int = 50, split: str = "train", seed: int = 0
) -> dict[str, Any]:
    """Win rate (overall and per task type), mean steps/s and reset time of a uniform random agent."""
    rng = random.Random(seed)
    env = ALFWorldEnv(difficulty=difficulty, split=split, max_turns=max_turns, source="generated")
    ids = env.task_ids()
    wins, steps, step_time, reset_time = 0, 0, 0.0, 0.0
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    try:
        for ep in range(episodes):
            t0 = time.perf_counter()
            _, info = env.reset(seed=seed + ep, options={"task_id": ids[ep % len(ids)]})
            reset_time += time.perf_counter() - t0
            done = False
            t0 = time.perf_counter()
            while not done:
                _, _, term, trunc, info = env.step(rng.choice(info["admissible_actions"]))
                steps += 1
                done = term or trunc
            step_time += time.perf_counter() - t0
            wins += int(info["won"])
            per_type[info["task_type"]][0] += int(info["won"])
            per_type[info["task_type"]][1] += 1
    finally:
        env.close()
    return {
        "difficulty": difficulty,
        "split": split,
        "episodes": episodes,
        "max_turns": max_turns,
        "win_rate": wins / max(1, episodes),
        "per_type": {k: f"{w}/{n}" for k, (w, n) in sorted(per_type.items())},
        "steps_per_s": steps / max(step_time, 1e-9),
        "reset_s": reset_time / max(1, episodes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/alfworld_random_agent.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--max-turns", type=int, default=50)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", choices=DIFFICULTIES, action="append")
    args = parser.parse_args(argv)
    for difficulty in args.difficulty or DIFFICULTIES:
        result = random_agent_win_rate(
            difficulty,
            episodes=args.episodes,
            max_turns=args.max_turns,
            split=args.split,
            seed=args.seed,
        )
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
