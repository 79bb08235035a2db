"""Train -> evaluate in one command each: ``reskill eval --agent run:<run> --skills <run>``.

The demo config (LoRA on SmolLM2) trains one real ALFWorld step with a tiny model the test
writes in place of SmolLM2 (no hub access; the same code path, seconds instead of minutes);
the run's policy and library are then evaluated, scored with ``--metric expert`` and handed to
``reskill evolve`` by shorthand. A run without a policy, a LoRA adapter whose base is gone
and a policy without a chat template are one-line errors that say what to do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("alfworld")
pytest.importorskip("torch")

from reskill_gym.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(demo_trained_run) -> Path:
    return demo_trained_run


def _eval(*args: str) -> object:
    return CliRunner().invoke(
        app,
        [
            "eval",
            "--env",
            "alfworld",
            "--split",
            "train",
            "--tasks",
            "1",
            "--difficulty",
            "tiny",
            "--max-turns",
            "2",
            *args,
        ],
    )


def test_eval_the_trained_policy_with_the_library_it_evolved(trained_run: Path, tmp_path) -> None:
    out = tmp_path / "eval"
    result = _eval("--agent", f"run:{trained_run}", "--skills", str(trained_run), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file()
    rows = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    conditions = {r["condition"] for r in rows if "condition" in r}
    assert any(c.startswith("skills@") for c in conditions), conditions  # <run>/skills
    meta = (out / "report.md").read_text()
    assert f"local:{trained_run}" in meta or str(trained_run) in meta

    # the same policy named as local:<run>, the library as run:<run>@HEAD
    again = tmp_path / "again"
    result = _eval(
        "--agent",
        f"local:{trained_run}",
        "--skills",
        f"run:{trained_run}@HEAD",
        "--out",
        str(again),
    )
    assert result.exit_code == 0, result.output


def test_expert_metric_and_evolve_take_the_run(trained_run: Path, tmp_path) -> None:
    from reskill_gym.evolve import EvolveRun, load_evolve_config
    from reskill_gym.skills import SkillLibrary

    out = tmp_path / "expert"
    result = _eval(
        "--agent",
        f"run:{trained_run}",
        "--skills",
        f"run:{trained_run}",
        "--metric",
        "expert",
        "--states-per-task",
        "1",
        "--perturbed",
        "0",
        "--placebo-skills",
        str(REPO / "skills" / "scienceworld"),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file()

    cfg = load_evolve_config(
        None,
        [
            f"agent.spec=run:{trained_run}",
            "env.name=alfworld",
            f"env.skills={trained_run}",
            f"run.out_dir={tmp_path}",
            "run.name=evolved",
        ],
    )
    assert cfg.agent.spec == f"local:{trained_run}" and cfg.rollout.action_mode == "score"
    evolve = EvolveRun.create(cfg)
    source = SkillLibrary.open(trained_run / "skills")
    assert SkillLibrary.open(evolve.run_dir / "skills").head == source.head  # its library


def _one_line_error(result) -> str:
    assert result.exit_code != 0
    errors = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, repr(result.output)
    return errors[0]


def test_bad_policies_are_one_line_errors(trained_run: Path, tmp_path) -> None:
    out = str(tmp_path / "out")
    # a run folder without a policy (killed before it ended)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(trained_run, unfinished)
    shutil.rmtree(unfinished / "policy")
    line = _one_line_error(_eval("--agent", f"run:{unfinished}", "--out", out))
    assert f"reskill train --resume {unfinished}" in line
    assert f"local:{unfinished}/checkpoints/step_000001/policy" in line

    # a LoRA adapter whose base model is gone
    orphan = tmp_path / "orphan"
    shutil.copytree(trained_run / "policy", orphan)
    manifest = json.loads((orphan / "reskill-policy.json").read_text())
    manifest.update(base=str(tmp_path / "deleted-model"), base_path=None)
    (orphan / "reskill-policy.json").write_text(json.dumps(manifest))
    line = _one_line_error(_eval("--agent", f"local:{orphan}", "--out", out))
    assert "base model" in line and "deleted-model" in line and "install or copy" in line

    # a policy whose tokenizer lost its chat template
    bare = tmp_path / "bare"
    shutil.copytree(trained_run / "policy", bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tok_cfg = json.loads((bare / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    line = _one_line_error(_eval("--agent", f"local:{bare}", "--out", out))
    assert "no chat template" in line and "chat_template.jinja" in line
