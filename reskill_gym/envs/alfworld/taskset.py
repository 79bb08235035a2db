"""Re-create, verify or export the generated ALFWorld task set.

Exports ``PlannerVerifier``, ``build_taskset``, ``check_taskset``, ``export_official_layout`` and ``main``.

    python -m reskill_gym.envs.alfworld.taskset                 # regenerate + planner-verify, write taskset.json
    python -m reskill_gym.envs.alfworld.taskset --check         # shipped set == regenerated draws?
    python -m reskill_gym.envs.alfworld.taskset --verify        # replay every shipped plan in the engine
    python -m reskill_gym.envs.alfworld.taskset --export DIR    # write DIR/json_2.1.1/{train,valid_seen,valid_unseen}

Verification loads each rendered game in the real engine (one worker process), asks the
fast-downward planner for a plan (``policy_commands``; the planner, not alfworld's
handcoded expert), executes it command by command and keeps the task only if the engine
reports a win. The executed plan is stored in the spec.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from reskill_gym.envs.alfworld.engine import EngineProcess
from reskill_gym.envs.alfworld.official import OFFICIAL_SPLITS
from reskill_gym.envs.alfworld.render import write_game
from reskill_gym.envs.alfworld.spec import DIFFICULTIES, TaskSet, TaskSpec, split_counts

__all__ = ["PlannerVerifier", "build_taskset", "check_taskset", "export_official_layout", "main"]

logger = logging.getLogger(__name__)
PACKAGED_TASKSET = Path(__file__).with_name("taskset.json")


class PlannerVerifier:
    """Callable ``spec -> plan | None``: render, load, follow the planner, require a win.

    Use as a context manager so the engine worker is ended.
    """

    def __init__(self, workdir: Path, *, max_steps: int = 40, timeout: float = 300.0) -> None:
        self.workdir = workdir
        self.max_steps = max_steps
        self.timeout = timeout
        self.engine = EngineProcess(name="alfworld-verify")

    def __enter__(self) -> PlannerVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.close()

    def __call__(self, spec: TaskSpec) -> tuple[str, ...] | None:
        if not self.engine.alive:
            self.engine.start()
        gamefile = self.workdir / spec.trial_dir / "game.tw-pddl"
        payload = {"op": "load", "gamefile": str(gamefile), "spec": spec.to_json(), "expert": True}
        reply = self.engine.request(payload, timeout=self.timeout)
        actions: list[str] = []
        while not reply["won"] and len(actions) < self.max_steps and reply.get("plan"):
            action = reply["plan"][0]
            reply = self.engine.request({"op": "step", "action": action}, timeout=self.timeout)
            actions.append(action)
        if not reply["won"]:
            logger.info("rejected %s: planner did not win (%d steps)", spec.task_id, len(actions))
            return None
        return tuple(actions)

    def replay(self, spec: TaskSpec) -> bool:
        """Does executing ``spec.plan`` win?"""
        if not self.engine.alive:
            self.engine.start()
        gamefile = self.workdir / spec.trial_dir / "game.tw-pddl"
        payload = {"op": "load", "gamefile": str(gamefile), "spec": spec.to_json(), "expert": False}
        reply = self.engine.request(payload, timeout=self.timeout)
        for action in spec.plan:
            reply = self.engine.request({"op": "step", "action": action}, timeout=self.timeout)
        return bool(reply["won"])


def build_taskset(difficulties: tuple[str, ...] = DIFFICULTIES) -> TaskSet:
    """Generate every level and keep only planner-verified tasks (minutes on one core)."""
    from reskill_gym.envs.alfworld.generator import generate_tasks

    tasks: list[TaskSpec] = []
    with (
        tempfile.TemporaryDirectory(prefix="reskill-alfworld-gen-") as tmp,
        PlannerVerifier(Path(tmp)) as verify,
    ):
        for difficulty in difficulties:
            t0 = time.monotonic()
            level = generate_tasks(difficulty, verify=verify)
            tasks += level
            logger.info(
                "%s: %d tasks verified in %.0f s", difficulty, len(level), time.monotonic() - t0
            )
    meta = {
        "generator": "reskill_gym.envs.alfworld.generator",
        "engine": "alfworld 0.4.2 + textworld PDDL",
    }
    return TaskSet.of(tasks, meta)


def check_taskset(taskset: TaskSet) -> list[str]:
    """Differences between ``taskset`` and fresh (unverified) draws of the same ids."""
    from reskill_gym.envs.alfworld.generator import generate_task

    problems = []
    for spec in taskset.tasks:
        difficulty, split, index = spec.task_id.split("/")
        fresh = generate_task(difficulty, split, int(index), attempt=spec.seed)
        if fresh is None or dataclasses.replace(fresh, plan=spec.plan) != spec:
            problems.append(f"{spec.task_id}: regenerated task differs from the stored one")
    return problems


def export_official_layout(taskset: TaskSet, root: Path) -> Path:
    """Write ``root/json_2.1.1/{train,valid_seen,valid_unseen}/<task>/<trial>/`` for every task."""
    base = root / "json_2.1.1"
    for spec in taskset.tasks:
        write_game(spec, base / OFFICIAL_SPLITS[spec.split] / spec.trial_dir)
    return base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reskill_gym.envs.alfworld.taskset", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=PACKAGED_TASKSET, help="where to write the task set"
    )
    parser.add_argument(
        "--check", action="store_true", help="compare the shipped set with fresh draws"
    )
    parser.add_argument(
        "--verify", action="store_true", help="replay every stored plan in the engine"
    )
    parser.add_argument(
        "--export", type=Path, help="write an official json_2.1.1 tree of the set here"
    )
    parser.add_argument(
        "--taskset",
        type=Path,
        default=PACKAGED_TASKSET,
        help="task set for --check/--verify/--export",
    )
    parser.add_argument(
        "--difficulty", choices=DIFFICULTIES, action="append", help="levels to build (default all)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.check or args.verify or args.export:
        taskset = TaskSet.load(args.taskset)
        status = 0
        if args.check:
            problems = check_taskset(taskset)
            for p in problems:
                logger.error(p)
            logger.info("check: %d tasks, %d differ", len(taskset.tasks), len(problems))
            status |= bool(problems)
        if args.verify:
            with tempfile.TemporaryDirectory() as tmp, PlannerVerifier(Path(tmp)) as verifier:
                failed = [t.task_id for t in taskset.tasks if not verifier.replay(t)]
            logger.info(
                "verify: %d tasks, %d plans fail: %s", len(taskset.tasks), len(failed), failed[:10]
            )
            status |= bool(failed)
        if args.export:
            logger.info("exported to %s", export_official_layout(taskset, args.export))
        return int(status)

    t0 = time.monotonic()
    taskset = build_taskset(tuple(args.difficulty or DIFFICULTIES))
    taskset.save(args.out)
    plan_lengths = Counter((t.difficulty, len(t.plan)) for t in taskset.tasks)
    logger.info(
        "wrote %s: %s in %.0f s", args.out, split_counts(taskset.tasks), time.monotonic() - t0
    )
    logger.info("plan lengths (difficulty, steps) -> tasks: %s", dict(sorted(plan_lengths.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
