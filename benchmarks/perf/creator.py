"""Wall-clock of one skill-creator pass: the offline rules creator, and the LLM creator
against a loopback server that answers after 0.5 s (showing analysis calls overlap).

1. ``rules``: a 200-episode reservoir recorded from the real Search env (50 tasks x 4
   rollouts) by the mistake-making scripted agent, seed library ``skills/search``; with
   ``--alfworld`` also 200 ALFWorld 'tiny' episodes (about 3-4 minutes to record).
2. ``openai`` (real SDK -> loopback server, every answer delayed by ``--delay`` s): one full
   pass (analysis of ``--episodes`` episodes, diagnosis, recommendation, authoring). The
   sequential sum is requests x delay (a lower bound of one-at-a-time time); the same pass
   with ``analysis_workers=1`` is also run for a measured comparison.

Run: ``.venv/bin/python benchmarks/perf/creator.py [--episodes 32] [--delay 0.5] [--alfworld]
[--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from reskill_gym.creator import CreatorConfig, Reservoir, SkillCreator
from reskill_gym.rollout import record_episodes
from reskill_gym.skills import LibraryView
from reskill_gym.testing.agents import ALFWorldMistakeAgent, SearchMistakeAgent
from reskill_gym.testing.loopback import LoopbackLLMServer, LoopbackReply, LoopbackRequest
from reskill_gym.wrapper import SkillWrapper

REPO = Path(__file__).resolve().parents[2]


def search_reservoir(cache: Path) -> tuple[Reservoir, LibraryView, float]:
    from reskill_gym.envs.search import SearchEnv

    view = LibraryView.from_folder(REPO / "skills" / "search")
    base = SearchEnv(split="train", cache_dir=cache)
    t0 = time.perf_counter()
    eps = record_episodes(
        SkillWrapper(base, view),
        SearchMistakeAgent(),
        base.task_ids()[::45][:50],
        group_size=4,
        env_id="ReSkill-Search-v0",
    )
    res = Reservoir(200)
    res.add(eps)
    return res, view, time.perf_counter() - t0


def alfworld_reservoir() -> tuple[Reservoir, LibraryView, float]:
    from reskill_gym.envs.alfworld import ALFWorldEnv

    view = LibraryView.from_folder(REPO / "skills" / "alfworld")
    base = ALFWorldEnv(difficulty="tiny", source="generated", max_turns=12)
    t0 = time.perf_counter()
    try:
        eps = record_episodes(
            SkillWrapper(base, view),
            ALFWorldMistakeAgent(),
            base.task_ids("train")[:50],
            group_size=4,
            env_id="ReSkill-ALFWorld-v0",
        )
    finally:
        base.close()
    res = Reservoir(200)
    res.add(eps)
    return res, view, time.perf_counter() - t0


def rules_pass(res: Reservoir, view: LibraryView, repeats: int = 5) -> tuple[float, Any]:
    times = []
    proposal = None
    for i in range(repeats):
        creator = SkillCreator(CreatorConfig())
        t0 = time.perf_counter()
        proposal = creator.propose(res, view, step=i)
        times.append(time.perf_counter() - t0)
    return min(times), proposal


class Responder:
    """Plays the four creator roles from what each request contains (JSON answers)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.rejected: list[str] = []

    def __call__(self, req: LoopbackRequest) -> LoopbackReply:
        s, u = req.system, req.last_user_text
        if "episode analyst" in s:
            eid = re.search(r"^Episode (\S+) \(", u, re.M).group(1)
            out: dict[str, Any] = {
                "episode_id": eid,
                "outcome": "failure" if "outcome: failure" in u else "success",
                "summary": "see transcript",
                "mistakes": ["replied without an action tag"] if "REJECTED" in u else [],
            }
        elif "diagnostician" in s:
            self.rejected = re.findall(
                r"^- (\S+) \(\w+[^\n]*\n  mistakes: replied without", u, re.M
            )
            out = {
                "changes": [
                    {
                        "op": "create",
                        "text": "The agent always uses action tags.",
                        "failed": len(self.rejected),
                        "passed": 1,
                        "example_episode_ids": self.rejected[:5],
                    }
                ]
            }
        elif "recommend at most" in s:
            out = {
                "recommendations": [
                    {
                        "op": "add",
                        "skill_name": "use-action-tags",
                        "assertion_ids": ["A1"],
                        "reason": "untagged replies fail",
                        "target_episode_ids": self.rejected[:5],
                    }
                ]
            }
        else:
            out = {
                "name": "use-action-tags",
                "description": "Reply with a tagged action.",
                "content": "Write <search> names </search> or <answer> x </answer>; bare text is rejected.",
                "trigger_type": "observation_pattern",
                "trigger_pattern": "previous action is invalid",
            }
        return LoopbackReply(json.dumps(out), delay_s=self.delay_s)


