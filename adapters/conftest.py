"""pytest over the adapters: their doctests run in the default suite.

``--doctest-modules`` imports every module. A module whose engine is not installed (a
core-only install without the ``local`` or ``verl`` extra) is left out of collection, as
the adapter tests skip themselves with ``pytest.importorskip``; the other modules' doctests
still run.
"""

from __future__ import annotations

from importlib.util import find_spec

# module (relative to this folder) -> engines it imports at module level
_ENGINES: dict[str, tuple[str, ...]] = {
    "local/reskill_local/grpo.py": ("torch",),
    "local/reskill_local/policy.py": ("torch",),
    "local/reskill_local/rollout.py": ("torch",),
    "local/reskill_local/train.py": ("torch",),
    "verl/reskill_verl/advantage.py": ("torch",),
    "verl/reskill_verl/agent_loop.py": ("verl",),
    "verl/reskill_verl/plugin.py": ("verl",),
    "verl/reskill_verl/trainer.py": ("verl",),
}

collect_ignore = [
    path
    for path, engines in _ENGINES.items()
    if any(find_spec(engine) is None for engine in engines)
]
