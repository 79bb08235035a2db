"""Expert-metric scoring speed: shared-prefix scoring vs the uncached path, same states.

    python benchmarks/perf/expert_throughput.py [--models default qwen2.5-coder-1.5b]
        [--states 20] [--quick] [--int8] [--bf16] [--json PATH]

What it measures: ``reskill eval --metric expert`` scores every state under four conditions
(none, library, placebo, shuffled) whose prompts differ only in the skill block at their
end. Two ``LocalBackend`` sides share one loaded model:

- ``cached``: the defaults, ``score_prefix_cache_tokens`` > 0 (a prompt runs only past its
  longest common prefix with a recent prompt) and ``score_packing: tree`` (candidates in one
  row as a token tree);
- ``uncached``: ``score_prefix_cache_tokens: 0`` and ``score_packing: batch`` (every prompt
  in full, one row per candidate over a repeated prompt cache): the path before shared-prefix
  scoring.

Paired: the same states (ALFWorld ``tiny``, unseen split, drawn and labelled as the expert
metric does, seed 0), the same four prompts and candidates per state on both sides; the side
that goes first alternates state by state, so load drift hits both alike. Per side: states
per minute (four conditions a state) and model seconds; the speed-up is the ratio of the
totals, with the median of the per-state ratios beside it. Exactness: the largest absolute
difference between the two sides' per-token log-probabilities over every candidate of every
prompt (goal: <= 1e-4), and how often the best-scored command differs. Beside the speed-up,
the prompt tokens each side ran and their ratio: the speed-up the cache could reach if the
candidates cost nothing, which bounds what any exact prefix reuse can give these prompts.

``--int8`` adds a third side, the cached path on a copy of the model whose ``nn.Linear``
layers are dynamically quantised to int8 (``torch.ao.quantization.quantize_dynamic``), and
reports its speed and its log-prob/top-1 deviation from the float32 reference: the project
offers no reduced-precision option unless that deviation is within tolerance. ``--bf16``
adds the same side for a bfloat16 copy of the model (``LLMConfig.dtype: bfloat16``), which
is fast only on CPUs with AVX-512 BF16 or AMX (the machine line says which flags it has).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONDITIONS = ("none", "library", "placebo", "shuffled")


def collect(n_states: int) -> list[Any]:
    """``n_states`` labelled ALFWorld states (tiny rooms, unseen tasks), as the metric draws
    them: planner and perturbed trajectories, states spread over tasks."""
    from reskill_gym.envs.registration import make_env
    from reskill_gym.evaluation.expert import ExpertConfig
    from reskill_gym.evaluation.states import collect_states, shuffled_task_texts

    env = make_env("alfworld", split="unseen", difficulty="tiny")
    per_task = 4
    try:
        ids = list(env.task_ids("unseen"))
        cfg = ExpertConfig(states_per_task=per_task, seed=0)
        n_tasks = -(-n_states // per_task)
        picks = [ids[round(i * (len(ids) - 1) / max(1, n_tasks - 1))] for i in range(n_tasks)]
        states = collect_states(env, {"unseen": list(dict.fromkeys(picks))}, cfg)
    finally:
        env.close()
    donors = shuffled_task_texts(states)
    for s in states:
        s.shuffled_task = donors.get(s.task_id)
    return states[:n_states]


def prompts_of(state: Any, library: Any, pool: list[Any], rollout: Any) -> list[Any]:
    """The four condition prompts of one state, built as ``run_expert`` builds them."""
    from reskill_gym.evaluation.expert import placebo_view, state_prompt

    lib = state_prompt(state, library, rollout)
    fired = [library.get(str(i).rpartition("@")[0]) for i in lib.skill_ids]
    offset = zlib.crc32(state.key.encode()) % max(1, len(pool))
    return [
        state_prompt(state, None, rollout),
        lib,
        state_prompt(state, placebo_view(fired, pool, offset=offset), rollout),
        state_prompt(state, library, rollout, trigger_task=state.shuffled_task or state.task),
    ]


#: Reduced-precision sides: the cached path on a converted copy of the float32 model.
REDUCED = ("int8", "bf16")


def _reduced_copy(lm: Any, side: str) -> Any:
    import copy

    import torch

    if side == "int8":
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(lm), {torch.nn.Linear}, dtype=torch.qint8)
    return copy.deepcopy(lm).to(torch.bfloat16)


def run_model(model: str, states: list[Any], *, reduced: tuple[str, ...] = ()) -> dict[str, Any]:
    from reskill_gym.evaluation.expert import placebo_pool
    from reskill_gym.llm import LLMConfig
    from reskill_gym.llm.local import LocalBackend
    from reskill_gym.rollout import TurnConfig
    from reskill_gym.skills import LibraryView

    rollout = TurnConfig(action_mode="score", score_norm="mean", history_turns=3)
    library = LibraryView.from_folder(ROOT / "skills" / "alfworld")
    pool = placebo_pool([ROOT / "skills" / "scienceworld", ROOT / "skills" / "search"])
    loader = LocalBackend(LLMConfig(backend="local", model=model))
    t0 = time.monotonic()
    lm, tok = loader.lm, loader.tokenizer
    load_s = time.monotonic() - t0
    sides: dict[str, LocalBackend] = {
        "cached": LocalBackend(LLMConfig(backend="local", model=model), lm=lm, tokenizer=tok),
        "uncached": LocalBackend(
            LLMConfig(
                backend="local", model=model, score_prefix_cache_tokens=0, score_packing="batch"
            ),
            lm=lm,
            tokenizer=tok,
        ),
    }
    for side in reduced:
        dtype = "bfloat16" if side == "bf16" else "float32"
        sides[side] = LocalBackend(
            LLMConfig(backend="local", model=model, dtype=dtype),
            lm=_reduced_copy(lm, side),
            tokenizer=tok,
        )
    secs: dict[str, list[float]] = {s: [] for s in sides}
    lps: dict[str, list[list[list[float]]]] = {s: [] for s in sides}
    names = list(sides)
    prompts = [prompts_of(s, library, pool, rollout) for s in states]
    for i, (state, conds) in enumerate(zip(states, prompts)):
        order = names[i % len(names) :] + names[: i % len(names)]
        for side in order:
            t = time.perf_counter()
            got = [sides[side].token_logprobs(p.messages, state.admissible) for p in conds]
            secs[side].append(time.perf_counter() - t)
            lps[side].append([c for cond in got for c in cond])
        logging.info(
            "%s state %d/%d: %s",
            model,
            i + 1,
            len(states),
            ", ".join(f"{s} {secs[s][-1]:.2f}s" for s in names),
        )

    def deviation(side: str) -> tuple[float, int]:
        worst, top_differs = 0.0, 0
        for ref_state, got_state in zip(lps["uncached"], lps[side]):
            for ref, got in zip(ref_state, got_state):
                worst = max(worst, max(abs(a - b) for a, b in zip(ref, got)))
        for state, ref_state, got_state in zip(states, lps["uncached"], lps[side]):
            n = len(state.admissible)
            for k in range(len(CONDITIONS)):
                ref_means = [sum(x) / len(x) for x in ref_state[k * n : (k + 1) * n]]
                got_means = [sum(x) / len(x) for x in got_state[k * n : (k + 1) * n]]
                top_differs += ref_means.index(max(ref_means)) != got_means.index(max(got_means))
        return worst, top_differs

    # Exact work, model-free: the prompt tokens each side ran (its usage minus the candidate
    # tokens, one log-prob each, the same on both sides). Their ratio is the speed-up
    # shared-prefix scoring could reach if candidates cost nothing: the ceiling these prompts
    # allow.
    cand_tokens = sum(len(c) for state in lps["cached"] for c in state)
    prompt_tokens = {s: sides[s].usage.input_tokens - cand_tokens for s in ("cached", "uncached")}
    out: dict[str, Any] = {
        "model": sides["cached"].model_name,
        "prompt_tokens": prompt_tokens,
        "prompt_token_ratio": round(prompt_tokens["uncached"] / max(1, prompt_tokens["cached"]), 2),
        "states": len(states),
        "prompts": len(states) * len(CONDITIONS),
        "candidates_per_state": statistics.mean(len(s.admissible) for s in states),
        "load_s": round(load_s, 1),
        "prefix_reused_tokens": sides["cached"].prefix_cache.reused_tokens,
    }
    for side in names:
        total = sum(secs[side])
        out[side] = {
            "seconds": round(total, 2),
            "states_per_min": round(60 * len(states) / total, 2),
        }
    out["speedup"] = round(sum(secs["uncached"]) / sum(secs["cached"]), 2)
    out["speedup_median_state"] = round(
        statistics.median(u / c for u, c in zip(secs["uncached"], secs["cached"])), 2
    )
    out["max_abs_logprob_diff"], out["top1_differs"] = deviation("cached")
    for side in reduced:
        out[f"{side}_speedup_vs_cached"] = round(sum(secs["cached"]) / sum(secs[side]), 2)
        out[f"{side}_max_abs_logprob_diff"], out[f"{side}_top1_differs"] = deviation(side)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["default", "qwen2.5-coder-1.5b"])
    ap.add_argument("--states", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="SmolLM2 only, 8 states")
    ap.add_argument("--int8", action="store_true", help="also the int8 dynamic-quantised side")
    ap.add_argument("--bf16", action="store_true", help="also the bfloat16 side")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from reskill_gym.testing.workload import machine

    models, n = (["default"], 8) if args.quick else (args.models, args.states)
    t0 = time.monotonic()
    states = collect(n)
    collect_s = time.monotonic() - t0
    reduced = tuple(side for side in REDUCED if getattr(args, side))
    rows = [run_model(m, states, reduced=reduced) for m in models]
    print(f"## Expert-metric scoring throughput ({machine()})\n")
    print(
        f"{len(states)} ALFWorld tiny/unseen states x {len(CONDITIONS)} conditions, the same "
        f"prompts on both sides, order alternating per state; states collected in "
        f"{collect_s:.0f} s.\n"
    )
    print(
        "| model | candidates/state | uncached states/min | cached states/min | speed-up "
        "(total / median state) | prompt tokens run (uncached / cached) | max abs log-prob diff "
        "| top-1 differs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['candidates_per_state']:.1f} | "
            f"{r['uncached']['states_per_min']} | {r['cached']['states_per_min']} | "
            f"{r['speedup']}x / {r['speedup_median_state']}x | "
            f"{r['prompt_tokens']['uncached']:,} / {r['prompt_tokens']['cached']:,} = "
            f"{r['prompt_token_ratio']}x | {r['max_abs_logprob_diff']:.1e} | {r['top1_differs']} of {r['prompts']} |"
        )
    for side in reduced:
        print(f"\n| model | {side} vs cached float32 | max abs log-prob diff | top-1 differs |")
        print("|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['model']} | {r[f'{side}_speedup_vs_cached']}x | "
                f"{r[f'{side}_max_abs_logprob_diff']:.2f} | {r[f'{side}_top1_differs']} of "
                f"{r['prompts']} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"collect_s": collect_s, "models": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
