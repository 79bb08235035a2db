"""Cost of skill injection: the raw env vs the env wrapped with skills, on identical episodes.

    python benchmarks/perf/wrapper_overhead.py [--envs alfworld scienceworld search] [--quick]
        [--rounds N] [--steps N] [--seed N] [--json PATH]

Paired design. Three *fronts* share one engine instance: ``raw`` (the env itself), ``seed``
(``SkillWrapper`` with the env's seed library) and ``1000`` (the same wrapper switched by
``set_skills`` to a generated 1,000-skill library mixing general / beginning / action /
observation / retrieval triggers). For every round the benchmark first records a script on
the raw env: episodes with a chosen task id (without replacement) and reset seed, played by a
seeded random policy over the admissible actions (ScienceWorld: listed on demand, outside
any clock, its ``focus on`` commands left out since a wrong focus ends the episode; Search:
random ``<search>`` queries). Each front then replays that script exactly (same task ids,
reset seeds, actions). Fronts alternate episode by episode (a block is one episode; the order
cycles through all six permutations of the three fronts), so load drift within a round hits
every front alike; a round's figure per front is the sum over its episodes.

Pairing is checked, not assumed. An untimed replay on the raw env first finds engine
non-determinism: an episode whose observations differ from the recording is cut to the
prefix that matched (dropped if the first step already differs); each case is reported.
After that every timed block compares the front's bare observations (``strip_skill_block``),
rewards and end flags with the recording, and any difference stops the benchmark
(:class:`PairingError`, exit status 1). One measured exception: ScienceWorld lists a room's
objects in an order that changes from load to load (same lines, other order); there such
an observation counts as equal, and how many there were is reported.

Clock: ``step()`` calls only (``reset`` is outside; ALFWorld's ~1 s reset would bury the
difference). Wall = ``perf_counter``; CPU = this process (``process_time``), the engine's
child processes (ALFWorld worker, ScienceWorld JVM) read from ``/proc``. Per env: medians over
rounds with [min, max]; overhead (wall) = front time / raw time - 1 per round; overhead (CPU)
= the front's extra CPU in this process / the raw step's CPU (this process + engine), since
the engine does the same work on every front. Goal: <= 5 % on ALFWorld and ScienceWorld
(fast step mode) with 1,000 skills.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reskill_gym.skills import LibraryView, Skill, Trigger
from reskill_gym.testing.workload import ENV_KWARGS, machine, pick_action
from reskill_gym.wrapper import SkillWrapper, strip_skill_block

FRONTS = ("raw", "seed", "1000")
_VERBS = ["go to", "take", "open", "close", "put", "heat", "cool", "clean", "use", "examine"]
_NOUNS = ["apple", "mug", "drawer", "fridge", "sink", "lamp", "knife", "plate", "shelf", "box"]
#: Steps per block (quick run; the full run takes 2.5x): ~0.3-1 s of stepping per block
#: under load. A Search step (in-process BM25) is ~100x cheaper than an ALFWorld one.
QUICK_STEPS = {"alfworld": 40, "scienceworld": 30, "search": 1000, "textworld": 200}
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class PairingError(RuntimeError):
    """Two fronts did not play the same episode: the comparison would be meaningless."""


def synthetic_library(n: int, seed: int = 0) -> LibraryView:
    """``n`` skills with realistic triggers; most patterns rarely match, as in a real library."""
    rng = random.Random(seed)
    kinds = ["action_pattern", "observation_pattern", "general", "beginning", "retrieval"]
    skills = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        verb, noun = rng.choice(_VERBS), rng.choice(_NOUNS)
        pattern = None
        if kind == "action_pattern":
            pattern = rf"^{verb} {noun} \d+"
        elif kind == "observation_pattern":
            pattern = rf"\b{noun}s? {i}\b"
        skills.append(
            Skill(
                name=f"skill-{i:05d}",
                description=f"How to {verb} the {noun} (variant {i}).",
                when_to_use=f"When the task involves a {noun}.",
                content=f"If you need the {noun}, {verb} it carefully; variant {i}.",
                trigger=Trigger(type=kind, pattern=pattern),
            )
        )
    return LibraryView(f"synthetic-{n}", skills)


# ----- scripts: what every front replays ---------------------------------------------------
@dataclass(frozen=True)
class Script:
    """One recorded episode: reset arguments, actions, and what the engine answered.

    ``observations[0]`` is the reset observation, ``observations[i + 1]`` the answer to
    ``actions[i]``; ``ends[i]`` is ``terminated or truncated`` after ``actions[i]``.
    """

    task_id: str
    seed: int
    actions: tuple[str, ...]
    observations: tuple[str, ...]
    rewards: tuple[float, ...]
    ends: tuple[bool, ...]

    def prefix(self, n: int) -> Script:
        """The first ``n`` actions (and what they produced)."""
        return Script(
            self.task_id,
            self.seed,
            self.actions[:n],
            self.observations[: n + 1],
            self.rewards[:n],
            self.ends[:n],
        )


@dataclass
class Trace:
    """What a front produced while replaying one script (bare observations)."""

    observations: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    ends: list[bool] = field(default_factory=list)


def _reset_options(script: Script) -> dict[str, Any]:
    return {"task_id": script.task_id}


def recording_actions(env_name: str, env: Any, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with the admissible actions the recording policy draws from.

    ScienceWorld lists them only on demand in fast step mode (``admissible_actions()``, ~25x a
    step, paid here and never during the timed replays); its ``focus on`` commands are left
    out because a wrong focus ends the episode, and random ones would make resets dominate.
    """
    if env_name == "scienceworld" and "admissible_actions" not in info:
        adm = [a for a in env.admissible_actions() if not a.startswith("focus on")]
        return {**info, "admissible_actions": adm}
    return info


