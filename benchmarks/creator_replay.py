"""Replay one creator pass on a run's recorded episodes, under the run's creator config or a
changed one: what would the creator have proposed from the same evidence?

Run: ``python benchmarks/creator_replay.py RUN --step K [--version V] [key=value ...]``

``RUN`` is a ``reskill evolve`` / ``reskill train`` run folder that kept its episodes
(``run.record_episodes``). The reservoir is rebuilt from the episodes of steps ``0..K`` in
the order they were recorded (capacity and dedup as the run's ``coevolution`` config says),
the library view is the run library's version ``V`` (default: the first version, the seed),
and one pass of ``SkillCreator`` runs with the run's ``coevolution.creator`` config plus the
``key=value`` overrides (``rules_max_p_value=1.0``, ``rules_min_support=2``, ...). It prints
the proposal (operations, the statistic behind each, verification) or why there is none,
and the pass's cost (wall time; tokens and calls for an LLM backend); ``--events`` also
prints what happened at each stage.

Why: a change to the creator is judged first on the evidence that produced the skills it is
meant to stop (or keep), without rerunning the hours of rollouts behind it. Only the
``rules`` backend replays offline; an LLM backend would call its endpoint again.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from reskill_gym.coevolve import CoEvolutionConfig
from reskill_gym.creator import Reservoir, SkillCreator
from reskill_gym.skills import SkillLibrary
from reskill_gym.step_episodes import StepEpisodes
from reskill_gym.yaml_loading import load_yaml_file


def replay(run: Path, step: int, version: str | None, overrides: list[str]) -> dict[str, Any]:
    """One creator pass over the run's episodes of steps ``0..step``; a JSON-able summary."""
    raw = load_yaml_file(run / "config.yaml") or {}
    coevo = dict(raw.get("coevolution") or {})
    creator = OmegaConf.merge(
        OmegaConf.create(dict(coevo.get("creator") or {})), OmegaConf.from_dotlist(overrides)
    )
    coevo["creator"] = OmegaConf.to_container(creator)
    config = CoEvolutionConfig.model_validate(coevo)
    reservoir = Reservoir(config.reservoir_size, dedup_by=config.reservoir_dedup_by)
    log = StepEpisodes(run)
    entries = [e for e in log.entries() if e.step <= step]
    reservoir.add([log.read(e) for e in entries])
    library = SkillLibrary.open(run / "skills")
    base = version or next(h.version for h in library.history() if h.version is not None)
    view = library.view(base)
    result_creator = SkillCreator(config.creator)
    proposal = result_creator.propose(reservoir, view, step=step)
    out: dict[str, Any] = {
        "episodes": len(reservoir),
        "base_version": base,
        "overrides": overrides,
        "cost": result_creator.last_result.cost.model_dump(),
        "events": [
            {"kind": e.kind, "stage": e.stage, "message": e.message}
            for e in result_creator.last_result.events
        ],
    }
    if proposal is None:
        out["proposal"] = None
        out["reason"] = result_creator.last_result.reason
        return out
    out["proposal"] = [
        {
            "op": op.op,
            "name": op.name,
            "content": op.skill.content if op.skill is not None else None,
            "verified": proposal.verification[op.name].passed
            if op.name in proposal.verification
            else None,
        }
        for op in proposal.operations
    ]
    out["rationale"] = proposal.rationale
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--step", type=int, required=True, help="episodes of steps 0..STEP")
    ap.add_argument("--version", help="library version the pass sees (default: the first)")
    ap.add_argument("--events", action="store_true", help="also print the pass's events")
    ap.add_argument("overrides", nargs="*", help="coevolution.creator key=value overrides")
    args = ap.parse_intermixed_args()
    r = replay(args.run, args.step, args.version, args.overrides)
    print(f"{r['episodes']} episodes, base {r['base_version']}, overrides {r['overrides'] or '-'}")
    print("cost: " + ", ".join(f"{k} {v}" for k, v in r["cost"].items()))
    if args.events:
        for e in r["events"]:
            print(f"  [{e['stage']}] {e['kind']}: {e['message']}")
    if r["proposal"] is None:
        print(f"no proposal: {r['reason']}")
        return
    for op in r["proposal"]:
        print(f"- {op['op']} {op['name']} (verified: {op['verified']}): {op['content']}")
    print(f"rationale: {r['rationale']}")


if __name__ == "__main__":
    main()
