"""Cost of keeping every episode (``reskill_gym.step_episodes``): bytes per 1,000 ALFWorld
episodes and the write's share of a step.

    python benchmarks/perf/step_episodes.py [--episodes 40] [--quick]

Real episodes: ALFWorld ``std`` rooms (50-turn horizon) with the seed library in the wrapper
(so the skill ids and texts a real run records are there), played by a random admissible
agent through the turn contract (``record_episodes``). Reported:

- compressed size per 1,000 episodes (and uncompressed, for the ratio), mean turns;
- the write's time (``write_step_episodes`` with the skill texts, as the runs call it,
  fsyncs included) against the time the same episodes took to *play with a zero-cost
  agent*: a real step also waits for the policy (seconds per turn for an LLM), so this
  share is an upper bound of the overhead per step. Goal: <= 1 %.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from reskill_gym.envs.registration import make_skill_env
from reskill_gym.rollout import record_episodes
from reskill_gym.step_episodes import EPISODES_DIR, shown_skill_texts, write_step_episodes
from reskill_gym.testing.workload import machine, pick_action


class RandomAdmissible:
    """A zero-cost agent: a random admissible command each turn."""

    reset_options: dict[str, object] = {}

    def begin(self, env: object, info: object, rng: object) -> None:
        self.rng = random.Random(0)

    def act(self, observation: str, info: dict) -> str:
        return pick_action("alfworld", info, self.rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=40, help="ALFWorld episodes to play.")
    ap.add_argument("--quick", action="store_true", help="20 episodes.")
    ap.add_argument("--repeats", type=int, default=5, help="Timed writes (median reported).")
    args = ap.parse_args()
    n = 20 if args.quick else args.episodes
    env = make_skill_env("alfworld", skills="seed", difficulty="std", max_turns=50, split="train")
    tasks = env.unwrapped.task_ids("train")[: max(1, n // 4)]
    t0 = time.perf_counter()
    episodes = record_episodes(env, RandomAdmissible(), tasks, group_size=4, seed=0)[:n]
    play_s = time.perf_counter() - t0
    view = env.view
    env.close()
    versions = {e.library_version for e in episodes}

    def lookup(version: str) -> object:
        if view is None or version not in versions:
            raise KeyError(version)
        return view

    writes = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t = time.perf_counter()
            texts = shown_skill_texts(episodes, lookup)
            path = write_step_episodes(tmp, r, episodes, skill_texts=texts)
            writes.append(time.perf_counter() - t)
        gz = path.stat().st_size
        index = (
            (Path(tmp) / EPISODES_DIR / path.name.replace(".jsonl.gz", ".index.json"))
            .stat()
            .st_size
        )
    raw = sum(len(e.model_dump_json()) + 1 for e in episodes)
    turns = statistics.mean(len(e.turns) for e in episodes)
    write_s = statistics.median(writes)
    print(f"machine: {machine()}")
    print(
        f"{len(episodes)} ALFWorld std episodes (random admissible agent, seed library), mean {turns:.1f} turns"
    )
    print()
    print("| figure | value |")
    print("|---|---:|")
    print(
        f"| compressed per 1,000 episodes (data + index) | {(gz + index) / len(episodes) * 1000 / 2**20:.1f} MiB |"
    )
    print(
        f"| uncompressed JSONL per 1,000 episodes | {raw / len(episodes) * 1000 / 2**20:.1f} MiB |"
    )
    print(f"| compression ratio | {raw / gz:.1f}x |")
    print(
        f"| write per episode (median of {args.repeats}) | {1000 * write_s / len(episodes):.2f} ms |"
    )
    print(f"| play per episode, zero-cost agent | {1000 * play_s / len(episodes):.0f} ms |")
    print(
        f"| write / play (upper bound of the step overhead; goal <= 1 %) | {100 * write_s / play_s:.2f} % |"
    )


if __name__ == "__main__":
    main()