def record_round(
    env: Any,
    env_name: str,
    n_steps: int,
    rng: random.Random,
    next_task: Callable[[], str],
    next_seed: Callable[[], int],
) -> list[Script]:
    """Episodes on the raw ``env`` until ``n_steps`` actions are recorded (last one cut)."""
    scripts: list[Script] = []
    left = n_steps
    while left > 0:
        task_id, seed = next_task(), next_seed()
        options = {"task_id": task_id}
        obs, info = env.reset(seed=seed, options=options)
        actions: list[str] = []
        observations, rewards, ends = [obs], [], []
        done = False
        while left > 0 and not done:
            action = pick_action(env_name, recording_actions(env_name, env, info), rng)
            obs, reward, term, trunc, info = env.step(action)
            done = term or trunc
            actions.append(action)
            observations.append(obs)
            rewards.append(float(reward))
            ends.append(bool(done))
            left -= 1
        scripts.append(
            Script(task_id, seed, tuple(actions), tuple(observations), tuple(rewards), tuple(ends))
        )
    return scripts


#: Envs whose engine lists some observation lines (a room's objects) in an order that
#: changes from load to load (measured on ScienceWorld: e.g. the two inclined planes of
#: ``inclined-plane-friction-named-surfaces`` swap places). There an observation counts as
#: the same if it has the same lines in another order; such cases are counted and reported.
LINE_ORDER_FREE = frozenset({"scienceworld"})


def _differs(a: str, b: str, order_free: bool) -> str | None:
    """``None`` if equal, ``"order"`` if only the order of lines differs, else ``"content"``."""
    if a == b:
        return None
    if order_free and sorted(a.splitlines()) == sorted(b.splitlines()):
        return "order"
    return "content"