def llm_pass(
    res: Reservoir, view: LibraryView, episodes: int, delay: float, workers: int
) -> dict[str, Any]:
    with LoopbackLLMServer(Responder(delay)) as srv:
        cfg = CreatorConfig(
            pipeline="project",  # the scripted answers below play the project pipeline's roles
            max_analyzed_episodes=episodes,
            analysis_workers=workers,
            failing_assertion_min_rate=0.05,
            llm_options={"timeout_s": 30, "max_retries": 0},
        )
        creator = SkillCreator(cfg, backend=srv.spec())
        t0 = time.perf_counter()
        p = creator.propose(res, view, step=7)
        wall = time.perf_counter() - t0
        creator.close()
        n = len(srv.requests)
        n_analysis = sum("episode analyst" in r.system for r in srv.requests)
    return {
        "workers": workers,
        "requests": n,
        "analysis_requests": n_analysis,
        "wall_s": wall,
        "sequential_sum_s": n * delay,
        "speedup": n * delay / wall,
        "proposal": p.summary() if p else None,
        "reason": creator.last_result.reason,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=32, help="episodes analysed in the LLM pass")
    ap.add_argument("--delay", type=float, default=0.5, help="loopback answer delay (s)")
    ap.add_argument("--alfworld", action="store_true", help="also time a rules pass on ALFWorld")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        res, view, rec_s = search_reservoir(Path(tmp))
        best, p = rules_pass(res, view)
        rows.append(
            {
                "pass": "rules / Search",
                "episodes": len(res),
                "record_s": rec_s,
                "wall_s": best,
                "proposal": p.summary() if p else None,
            }
        )
        if args.alfworld:
            ares, aview, arec = alfworld_reservoir()
            abest, ap_ = rules_pass(ares, aview)
            rows.append(
                {
                    "pass": "rules / ALFWorld tiny",
                    "episodes": len(ares),
                    "record_s": arec,
                    "wall_s": abest,
                    "proposal": ap_.summary() if ap_ else None,
                }
            )
        par = llm_pass(res, view, args.episodes, args.delay, 16)
        seq = llm_pass(res, view, args.episodes, args.delay, 1)
    print(f"{'pass':<28}{'episodes':>9}{'wall s':>9}  proposal")  # noqa: T201
    for r in rows:
        print(f"{r['pass']:<28}{r['episodes']:>9}{r['wall_s']:>9.3f}  {r['proposal']}")  # noqa: T201
    print()  # noqa: T201
    print(f"LLM pass (loopback, {args.delay}s per answer, {args.episodes} episodes analysed)")  # noqa: T201
    print(
        f"{'workers':>8}{'requests':>10}{'analysis':>10}{'wall s':>9}{'seq sum s':>11}{'speedup':>9}  proposal"
    )  # noqa: T201
    for r in (par, seq):
        print(
            f"{r['workers']:>8}{r['requests']:>10}{r['analysis_requests']:>10}{r['wall_s']:>9.2f}"  # noqa: T201
            f"{r['sequential_sum_s']:>11.2f}{r['speedup']:>9.1f}  {r['proposal'] or r['reason']}"
        )
    if args.json:
        args.json.write_text(json.dumps({"rules": rows, "llm": [par, seq]}, indent=2))


if __name__ == "__main__":
    main()
