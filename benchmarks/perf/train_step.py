"""Step time of the local GRPO trainer with skill co-evolution on vs off, on paired steps.

    python benchmarks/perf/train_step.py                    # SmolLM2, ALFWorld tiny, CPU
    python benchmarks/perf/train_step.py --steps 6 --json out.json
    python benchmarks/perf/train_step.py --quick            # 2 steps per arm, 3 turns

Two trainers in this process: ``on`` runs ``CoEvolution`` (library + Thompson tester +
async rules creator, settings under which a creator pass and a version test happen within
a few steps), ``off`` runs ``NoCoEvolution`` pinned to the same seed library. Both start
from the same weights, config, seed and task list and lease engines from one shared
``EnvPool``. Steps alternate ``on, off, off, on, ...`` so load drift hits both arms alike.

Pairing. Before every step pair the ``off`` trainer is loaded with the ``on`` trainer's
state (``GRPOTrainer.state_dict``: weights, optimizer, every RNG, task queue), so both arms
plan the same tasks and env seeds and draw the same sampling numbers from the same policy.
While no version test is live both arms see the same skill bundles and therefore play the
same episodes; the benchmark checks it (task, seed, every observation, skill ids and action
of every rollout) and calls such a step *paired*. The paired figures are like with like:
the whole-step time ratio on/off and the co-evolution bookkeeping (``record`` +
``end_step``, the trainer's ``time/coevo_s``) on identical episodes. Once a test is live,
the candidate's rollouts see other skills, so their actions, lengths and token counts
differ: those steps are reported apart as *unpaired* (their ratio mixes the co-evolution
cost with different work; the per-token ratio only corrects for length).

The creator runs in a background thread; to keep its work out of the other arm's step, the
benchmark waits until it is idle before each step (outside the clock) and reports that
wait (the creator's background time). Reported per arm: wall and process CPU per step
(median, min-max), rollout tokens/s, peak memory (CUDA allocator on GPU, max RSS on CPU),
and the load average before and after. Goal: step time on/off <= 1.05.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SHORT_TASKS = [
    f"tiny/train/{i:04d}" for i in range(60) if i % 6 in (0, 1)
]  # pick & place, examine in light: 2-3 step plans


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def episode_key(ep: Any) -> tuple[Any, ...]:
    """What must be equal for two rollouts to be the same episode."""
    return (
        ep.task_id,
        ep.seed,
        ep.library_version,
        ep.error,
        tuple((t.observation, tuple(t.skill_ids), t.action, t.reward) for t in ep.turns),
        ep.final_observation,
        ep.reward,
    )


def same_episodes(a: list[Any], b: list[Any]) -> tuple[bool, str]:
    """Whether two steps played the same episodes (by rollout order); else the first reason."""
    if len(a) != len(b):
        return False, f"{len(a)} vs {len(b)} episodes"
    for i, (x, y) in enumerate(zip(a, b)):
        if episode_key(x) != episode_key(y):
            if (x.task_id, x.seed) != (y.task_id, y.seed):
                return False, f"rollout {i}: task/seed {x.task_id}/{x.seed} vs {y.task_id}/{y.seed}"
            if x.library_version != y.library_version:
                return False, f"rollout {i}: library {x.library_version} vs {y.library_version}"
            return False, f"rollout {i}: turns differ"
    return True, ""


def _wait_creator(coevo: Any) -> float:
    """Block until the co-evolution's background creator pass (if any) is done; seconds."""
    creator = getattr(coevo, "creator", None)
    t0 = time.perf_counter()
    while creator is not None and creator.busy:
        time.sleep(0.02)
    return time.perf_counter() - t0