def compare(script: Script, trace: Trace, *, order_free: bool = False) -> tuple[int | None, int]:
    """(index of the first observation whose content differs, or ``None``; order-only diffs).

    Index 0 is the reset observation, ``i + 1`` the answer to ``actions[i]``; a different
    reward or end flag after an action counts as a content difference at that index.
    """
    n = min(len(script.observations), len(trace.observations))
    order_only = 0
    for i in range(n):
        kind = _differs(script.observations[i], trace.observations[i], order_free)
        if kind == "content":
            return i, order_only
        order_only += kind == "order"
        if i > 0 and (
            script.rewards[i - 1] != trace.rewards[i - 1] or script.ends[i - 1] != trace.ends[i - 1]
        ):
            return i, order_only
    if len(script.observations) != len(trace.observations):
        return n, order_only
    return None, order_only


def _context(a: str, b: str) -> tuple[str, str]:
    """The two texts around their first differing character."""
    j = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, j - 40)
    return a[lo : j + 60], b[lo : j + 60]


def check_pairing(
    front: str, env_name: str, scripts: Sequence[Script], traces: Sequence[Trace]
) -> int:
    """Raise :class:`PairingError` unless every trace equals its script (bare observations).

    Returns the number of observations that differed only in line order (envs in
    :data:`LINE_ORDER_FREE`; elsewhere any difference raises).
    """
    if len(scripts) != len(traces):
        raise PairingError(
            f"{env_name}/{front}: played {len(traces)} episodes, the script has {len(scripts)}"
        )
    order_only = 0
    for k, (script, trace) in enumerate(zip(scripts, traces)):
        i, n_order = compare(script, trace, order_free=env_name in LINE_ORDER_FREE)
        order_only += n_order
        if i is None:
            continue
        where = "reset" if i == 0 else f"step {i - 1} ({script.actions[i - 1]!r})"
        want = script.observations[i] if i < len(script.observations) else "<none>"
        got = trace.observations[i] if i < len(trace.observations) else "<none>"
        want, got = _context(want, got)
        raise PairingError(
            f"{env_name}/{front}: episode {k} (task {script.task_id}, seed {script.seed}) differs "
            f"from the recording at {where}: recorded ...{want!r}..., this front got "
            f"...{got!r}... The fronts did not play the same episode; an overhead figure "
            "would compare different work."
        )
    return order_only


# ----- CPU of the engine's child processes --------------------------------------------------
def _children(pid: int) -> list[int]:
    """Descendant pids of ``pid`` (``/proc/<pid>/task/<tid>/children``; Linux)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for t in Path(f"/proc/{p}/task").iterdir():
                kids = [int(k) for k in (t / "children").read_text().split()]
                out.extend(kids)
                todo.extend(kids)
        except OSError:
            continue
    return out


def _cpu_of(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` in seconds (``/proc/<pid>/stat``; 0 for a vanished pid)."""
    total = 0
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


