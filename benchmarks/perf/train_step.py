"""Step time of the local GRPO trainer with skill co-evolution on vs off.

    python benchmarks/perf/train_step.py                    # SmolLM2, ALFWorld tiny, CPU
    python benchmarks/perf/train_step.py --steps 6 --json out.json
    python benchmarks/perf/train_step.py --quick            # 2 steps per arm, 3 turns

Both arms run in this process from the same model weights, seed and task list: ``on`` is
``CoEvolution`` (library + Thompson tester + async rules creator, the demo's settings so a
creator pass and a version test happen within a few steps), ``off`` is ``NoCoEvolution``
pinned to the same seed library. Steps alternate ``on, off, off, on, ...`` so machine-load
drift hits both arms alike. Reported: mean step time per arm and their ratio (goal <= 1.05:
the creator is off the critical path), the co-evolution bookkeeping time inside a step
(``record`` + ``end_step``), rollout tokens/s, and peak memory (CUDA allocator on GPU, the
process's max RSS on CPU). Once a version test is live the two arms show different skill
bundles (prompt lengths differ), so the bookkeeping time is the cleaner overhead number.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SHORT_TASKS = [
    f"tiny/train/{i:04d}" for i in range(60) if i % 6 in (0, 1)
]  # pick & place, examine in light: 2-3 step plans


def _trainer(args, policy, coevo, pool):
    from reskill_local.grpo import GRPOConfig, GRPOTrainer

    cfg = GRPOConfig(
        group_size=args.group_size,
        groups_per_step=args.groups,
        temperature=args.temperature,
        score_norm="mean",
        history_turns=0,
        kl_coef=args.kl_coef,
        max_samples_per_step=args.max_samples,
        seed=args.seed,
    )
    return GRPOTrainer(cfg, pool, SHORT_TASKS, coevo=coevo, policy=policy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="steps per arm")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--kl-coef", type=float, default=0.0)
    ap.add_argument("--max-samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--quick", action="store_true", help="2 steps per arm of 3 turns (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.max_turns = 2, 3
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)

    import gymnasium as gym
    from reskill_local.policy import Policy, load_policy
    from reskill_local.pool import EnvPool

    from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig, NoCoEvolution
    from reskill_gym.creator import CreatorConfig
    from reskill_gym.envs.registration import ENV_IDS, make_skill_env, seed_library_path
    from reskill_gym.skills import SkillLibrary
    from reskill_gym.versioning import TesterConfig

    t0 = time.perf_counter()
    base = load_policy(args.model, device=args.device)
    load_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="reskill-bench-"))
    spec = gym.spec(ENV_IDS["alfworld"])

    def build() -> gym.Env:
        return make_skill_env(
            "alfworld",
            skills=None,
            difficulty="tiny",
            max_turns=args.max_turns,
            max_active_skills=3,
            skill_budget_chars=800,
        )

    arms = {}
    try:
        for arm in ("on", "off"):
            root = work / arm
            shutil.copytree(seed_library_path("alfworld"), root)
            lib = SkillLibrary.open(root, create=True)
            if arm == "on":
                coevo = CoEvolution.create(
                    lib,
                    CoEvolutionConfig(
                        async_creator=True,
                        min_reservoir_size=8,
                        seed=args.seed,
                        tester=TesterConfig(min_steps=2, min_episodes=12),
                        creator=CreatorConfig(min_reservoir_size=8, rules_min_support=2),
                    ),
                )
            else:
                coevo = NoCoEvolution(lib)
            policy = Policy(copy.deepcopy(base.model), base.tokenizer, base.device, base.stop_id)
            pool = EnvPool(build, coevo.view, spec=spec)
            arms[arm] = (_trainer(args, policy, coevo, pool), coevo, pool)
        rows: dict[str, list[dict]] = {"on": [], "off": []}
        for k in range(args.steps):
            order = ("on", "off") if k % 2 == 0 else ("off", "on")
            for arm in order:
                trainer, coevo, _ = arms[arm]
                res = trainer.step()
                m = res.metrics
                rows[arm].append(
                    {
                        "step_s": m["time/step_s"],
                        "rollout_s": m["time/rollout_s"],
                        "update_s": m["time/update_s"],
                        "coevo_s": m["time/coevo_s"],
                        "rollout_tokens_per_s": m["charts/rollout_tokens_per_s"],
                        "tokens": m["charts/rollout_tokens_per_s"] * m["time/policy_s"],
                        "reward_mean": m["charts/reward_mean"],
                        "events": [e.kind for e in res.events],
                    }
                )
                print(
                    f"step {k} {arm:3s} {m['time/step_s']:6.1f}s coevo {m['time/coevo_s'] * 1e3:6.1f}ms"
                    f" reward {m['charts/reward_mean']:.2f} {[e.kind for e in res.events]}",
                    file=sys.stderr,
                )
    finally:
        for _, coevo, pool in arms.values():
            coevo.close()
            pool.close()
        shutil.rmtree(work, ignore_errors=True)

    def mean(arm: str, key: str) -> float:
        return statistics.fmean(r[key] for r in rows[arm])

    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if base.device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    out = {
        "device": str(base.device),
        "rollouts_per_step": args.group_size * args.groups,
        "max_turns": args.max_turns,
        "load_s": load_s,
        "step_s": {arm: mean(arm, "step_s") for arm in rows},
        "step_time_ratio_on_off": mean("on", "step_s") / mean("off", "step_s"),
        "coevo_bookkeeping_s_per_step": mean("on", "coevo_s"),
        "coevo_bookkeeping_share": mean("on", "coevo_s") / mean("on", "step_s"),
        "tokens_per_step": {arm: mean(arm, "tokens") for arm in rows},
        "step_time_ratio_per_token": (mean("on", "step_s") / mean("on", "tokens"))
        / (mean("off", "step_s") / mean("off", "tokens")),
        "rollout_tokens_per_s": {arm: mean(arm, "rollout_tokens_per_s") for arm in rows},
        "peak_mem_mib": peak,
        "steps": rows,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    print(
        f"step time on/off = {out['step_time_ratio_on_off']:.3f} "
        f"(per rollout token {out['step_time_ratio_per_token']:.3f}); co-evolution "
        f"bookkeeping {out['coevo_bookkeeping_s_per_step'] * 1e3:.1f} ms/step "
        f"({100 * out['coevo_bookkeeping_share']:.2f} % of a step)",
        file=sys.stderr,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