def _stats(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


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
    from reskill_local.grpo import GRPOConfig, GRPOTrainer
    from reskill_local.policy import Policy, load_policy

    from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig, NoCoEvolution
    from reskill_gym.creator import CreatorConfig
    from reskill_gym.envs.registration import make_skill_env, seed_library_path
    from reskill_gym.rollout import EnvPool, TurnConfig
    from reskill_gym.skills import SkillLibrary
    from reskill_gym.versioning import TesterConfig

    load_start = _load()
    t0 = time.perf_counter()
    base = load_policy(args.model, device=args.device)
    load_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="reskill-bench-"))
    turn = TurnConfig(action_mode="score", score_norm="mean", history_turns=0)
    cfg = GRPOConfig(
        group_size=args.group_size,
        groups_per_step=args.groups,
        temperature=args.temperature,
        kl_coef=args.kl_coef,
        max_samples_per_step=args.max_samples,
        seed=args.seed,
    )

    def build(key: Any = None) -> gym.Env:
        return make_skill_env(
            "alfworld",
            skills=None,
            difficulty="tiny",
            source="generated",
            max_turns=args.max_turns,
            max_active_skills=3,
            skill_budget_chars=800,
        )

    # one pool for both arms: the same engine processes serve either arm's leases
    pool = EnvPool(build)
    arms: dict[str, tuple[Any, Any]] = {}
    rows: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    pairs: list[dict[str, Any]] = []
    creator_wait_s = 0.0
    try:
        warm = [pool.lease() for _ in range(cfg.rollouts_per_step)]
        for i, env in enumerate(warm):  # start every engine outside the clock
            env.reset(seed=i, options={"task_id": SHORT_TASKS[i % len(SHORT_TASKS)]})
        for env in warm:
            env.close()
        for arm in ("on", "off"):
            root = work / arm
            shutil.copytree(seed_library_path("alfworld"), root)
            lib = SkillLibrary.open(root, create=True)
            if arm == "on":
                coevo: Any = CoEvolution.create(
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

            def make_env(task_id: str, version: str | None, coevo: Any = coevo) -> gym.Env:
                return pool.lease(skills=coevo.view(version))

            trainer = GRPOTrainer(cfg, make_env, SHORT_TASKS, turn=turn, coevo=coevo, policy=policy)
            arms[arm] = (trainer, coevo)
        on_trainer, off_trainer = arms["on"][0], arms["off"][0]

        for k in range(args.steps):
            # the off arm continues from the on arm's state: same weights, optimizer, RNGs
            state = on_trainer.state_dict()
            state["optimizer"] = copy.deepcopy(state["optimizer"])  # never share moments
            off_trainer.load_state_dict(state)
            order = ("on", "off") if k % 2 == 0 else ("off", "on")
            results = {}
            for arm in order:
                trainer, coevo = arms[arm]
                creator_wait_s += _wait_creator(arms["on"][1])
                c0 = time.process_time()
                res = trainer.step()
                cpu_s = time.process_time() - c0
                m = res.metrics
                results[arm] = res
                tokens = m["charts/rollout_tokens_per_s"] * m["time/policy_s"]
                rows[arm].append(
                    {
                        "step": k,
                        "step_s": m["time/step_s"],
                        "cpu_s": cpu_s,
                        "rollout_s": m["time/rollout_s"],
                        "update_s": m["time/update_s"],
                        "coevo_s": m["time/coevo_s"],
                        "rollout_tokens_per_s": m["charts/rollout_tokens_per_s"],
                        "tokens": tokens,
                        "reward_mean": m["episode/reward_mean"],
                        "events": [e.kind for e in res.events],
                        "load1": os.getloadavg()[0],
                    }
                )
                print(
                    f"step {k} {arm:3s} {m['time/step_s']:6.1f}s cpu {cpu_s:6.1f}s coevo "
                    f"{m['time/coevo_s'] * 1e3:6.1f}ms reward {m['episode/reward_mean']:.2f} "
                    f"{[e.kind for e in res.events]} load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
            paired, why = same_episodes(results["on"].episodes, results["off"].episodes)
            testing = bool(getattr(on_trainer, "last_plan", None) and on_trainer.last_plan.testing)
            pairs.append({"step": k, "paired": paired, "why_not": why, "test_live": testing})
    finally:
        for _, coevo in arms.values():
            coevo.close()
        pool.close()
        shutil.rmtree(work, ignore_errors=True)

    def col(arm: str, key: str, which: list[int]) -> list[float]:
        return [rows[arm][k][key] for k in which]

    paired_steps = [p["step"] for p in pairs if p["paired"]]
    unpaired_steps = [p["step"] for p in pairs if not p["paired"]]

    def ratio(key: str, which: list[int]) -> dict[str, float] | None:
        return _stats([rows["on"][k][key] / rows["off"][k][key] for k in which])

    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if base.device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    out = {
        "device": str(base.device),
        "rollouts_per_step": cfg.rollouts_per_step,
        "max_turns": args.max_turns,
        "load_s": load_s,
        "load_avg_start": load_start,
        "load_avg_end": _load(),
        "paired_steps": paired_steps,
        "unpaired_steps": [
            {"step": p["step"], "test_live": p["test_live"], "why": p["why_not"]}
            for p in pairs
            if not p["paired"]
        ],
        "paired": {
            "step_time_ratio_on_off_wall": ratio("step_s", paired_steps),
            "step_time_ratio_on_off_cpu": ratio("cpu_s", paired_steps),
            "step_s": {a: _stats(col(a, "step_s", paired_steps)) for a in rows},
            "cpu_s": {a: _stats(col(a, "cpu_s", paired_steps)) for a in rows},
            "coevo_bookkeeping_ms": {
                a: _stats([1e3 * x for x in col(a, "coevo_s", paired_steps)]) for a in rows
            },
            "coevo_bookkeeping_share_on": _stats(
                [rows["on"][k]["coevo_s"] / rows["on"][k]["step_s"] for k in paired_steps]
            ),
        },
        "unpaired_different_work": {
            "meaning": "steps with a live version test: the candidate's rollouts saw other "
            "skills, so the arms played different episodes; not a like-with-like comparison",
            "step_time_ratio_on_off_wall": ratio("step_s", unpaired_steps),
            "step_time_ratio_per_token": _stats(
                [
                    (rows["on"][k]["step_s"] / rows["on"][k]["tokens"])
                    / (rows["off"][k]["step_s"] / rows["off"][k]["tokens"])
                    for k in unpaired_steps
                    if rows["on"][k]["tokens"] and rows["off"][k]["tokens"]
                ]
            ),
        },
        "creator_background_wait_s": creator_wait_s,
        "rollout_tokens_per_s": {
            a: _stats(col(a, "rollout_tokens_per_s", list(range(args.steps)))) for a in rows
        },
        "peak_mem_mib": peak,
        "steps": rows,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    p = out["paired"]
    if p["step_time_ratio_on_off_wall"] is not None:
        w, c = p["step_time_ratio_on_off_wall"], p["step_time_ratio_on_off_cpu"]
        bk = p["coevo_bookkeeping_ms"]["on"]
        bk_off = p["coevo_bookkeeping_ms"]["off"]
        print(
            f"paired steps ({len(paired_steps)} of {args.steps}, identical episodes in both "
            f"arms): step time on/off wall {w['median']:.3f} [{w['min']:.3f}-{w['max']:.3f}], "
            f"CPU {c['median']:.3f} [{c['min']:.3f}-{c['max']:.3f}]; co-evolution bookkeeping "
            f"{bk['median']:.1f} ms/step on vs {bk_off['median']:.2f} ms off "
            f"({100 * p['coevo_bookkeeping_share_on']['median']:.2f} % of a step)"
        )
    else:
        print("no paired step: every step had a live version test")
    u = out["unpaired_different_work"]["step_time_ratio_on_off_wall"]
    if u is not None:
        print(
            f"unpaired steps {unpaired_steps} (different episodes: "
            f"{'; '.join(q['why_not'] for q in pairs if not q['paired'])}): step time on/off "
            f"{u['median']:.3f} [{u['min']:.3f}-{u['max']:.3f}]; the arms did different work "
            "(a live version test shows the candidate's skills), so this is not like with like"
        )
    print(
        f"creator background time, waited outside the clock: {creator_wait_s:.2f} s; "
        f"load avg start {load_start} end {out['load_avg_end']}"
    )
    if args.json:
        from reskill_gym.atomic import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