# ----- one timed block ----------------------------------------------------------------------
@dataclass
class Block:
    """One front's replay of one round's episodes (summed over its per-episode blocks)."""

    front: str
    steps: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process
    engine_cpu_s: float = 0.0  # the engine's child processes
    skills_fired: int = 0
    bundle_chars: int = 0
    order_only: int = 0  # observations equal to the recording up to line order

    @property
    def total_cpu_s(self) -> float:
        return self.cpu_s + self.engine_cpu_s

    def add(self, other: Block) -> None:
        """Accumulate another block of the same front."""
        for name in ("steps", "wall_s", "cpu_s", "engine_cpu_s", "skills_fired"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bundle_chars += other.bundle_chars
        self.order_only += other.order_only


def play(env: Any, scripts: Sequence[Script], front: str) -> tuple[Block, list[Trace]]:
    """Replay ``scripts`` on ``env``, timing each ``step`` call; bare observations kept."""
    block = Block(front)
    traces: list[Trace] = []
    pids = _children(os.getpid())
    perf, cpu = time.perf_counter, time.process_time
    for script in scripts:
        obs, info = env.reset(seed=script.seed, options=_reset_options(script))
        raw_obs = [(obs, info.get("bundle_text", ""))]
        rewards, ends = [], []
        for action in script.actions:
            e0 = _cpu_of(pids)
            c0 = cpu()
            w0 = perf()
            obs, reward, term, trunc, info = env.step(action)
            w1 = perf()
            c1 = cpu()
            e1 = _cpu_of(pids)
            block.wall_s += w1 - w0
            block.cpu_s += c1 - c0
            block.engine_cpu_s += e1 - e0
            block.steps += 1
            block.skills_fired += len(info.get("skill_ids", ()))
            block.bundle_chars += int(info.get("bundle_chars", 0))
            raw_obs.append((obs, info.get("bundle_text", "")))
            rewards.append(float(reward))
            ends.append(bool(term or trunc))
        # strip outside the clock; the raw env has no bundle_text, strip is then a no-op
        bare = [strip_skill_block(o, {"bundle_text": b}) for o, b in raw_obs]
        traces.append(Trace(bare, rewards, ends))
    return block, traces


def verify_determinism(
    env: Any, env_name: str, scripts: Sequence[Script]
) -> tuple[list[Script], list[str]]:
    """Replay on the raw env (untimed); cut each script to the prefix the engine repeats."""
    _, traces = play(env, scripts, "raw")
    kept: list[Script] = []
    notes: list[str] = []
    for script, trace in zip(scripts, traces):
        i, _ = compare(script, trace, order_free=env_name in LINE_ORDER_FREE)
        if i is None:
            kept.append(script)
        elif i <= 1:
            notes.append(
                f"{env_name}: {script.task_id} seed {script.seed} not deterministic at "
                f"{'reset' if i == 0 else 'step 0'}: dropped"
            )
        else:
            kept.append(script.prefix(i - 1))
            notes.append(
                f"{env_name}: {script.task_id} seed {script.seed} diverged at step {i - 1}: "
                f"replaying its first {i - 1} of {len(script.actions)} actions"
            )
    return kept, notes


# ----- the measurement ----------------------------------------------------------------------
@dataclass
class EnvResult:
    env: str
    rounds: list[dict[str, Block]]
    episodes: int
    notes: list[str]


def measure(
    env_name: str, steps_per_block: int, rounds: int, *, env: Any = None, seed: int = 0
) -> EnvResult:
    """Record, verify and replay ``rounds`` scripts of ``steps_per_block`` steps per front.

    ``env``: a raw env to use (default: ``make_env(env_name)`` with the shared workload
    settings); it is closed at the end only when built here.
    """
    from reskill_gym.envs.registration import make_env, seed_library_path

    own = env is None
    raw = make_env(env_name, **ENV_KWARGS[env_name]) if own else env
    try:
        seed_path = None
        try:
            seed_path = seed_library_path(env_name)
        except FileNotFoundError:
            pass
        views: dict[str, LibraryView | None] = {
            "raw": None,
            "seed": LibraryView.from_folder(seed_path) if seed_path else LibraryView("empty", []),
            "1000": synthetic_library(1000),
        }
        wrapped = SkillWrapper(raw, None)
        rng = random.Random(seed)
        tasks = list(raw.task_ids())
        order: list[str] = []

        def next_task() -> str:
            # without replacement while tasks last, so rounds play different tasks
            if not order:
                order.extend(rng.sample(tasks, len(tasks)))
            return order.pop()

        seeds = iter(range(seed * 1_000_000 + 1, seed * 1_000_000 + 1_000_000))

        def front_env(name: str) -> Any:
            if name == "raw":
                return raw
            wrapped.set_skills(views[name])
            return wrapped

        # warm-up outside the clock: engine start, selector / index builds of both libraries
        warm = record_round(raw, env_name, 3, rng, next_task, lambda: next(seeds))
        for name in FRONTS:
            play(front_env(name), warm, name)
        scripts_per_round = [
            record_round(raw, env_name, steps_per_block, rng, next_task, lambda: next(seeds))
            for _ in range(rounds)
        ]
        notes: list[str] = []
        checked = []
        for scripts in scripts_per_round:
            kept, n = verify_determinism(raw, env_name, scripts)
            checked.append(kept)
            notes += n
        played = [scripts for scripts in checked if scripts]
        # Fronts alternate episode by episode (a block = one episode), cycling through all six
        # orders so each front comes first, second and third equally often; a round's figure
        # is the sum over its episodes. Load changes within a round hit all fronts alike.
        orders = itertools.cycle(itertools.permutations(FRONTS))
        results: list[dict[str, Block]] = []
        for scripts in played:
            blocks = {name: Block(name) for name in FRONTS}
            for script in scripts:
                for name in next(orders):
                    block, traces = play(front_env(name), [script], name)
                    block.order_only = check_pairing(name, env_name, [script], traces)
                    blocks[name].add(block)
            results.append(blocks)
        if not results:
            raise PairingError(f"{env_name}: every recorded episode was non-deterministic")
        order_only = sum(b.order_only for r in results for b in r.values())
        if order_only:
            n_obs = len(FRONTS) * sum(
                len(scripts) + sum(len(x.actions) for x in scripts) for scripts in played
            )
            notes.append(
                f"{env_name}: {order_only} of {n_obs} replayed observations matched the "
                "recording only up to the order of their lines (the engine lists a room's "
                "objects in a load-dependent order); all other observations were identical"
            )
        return EnvResult(env_name, results, sum(len(s) for s in checked), notes)
    finally:
        if own:
            raw.close()


# ----- reporting ----------------------------------------------------------------------------
def _med(xs: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(xs), min(xs), max(xs)


def summarise(res: EnvResult) -> dict[str, Any]:
    """Medians over rounds (with min and max) of the paired per-round figures."""
    out: dict[str, Any] = {"env": res.env, "rounds": len(res.rounds), "episodes": res.episodes}
    out["steps_per_round"] = _med([b["raw"].steps for b in res.rounds])
    for f in FRONTS:
        out[f"steps_per_s/{f}"] = _med([b[f].steps / b[f].wall_s for b in res.rounds])
        out[f"cpu_us_per_step/{f}"] = _med([1e6 * b[f].cpu_s / b[f].steps for b in res.rounds])
        out[f"engine_cpu_ms_per_step/{f}"] = _med(
            [1e3 * b[f].engine_cpu_s / b[f].steps for b in res.rounds]
        )
    for f in FRONTS[1:]:
        out[f"overhead_wall/{f}"] = _med([b[f].wall_s / b["raw"].wall_s - 1 for b in res.rounds])
        # the engine processes do the same work on every front (same actions), so the
        # wrapper's cost is the in-process difference; relative to the raw step's whole CPU
        out[f"overhead_cpu/{f}"] = _med(
            [(b[f].cpu_s - b["raw"].cpu_s) / b["raw"].total_cpu_s for b in res.rounds]
        )
        out[f"overhead_total_cpu/{f}"] = _med(
            [b[f].total_cpu_s / b["raw"].total_cpu_s - 1 for b in res.rounds]
        )
        out[f"added_cpu_us_per_step/{f}"] = _med(
            [1e6 * (b[f].cpu_s - b["raw"].cpu_s) / b["raw"].steps for b in res.rounds]
        )
        steps = sum(b[f].steps for b in res.rounds)
        out[f"skills_per_turn/{f}"] = sum(b[f].skills_fired for b in res.rounds) / steps
    return out


def _pct(t: tuple[float, float, float]) -> str:
    return f"{100 * t[0]:+.1f} % [{100 * t[1]:+.1f}, {100 * t[2]:+.1f}]"


def _num(t: tuple[float, float, float], fmt: str = ".1f") -> str:
    return f"{t[0]:{fmt}} [{t[1]:{fmt}}-{t[2]:{fmt}}]"


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--envs", nargs="+", default=["alfworld", "scienceworld", "search", "textworld"]
    )
    ap.add_argument("--quick", action="store_true", help="10 rounds of short blocks")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 10 quick, 20 full)")
    ap.add_argument("--steps", type=int, default=None, help="steps per block (default per env)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write every round's numbers here")
    args = ap.parse_args(argv)
    rounds = args.rounds or (10 if args.quick else 20)
    scale = 1.0 if args.quick else 2.5
    print(f"# wrapper overhead ({machine()}; load 1/5/15 min at start {_load()})")
    print(
        "Paired: per round, raw / seed-library / 1,000-skill fronts replay the same recorded "
        "episodes (task ids, reset seeds, actions) on one engine instance, alternating episode "
        "by episode in all six orders; every front's bare observations, rewards and end "
        "flags are checked against the recording (a difference stops the benchmark). Clock: "
        "step() calls. "
        "Figures: median over rounds [min, max]. Overhead (wall) = front time / raw time - 1; "
        "overhead (CPU) = the front's extra CPU in this process / the raw step's CPU (this "
        "process + engine processes)."
    )
    print()
    rows = [
        "| env | rounds x steps | raw steps/s | seed lib steps/s | 1,000 skills steps/s "
        "| overhead seed (wall) | overhead 1,000 (wall) | overhead seed (CPU) "
        "| overhead 1,000 (CPU) | skills/turn seed / 1,000 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    details = [
        "| env | CPU us/step here raw / seed / 1,000 | engine CPU ms/step raw / seed / 1,000 "
        "| added CPU us/step seed / 1,000 | overhead 1,000 (CPU incl. engine noise) |",
        "|---|---|---|---|---|",
    ]
    failed = False
    dump: dict[str, Any] = {"machine": machine(), "load_start": os.getloadavg(), "envs": {}}
    notes: list[str] = []
    for name in args.envs:
        steps = args.steps or max(1, round(QUICK_STEPS.get(name, 20) * scale))
        try:
            res = measure(name, steps, rounds, seed=args.seed)
        except PairingError as exc:
            failed = True
            rows.append(f"| {name} | PAIRING FAILED: {exc} | | | | | | | | |")
            continue
        except Exception as exc:  # an engine that cannot start here: say so, go on
            failed = True
            rows.append(f"| {name} | error: {type(exc).__name__}: {exc} | | | | | | | | |")
            continue
        s = summarise(res)
        notes += res.notes
        rows.append(
            f"| {name} | {s['rounds']} x {s['steps_per_round'][0]:.0f} ({s['episodes']} ep.) "
            f"| {_num(s['steps_per_s/raw'])} | {_num(s['steps_per_s/seed'])} "
            f"| {_num(s['steps_per_s/1000'])} | {_pct(s['overhead_wall/seed'])} "
            f"| {_pct(s['overhead_wall/1000'])} | {_pct(s['overhead_cpu/seed'])} "
            f"| {_pct(s['overhead_cpu/1000'])} "
            f"| {s['skills_per_turn/seed']:.2f} / {s['skills_per_turn/1000']:.2f} |"
        )
        cpu = " / ".join(f"{s[f'cpu_us_per_step/{f}'][0]:.0f}" for f in FRONTS)
        eng = " / ".join(f"{s[f'engine_cpu_ms_per_step/{f}'][0]:.2f}" for f in FRONTS)
        details.append(
            f"| {name} | {cpu} | {eng} | {_num(s['added_cpu_us_per_step/seed'], '.0f')} / "
            f"{_num(s['added_cpu_us_per_step/1000'], '.0f')} "
            f"| {_pct(s['overhead_total_cpu/1000'])} |"
        )
        dump["envs"][name] = {
            "summary": s,
            "rounds": [{f: asdict(b) for f, b in r.items()} for r in res.rounds],
            "notes": res.notes,
        }
    print("\n".join(rows))
    print()
    print("\n".join(details))
    print()
    for n in notes:
        print(f"- {n}")
    print(f"load 1/5/15 min at end: {_load()}")
    dump["load_end"] = os.getloadavg()
    if args.json:
        from reskill_gym.atomic import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(dump, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
