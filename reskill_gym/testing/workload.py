"""Shared workload of the env benchmarks: which env, which actions, how to measure memory.

Exports ``ENV_KWARGS``, ``pick_action``, ``rss_mib`` and ``machine``.

Used by ``benchmarks/perf`` (env throughput, wrapper overhead, turn budget) and their tests,
so every benchmark drives the engines with the same settings and the same random but
engine-meaningful actions.

>>> import random
>>> pick_action("alfworld", {"admissible_actions": ["look"]}, random.Random(0))
'look'
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import Any

__all__ = ["ENV_KWARGS", "pick_action", "rss_mib", "machine"]

ENV_KWARGS: dict[str, dict[str, Any]] = {
    "alfworld": {"difficulty": "std", "max_turns": 50},
    "scienceworld": {"max_turns": 50},
    "search": {"max_turns": 5},
    # a few games, generated once: resets then measure play, not generation
    "textworld": {
        "difficulty": "small",
        "max_turns": 50,
        "games": {"train": 4, "seen": 4, "unseen": 4},
    },
}

_SCIENCEWORLD_ACTIONS = [
    "look around",
    "inventory",
    "open door to hallway",
    "go to hallway",
    "look at sink",
]
_WORDS = ["river", "city", "founded", "born", "company", "population", "author", "mountain"]


def pick_action(env_name: str, info: dict[str, Any], rng: random.Random) -> str:
    """A random but engine-meaningful action: an admissible one when the env lists them."""
    adm = info.get("admissible_actions")
    if adm:
        return rng.choice(list(adm))
    if env_name == "search":
        return f"<search>{rng.choice(_WORDS)} {rng.choice(_WORDS)}</search>"
    return rng.choice(_SCIENCEWORLD_ACTIONS)


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MiB (Linux /proc)."""
    total = 0
    pids = [pid]
    seen: set[int] = set()
    while pids:
        p = pids.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in Path(f"/proc/{p}/task").iterdir():  # /proc: the kernel's, not a folder of ours
                kids = (t / "children").read_text().split()
                pids.extend(int(k) for k in kids)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` and which bf16 matmul flags it has.

    The boxes that run the benchmarks change (Intel and AMD so far) and reduced-precision
    speed depends on AVX-512 BF16 / AMX, so every measurement names them.
    """
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the kernel's file
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({'bf16: ' + ' '.join(bf16) if bf16 else 'no bf16 matmul flags'})"


def machine() -> str:
    """One line naming the machine and its load, printed beside every measurement."""
    return (
        f"{cpu_name()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )
