"""Run every performance benchmark and collect their tables into ``benchmarks/RESULTS.md``.

Run: ``python benchmarks/run_perf.py`` (quick passes; ``--full`` for the full ones,
``--only creator train_step`` for a subset, ``--timeout S`` per script).

Each script in ``benchmarks/perf/`` prints its own table; this runner starts them one after
the other (so they do not compete for cores), passes ``--quick`` to those that accept it,
prints one combined status table, and writes ``RESULTS.md``: machine information, the
status table, then every script's output. A script that is not there yet is reported as
missing; a failing or timed-out one is reported with the tail of its stderr, and the others
still run. docs/benchmarks.md lists the benchmarks; this file holds their numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "benchmarks" / "perf"
SCRIPTS = [
    "bundle_selection.py",
    "version_tester.py",
    "creator.py",
    "train_step.py",
    "env_throughput.py",
    "wrapper_overhead.py",
    "turn_budget.py",
    "llm_server_turn.py",  # needs the llamacpp extra; reports "failed" without it
    "step_episodes.py",
    "view_scale.py",  # needs the view extra, playwright and Debian's chromium
    "expert_throughput.py",  # needs the local extra and the model wheels
]


def machine_info() -> list[tuple[str, str]]:
    """What the numbers depend on: CPU, cores, memory, load, Python, torch/GPU, commit."""
    from reskill_gym.testing.workload import cpu_name

    cpu = cpu_name()
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    gpu = "none visible"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            gpu = out.stdout.strip().replace("\n", "; ")
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return [
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("cpu", f"{cpu} ({os.cpu_count()} logical cores)"),
        ("memory", mem),
        ("load average (1/5/15 min) at start", load),
        ("gpu", gpu),
        ("python", f"{platform.python_version()} on {platform.platform()}"),
        ("commit", commit),
    ]


def accepts_quick(path: Path) -> bool:
    return '"--quick"' in path.read_text(encoding="utf-8", errors="replace")


def run_one(path: Path, quick: bool, timeout: float) -> dict[str, object]:
    cmd = [sys.executable, str(path)] + (["--quick"] if quick else [])
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
        )
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        status = f"timed out after {timeout:.0f}s"
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    return {
        "status": status,
        "wall_s": time.monotonic() - t0,
        "stdout": stdout,
        "stderr": stderr,
        "cmd": " ".join(["python", str(path.relative_to(ROOT))] + cmd[2:]),
    }


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="run without --quick")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="subset (with or without .py)")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per script")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args(argv)
    names = SCRIPTS
    if args.only:
        wanted = {n if n.endswith(".py") else f"{n}.py" for n in args.only}
        unknown = wanted - set(SCRIPTS) - {p.name for p in PERF.glob("*.py")}
        if unknown:
            ap.error(
                f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(SCRIPTS)}"
            )
        names = [n for n in SCRIPTS if n in wanted] + sorted(wanted - set(SCRIPTS))
    extra = sorted(
        p.name for p in PERF.glob("*.py") if not p.name.startswith("_") and p.name not in SCRIPTS
    )
    if not args.only:
        names = names + extra  # a new script is run too, never silently skipped
    info = machine_info()
    results: dict[str, dict[str, object]] = {}
    for name in names:
        path = PERF / name
        if not path.exists():
            results[name] = {
                "status": "missing",
                "wall_s": 0.0,
                "stdout": "",
                "stderr": "",
                "cmd": "",
            }
            print(f"[run_perf] {name}: missing", flush=True)
            continue
        quick = accepts_quick(path) and not args.full
        print(f"[run_perf] {name}{' --quick' if quick else ''} ...", flush=True)
        results[name] = run_one(path, quick, args.timeout)
        print(
            f"[run_perf] {name}: {results[name]['status']} in {results[name]['wall_s']:.1f}s",
            flush=True,
        )

    rows = [
        (n, str(r["status"]), f"{r['wall_s']:.1f}", str(r["cmd"]) or "-")
        for n, r in results.items()
    ]
    table = ["| benchmark | status | wall s | command |", "|---|---|---|---|"]
    table += [
        f"| {n} | {s} | {w} | `{c}` |" if c != "-" else f"| {n} | {s} | {w} | - |"
        for n, s, w, c in rows
    ]
    md = [
        "# Performance benchmarks",
        "",
        f"Produced by `python benchmarks/run_perf.py{' --full' if args.full else ''}`.",
        "",
    ]
    md += [f"- **{k}**: {v}" for k, v in info] + ["", "## Summary", "", *table, ""]
    for name, r in results.items():
        md += [f"## {name}", ""]
        if r["status"] == "missing":
            md += ["Not written yet.", ""]
            continue
        out = str(r["stdout"]).rstrip()
        lines = out.splitlines()
        if lines and sum(ln.startswith("|") for ln in lines) >= max(2, len(lines) // 2):
            md += [out, ""]
        else:
            md += ["```", out or "(no output)", "```", ""]
        if r["status"] != "ok":
            tail = "\n".join(str(r["stderr"]).rstrip().splitlines()[-25:])
            md += ["stderr (last lines):", "", "```", tail or "(empty)", "```", ""]
    atomic_write(args.out, "\n".join(md))
    width = max(len(n) for n in results)
    print()
    print(f"{'benchmark':<{width}}  {'status':<28} {'wall s':>8}")
    for n, s, w, _ in rows:
        print(f"{n:<{width}}  {s:<28} {w:>8}")
    print(f"\nwrote {args.out}")
    return 0 if all(r["status"] in ("ok", "missing") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
