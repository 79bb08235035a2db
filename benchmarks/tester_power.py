"""How often does a version test pick the better library, and how fast? A power analysis.

Run: ``python benchmarks/tester_power.py [--sims 2000] [--json PATH]``

The tester (``reskill_gym.versioning.VersionTester``) compares an incumbent library A with a
candidate B inside GRPO groups and decides on episode *success*. The efficacy benchmark
measures what a library changes per decision (``p_opt``, a few hundredths); an episode of
ten decisions turns that into a small change in the success rate. This script asks the
tester's own question with known answers: both arms' episodes succeed with probability
``p_task`` (A) or ``p_task + delta`` (B), where ``p_task`` varies by task (Beta-distributed
around ``base``) and every group is one task, as in training. Each simulated test runs the
real tester (project defaults and ``TesterConfig.published()``) from a fresh start at the
run's shape (``groups_per_step`` groups of ``group_size`` a step) until it decides, and is
repeated ``--sims`` times per ``delta``; a step cap stops a test that would run forever
(reported as undecided).

Printed per config and ``delta``: P(accept B), the median steps and episodes to a decision,
and, for ``delta = 0``, the false-accept rate. A library whose true success gain is below
the smallest ``delta`` accepted reliably cannot be told apart from a neutral one by the loop.
Besides the two shipped configs, variants with longer tests (``min_steps``) and the
``probability`` decision rule show what it takes to detect a given gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from reskill_gym.versioning import GroupSpec, TesterConfig, VersionTester

DELTAS = (0.0, 0.02, 0.05, 0.1, 0.2)


def simulate(
    config: TesterConfig,
    *,
    base: float,
    delta: float,
    group_size: int,
    groups_per_step: int,
    sims: int,
    seed: int,
    max_steps: int = 200,
    concentration: float = 4.0,
) -> dict[str, Any]:
    """``sims`` independent tests of B (true gain ``delta``) against A."""
    rng = np.random.default_rng(seed)
    accepted, steps, episodes, undecided = 0, [], [], 0
    a, b = base * concentration, (1 - base) * concentration
    for _ in range(sims):
        tester = VersionTester(config, rng=int(rng.integers(2**31)))
        tester.start("A", "B", step=0)
        n_eps = 0
        for step in range(max_steps):
            groups = [
                GroupSpec(group_id=f"g{j}", task_id=f"t{j}", n=group_size)
                for j in range(groups_per_step)
            ]
            plan = tester.assign(groups)
            for versions in plan:
                p_task = rng.beta(a, b)
                for v in versions:
                    p = min(1.0, p_task + (delta if v == "B" else 0.0))
                    tester.record(v, float(rng.random() < p))
                    n_eps += 1
            decision = tester.end_step(step)
            if decision is not None:
                accepted += decision.accepted == "B"
                steps.append(step + 1)
                episodes.append(n_eps)
                break
        else:
            undecided += 1
    return {
        "delta": delta,
        "p_accept": accepted / sims,
        "undecided": undecided / sims,
        "median_steps": statistics.median(steps) if steps else None,
        "median_episodes": statistics.median(episodes) if episodes else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--base", type=float, default=0.5, help="mean success rate of A")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--groups-per-step", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    configs = {
        "project (min_steps 5)": TesterConfig(),
        "published": TesterConfig.published(),
        "min_steps 10": TesterConfig(min_steps=10),
        "min_steps 20": TesterConfig(min_steps=20),
        "min_steps 40": TesterConfig(min_steps=40),
        "probability >= 0.9, min_steps 10": TesterConfig(
            min_steps=10, decision_rule="probability", probability_threshold=0.9
        ),
        "probability >= 0.9, min_steps 20": TesterConfig(
            min_steps=20, decision_rule="probability", probability_threshold=0.9
        ),
    }
    rows = []
    for name, cfg in configs.items():
        for delta in DELTAS:
            r = simulate(
                cfg,
                base=args.base,
                delta=delta,
                group_size=args.group_size,
                groups_per_step=args.groups_per_step,
                sims=args.sims,
                seed=args.seed,
            )
            rows.append({"config": name, **r})
    print(
        f"## Version-test power ({args.sims} tests per row; A succeeds with p_task ~ Beta "
        f"around {args.base}, B with p_task + delta; {args.groups_per_step} groups of "
        f"{args.group_size} a step)\n"
    )
    print(
        "| tester | delta (success) | P(accept B) | undecided at 200 steps | median steps | median episodes |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['delta']:+.2f} | {r['p_accept']:.3f} | {r['undecided']:.3f} | "
            f"{r['median_steps']} | {r['median_episodes']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
