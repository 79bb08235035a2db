"""`reskill view` on a big run: time to first paint and server memory, 10,000 episodes x 50 turns.

    python benchmarks/perf/view_scale.py [--episodes 10000] [--turns 50] [--quick]

A synthetic run folder is written with the project's own writers (``write_step_episodes``:
100 episodes per step, ALFWorld-like observations, replies and skill ids; ``metrics.jsonl``
with per-arm curves; ``events.jsonl`` with version tests; a library with history). Then the
real command (``reskill view RUN --port 0``) serves it and headless Chromium (Debian's, via
Playwright) opens the pages. Reported: first contentful paint and "page drawn with data" of
the Run and Episodes pages, the time until the whole episode index is in the browser, an
episode's open time, and the server's resident memory (RSS) after each stage. Goal: first
paint < 2 s; memory bounded by the index (the server never holds turns).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reskill_gym.episode import Episode, Turn
from reskill_gym.runfolder import append_jsonl
from reskill_gym.step_episodes import write_step_episodes
from reskill_gym.testing.browser import launch_chromium
from reskill_gym.testing.workload import machine, rss_mib

ROOT = Path(__file__).resolve().parents[2]
PLACES = ["countertop", "cabinet", "drawer", "shelf", "fridge", "microwave", "sinkbasin", "desk"]
OBJECTS = ["apple", "bread", "knife", "mug", "spatula", "plate", "egg", "pan", "cd", "pencil"]


def _observation(rng: random.Random) -> str:
    place = f"{rng.choice(PLACES)} {rng.randint(1, 6)}"
    seen = ", ".join(
        f"a {rng.choice(OBJECTS)} {rng.randint(1, 3)}" for _ in range(rng.randint(2, 7))
    )
    return f"You arrive at {place}. On the {place}, you see {seen}."


def build_run(run: Path, episodes: int, turns: int, per_step: int = 100) -> None:
    """The synthetic run folder (library, metrics, events, episodes)."""
    from reskill_gym.skills import SkillLibrary

    shutil.copytree(ROOT / "skills" / "alfworld", run / "skills")
    lib = SkillLibrary.open(run / "skills", create=True, reason="seed", proposed_by="run")
    view = lib.view()
    skill_ids = [f"{s.name}@{s.version}" for s in view.skills]
    texts = {f"{s.name}@{s.version}": view.text(s.name) for s in view.skills}
    rng = random.Random(0)
    steps = (episodes + per_step - 1) // per_step
    rows, events = [], []
    for step in range(steps):
        testing = step % 10 >= 2
        rows.append(
            {
                "step": step,
                "episode/success_rate": rng.random(),
                "episode/reward_mean": rng.random(),
                "episode/valid_action_ratio": 0.9 + 0.1 * rng.random(),
                "episode/turns_mean": turns * rng.random(),
                **(
                    {
                        "arms/incumbent/success_rate": rng.random(),
                        "arms/candidate/success_rate": rng.random(),
                        "versions/p_candidate": rng.random(),
                    }
                    if testing
                    else {"arms/head/success_rate": rng.random()}
                ),
            }
        )
        if step % 10 == 2:
            events.append(
                {
                    "kind": "test_started",
                    "step": step,
                    "message": "",
                    "data": {"candidate": f"{step:012x}"},
                }
            )
        if step % 10 == 9:
            events.append(
                {
                    "kind": "test_decided",
                    "step": step,
                    "message": "",
                    "data": {
                        "candidates": [f"{step - 7:012x}"],
                        "accepted": view.version,
                        "started_step": step - 7,
                    },
                }
            )
        eps = []
        for i in range(min(per_step, episodes - step * per_step)):
            arm = ("incumbent", "candidate")[i % 2] if testing else "head"
            eps.append(
                Episode.model_construct(
                    episode_id=f"s{step}-g{i // 8}-r{i % 8}",
                    env_id="ReSkill-ALFWorld-v0",
                    task_id=f"std/train/{rng.randint(0, 3000):04d}",
                    task="put a clean mug in coffeemachine.",
                    task_type=rng.choice(
                        [
                            "pick_and_place_simple",
                            "pick_clean_then_place_in_recep",
                            "look_at_obj_in_light",
                        ]
                    ),
                    split="train",
                    seed=i,
                    library_version=view.version,
                    arm=arm,
                    group_id=f"s{step}-g{i // 8}",
                    step=step,
                    final_observation="",
                    reward=float(rng.random() < 0.3),
                    won=rng.random() < 0.3,
                    stop_reason="done",
                    error=None,
                    turns=[
                        Turn.model_construct(
                            observation=_observation(rng),
                            action=f"go to {rng.choice(PLACES)} {rng.randint(1, 6)}",
                            reward=0.0,
                            skill_ids=rng.sample(skill_ids, rng.randint(0, 3)),
                            invalid_action=rng.random() < 0.1,
                            reply=f"<think>I should look for the {rng.choice(OBJECTS)}.</think><action>go to desk 1</action>",
                            parse="tagged",
                            valid=rng.random() > 0.05,
                            choice_prob=None,
                            candidates=None,
                            scores=None,
                            input_tokens=400,
                            output_tokens=24,
                            cost_usd=0.0,
                            retries=0,
                        )
                        for _ in range(turns)
                    ],
                )
            )
        write_step_episodes(run, step, eps, skill_texts=texts)
    append_jsonl(run / "metrics.jsonl", rows)
    append_jsonl(run / "events.jsonl", events)
    (run / "config.yaml").write_text(f"run:\n  steps: {steps}\nenv:\n  name: alfworld\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--turns", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="2,000 episodes.")
    args = ap.parse_args()
    n = 2000 if args.quick else args.episodes
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "big-run"
        t = time.perf_counter()
        build_run(run, n, args.turns)
        build_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (run / "episodes").iterdir())
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "reskill"), "view", str(run), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out: list[tuple[str, str]] = []
        try:
            assert proc.stdout is not None
            url = re.search(r"http://\S+/", proc.stdout.readline())
            assert url, "reskill view printed no URL"
            base = url.group(0)
            out.append(("server RSS at start", f"{rss_mib(proc.pid):.0f} MiB"))
            with sync_playwright() as p:
                browser = launch_chromium(p)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for name, route in (("Run", "#/run"), ("Episodes", "#/episodes/0")):
                    page.goto("about:blank")
                    t0 = time.perf_counter()
                    page.goto(base + route)
                    page.wait_for_selector("body[data-rendered='1']", timeout=120_000)
                    drawn = time.perf_counter() - t0
                    fcp = page.evaluate(
                        "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
                    )
                    out.append(
                        (
                            f"{name} page: first contentful paint",
                            f"{fcp / 1000:.2f} s" if fcp else "-",
                        )
                    )
                    out.append((f"{name} page: drawn with data", f"{drawn:.2f} s"))
                    out.append(
                        (f"server RSS after the {name} page", f"{rss_mib(proc.pid):.0f} MiB")
                    )
                t0 = time.perf_counter()
                deadline = time.perf_counter() + 300
                # a Python poll: wait_for_function evaluates a string, which the page's CSP refuses
                while not page.inner_text("main p").startswith(f"{n} of {n} "):
                    if time.perf_counter() > deadline:
                        raise TimeoutError("the episode index never finished loading")
                    time.sleep(0.1)
                out.append(
                    (
                        "whole index in the browser",
                        f"{time.perf_counter() - t0 + drawn:.2f} s after navigation",
                    )
                )
                opened = []
                for k in range(5):
                    page.goto("about:blank")
                    t0 = time.perf_counter()
                    page.goto(base + f"#/episode/0/{(k * 1999) % n}")
                    page.wait_for_selector("body[data-rendered='1'] .turn")
                    opened.append(time.perf_counter() - t0)
                out.append(
                    (
                        f"open one {args.turns}-turn episode (mean of 5)",
                        f"{sum(opened) / len(opened):.2f} s",
                    )
                )
                out.append(
                    ("server RSS after the index and 5 episodes", f"{rss_mib(proc.pid):.0f} MiB")
                )
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"machine: {machine()}")
    print(
        f"synthetic run: {n:,} episodes x {args.turns} turns, {size / 2**20:.0f} MiB of episodes/ on disk, built in {build_s:.0f} s"
    )
    print()
    print("| figure | value |")
    print("|---|---:|")
    for k, v in out:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
