"""EnvPool leases (reuse, skills per lease, crashed envs replaced) and the run report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reskill_gym.envs.base import EngineCrashedError, EngineStep, TextEnv
from reskill_gym.skills import Skill, SkillLibrary, Trigger
from reskill_gym.wrapper import SkillWrapper

pytest.importorskip("torch")

from reskill_local.pool import EnvPool  # noqa: E402


class Counter(TextEnv):
    """Say a number; crashes on the step where the action is 'crash'."""

    env_name = "counter"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.closed = False

    def task_ids(self, split: str | None = None) -> list[str]:
        return ["count"]

    def _engine_reset(self, task_id: str, seed: int, options: dict) -> tuple[str, dict]:
        return "Say a number.", {
            "task": "count to one",
            "task_type": "count",
            "admissible_actions": ["1", "crash"],
        }

    def _engine_step(self, action: str) -> EngineStep:
        if action == "crash":
            raise EngineCrashedError("worker died (test)")
        return EngineStep("ok", 1.0, True, False, admissible_actions=["1", "crash"])

    def close(self) -> None:
        self.closed = True


def _library(tmp_path: Path) -> tuple[SkillLibrary, str, str]:
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    a = lib.commit(
        [Skill(name="alpha", description="a", content="A.", trigger=Trigger(type="general"))],
        reason="a",
    )
    b = lib.commit(
        [Skill(name="beta", description="b", content="B.", trigger=Trigger(type="general"))],
        reason="b",
        set_head=False,
    )
    return lib, a, b


def test_pool_reuses_engines_and_sets_each_lease_skills(tmp_path: Path) -> None:
    lib, a, b = _library(tmp_path)
    made: list[Counter] = []

    def build() -> SkillWrapper:
        made.append(Counter(max_turns=2))
        return SkillWrapper(made[-1], None)

    pool = EnvPool(build, lib.view)
    e1, e2 = pool("count", a), pool("count", b)
    _, i1 = e1.reset(seed=0)
    _, i2 = e2.reset(seed=0)
    assert (i1["library_version"], i2["library_version"]) == (a, b)
    e1.close(), e2.close()
    e3 = pool("count", b)
    _, i3 = e3.reset(seed=1)
    assert i3["library_version"] == b and pool.built == 2 and len(made) == 2
    e3.close()
    pool.close()
    assert all(m.closed for m in made)


def test_pool_discards_an_env_that_raised(tmp_path: Path) -> None:
    lib, a, _ = _library(tmp_path)
    made: list[Counter] = []

    def build() -> SkillWrapper:
        made.append(Counter(max_turns=2))
        return SkillWrapper(made[-1], None)

    pool = EnvPool(build, lib.view)
    env = pool("count", a)
    env.reset(seed=0)
    with pytest.raises(EngineCrashedError):
        env.step("crash")
    env.close()
    assert made[0].closed and pool.discarded == 1 and pool.idle == 0
    env = pool("count", a)
    env.reset(seed=0)
    assert env.step("1")[1] == 1.0 and pool.built == 2
    env.close()
    pool.close()


def _write_run(run: Path) -> None:
    rows = []
    for step in range(5):
        row: dict[str, Any] = {"step": step, "charts/reward_mean": 0.25 * (step % 3)}
        row["charts/success_rate"] = row["charts/reward_mean"]
        arms = ("head",) if step in (0, 1, 4) else ("incumbent", "candidate")
        for arm in arms:
            row[f"arms/{arm}/reward_mean"] = 0.5 if arm == "candidate" else 0.25
            row[f"arms/{arm}/success_rate"] = row[f"arms/{arm}/reward_mean"]
        row["versions/p_candidate"] = 0.5 if len(arms) == 2 else None
        row["run/wall_s"], row["run/cpu_s"] = 10.0 * (step + 1), 15.0 * (step + 1)
        rows.append(row)
    events = [
        {"kind": "creator_submitted", "step": 0, "message": "pass", "data": {}},
        {
            "kind": "candidate_committed",
            "step": 1,
            "message": "c1",
            "data": {"candidate": "c1", "base": "h0", "operations": "add x"},
        },
        {"kind": "test_started", "step": 1, "message": "t", "data": {"candidate": "c1"}},
        {
            "kind": "test_decided",
            "step": 3,
            "message": "accept",
            "data": {
                "candidates": ["c1"],
                "accepted": "c1",
                "started_step": 1,
                "reason": "posterior mean",
                "counts": {
                    "h0": {"successes": 2, "episodes": 8},
                    "c1": {"successes": 4, "episodes": 8},
                },
            },
        },
        {"kind": "episode_dropped", "step": 4, "message": "r3 dropped: EngineCrashedError"},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_report_writes_markdown_and_plots(tmp_path: Path) -> None:
    from reskill_gym.report import load_run, write_report

    _write_run(tmp_path)
    rec = load_run(tmp_path)
    assert [(v.version, v.created, v.test_started, v.decided, v.outcome) for v in rec.lives] == [
        ("c1", 1, 1, 3, "accepted")
    ]
    path = write_report(tmp_path)
    text = path.read_text()
    assert "1 started, 1 decided (1 accepted, 0 rejected)" in text
    assert "**accepted** at step 3" in text and "c1: 4/8" in text
    assert "episode_dropped" in text
    for png in ("reward_per_arm.png", "skill_lifecycle.png"):
        data = (tmp_path / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_report_cli_and_empty_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no metrics.jsonl rows" in res.output
    _write_run(tmp_path)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0 and "report.md" in res.output
