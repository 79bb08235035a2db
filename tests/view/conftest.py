"""Run folders for the viewer's tests, written by the project's own writers.

``evolve_run``: a real ``reskill evolve`` dry run (scripted agent, the offline rules creator,
ALFWorld ``tiny``): three steps, a version test started and decided, episodes and creator
artifacts recorded. ``hostile_run``: a run folder whose every string a page shows - skill
bodies, replies, observations, task text, creator output, config values, event messages -
is an XSS payload, written through the same writers (library commits, ``append_jsonl``,
``write_step_episodes``). ``eval_run``: a ``reskill eval`` folder of ``EvalEpisode`` lines
(the evolve run's episodes as two conditions).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EVOLVE_CONFIGS = REPO / "configs" / "evolve"

#: Strings that would run script if a page ever turned text into markup.
XSS = (
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    '"><svg onload="window.__xss=1">',
    "javascript:window.__xss=1",
)


@pytest.fixture(scope="session")
def xss() -> tuple[str, ...]:
    """The payloads ``hostile_run`` is made of."""
    return XSS


@pytest.fixture(scope="session")
def evolve_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("alfworld")
    from reskill_gym.evolve import EvolveRun, load_evolve_config

    out = tmp_path_factory.mktemp("view-runs")
    sys.path.insert(0, str(EVOLVE_CONFIGS))
    try:
        cfg = load_evolve_config(
            EVOLVE_CONFIGS / "alfworld_python.yaml",
            [f"run.out_dir={out}", "run.name=evolve", "run.steps=3", "run.progress=false"],
        )
        EvolveRun.create(cfg).run()
    finally:
        sys.path.remove(str(EVOLVE_CONFIGS))
        sys.modules.pop("scripted_alfworld_agent", None)
    return out / "evolve"


@pytest.fixture(scope="session")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reskill_gym.atomic import atomic_write_text
    from reskill_gym.episode import Episode, Turn
    from reskill_gym.runfolder import append_jsonl
    from reskill_gym.skills import Skill, SkillLibrary, Trigger
    from reskill_gym.step_episodes import write_step_episodes

    run = tmp_path_factory.mktemp("hostile") / "xss-run"
    lib = SkillLibrary.open(run / "skills", create=True, reason=XSS[0], proposed_by="run")
    evil = Skill(
        name="evil-skill",
        description=XSS[1],
        content=f"When {XSS[0]} then {XSS[1]}",
        trigger=Trigger(type="general"),
    )
    base = lib.head
    cand = lib.commit([evil], reason=f"add evil-skill: {XSS[2]}", step=0, set_head=False)
    view = lib.view(cand)
    config = {"run": {"exp_name": XSS[0], "steps": 2}, "env": {"name": "alfworld", "note": XSS[1]}}
    atomic_write_text(run / "config.yaml", yaml.safe_dump(config))
    append_jsonl(
        run / "metrics.jsonl",
        [
            {"step": s, "episode/success_rate": 0.5, "arms/candidate/success_rate": 0.25}
            for s in (0, 1)
        ],
    )
    append_jsonl(
        run / "events.jsonl",
        [
            {"kind": "creator_submitted", "step": 0, "message": XSS[0], "data": {}},
            {
                "kind": "candidate_committed",
                "step": 0,
                "message": XSS[1],
                "data": {"candidate": cand, "base": base, "operations": XSS[2]},
            },
            {"kind": "test_started", "step": 0, "message": XSS[3], "data": {"candidate": cand}},
        ],
    )
    atomic_write_text(
        run / "creator" / "step_000000" / "09_result.json", json.dumps({"proposal": XSS[0]})
    )
    atomic_write_text(run / "creator" / "step_000000" / "07_author_try1_response.txt", XSS[1])
    sid = f"evil-skill@{view.get('evil-skill').version}"
    episodes = [
        Episode(
            episode_id=f"s1-g0-r{i}",
            env_id="ReSkill-ALFWorld-v0",
            task_id=f"task-{i}",
            task=XSS[i % len(XSS)],
            task_type=XSS[3],
            step=1,
            arm=("candidate", "incumbent")[i % 2],
            library_version=(cand, base)[i % 2],
            group_id="s1-g0",
            turns=[
                Turn(
                    observation=f"{x} observation",
                    action=x,
                    reply=f"<think>{x}</think><action>{x}</action>",
                    prompt=f"## Skills\n### evil-skill\n{x}\n{x}",
                    parse="tagged",
                    skill_ids=[sid] if i % 2 == 0 else [],
                )
                for x in XSS
            ],
            won=i == 0,
            reward=float(i == 0),
        )
        for i in range(2)
    ]
    write_step_episodes(run, 1, episodes, skill_texts={sid: view.text("evil-skill")})
    return run


@pytest.fixture(scope="session")
def eval_run(evolve_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reskill_gym.evaluation.episode_log import EvalEpisode
    from reskill_gym.step_episodes import StepEpisodes

    out = tmp_path_factory.mktemp("eval") / "eval-run"
    out.mkdir()
    log = StepEpisodes(evolve_run)
    lines = []
    for k, entry in enumerate(log.entries()[:12]):
        ep = log.read(entry)
        condition = "no-skills" if k % 2 else "skills/alfworld@HEAD"
        key = f"{condition}|train|{ep.task_id}|{k // 2}"
        rec = EvalEpisode(
            **{**ep.model_dump(), "episode_id": key, "group_id": f"train|{ep.task_id}|{k // 2}"},
            key=key,
            condition=condition,
            agent="python:scripted_alfworld_agent:act",
            mode="generate",
        )
        lines.append(rec.model_dump_json())
    (out / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    (out / "config.json").write_text(json.dumps({"env": "alfworld", "temperature": 1.0}))
    return out
