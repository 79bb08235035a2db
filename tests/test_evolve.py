"""`reskill evolve`: frozen-policy co-evolution with an eval agent, on the real ALFWorld engine.

The shipped dry-run config (configs/evolve/alfworld_python.yaml: a scripted Python agent, the
offline rules creator, ALFWorld `tiny`) runs through the CLI; the run folder, metrics,
events, checkpoints and report are checked, a crash after a step's rows were written is
simulated, and `--resume` continues to a decided version test. Config errors and agent
failures are checked on their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reskill_gym.cli import app
from reskill_gym.evolve import EvolveAbortedError, EvolveRun, load_evolve_config
from reskill_gym.runfolder import ConfigError, latest_checkpoint
from reskill_gym.runloop import StepFailedError
from reskill_gym.step_episodes import StepEpisodes

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "evolve"
DRY_RUN = CONFIGS / "alfworld_python.yaml"


@pytest.fixture
def scripted_agent(monkeypatch):
    """configs/evolve on sys.path, as `PYTHONPATH=configs/evolve` does for the CLI."""
    monkeypatch.syspath_prepend(str(CONFIGS))
    sys.modules.pop("scripted_alfworld_agent", None)
    yield
    sys.modules.pop("scripted_alfworld_agent", None)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----- config -------------------------------------------------------------------------------
def test_shipped_configs_validate() -> None:
    for name in ("alfworld_python", "alfworld", "scienceworld_transfer", "textworld_python"):
        cfg = load_evolve_config(CONFIGS / f"{name}.yaml")
        assert cfg.rollout.action_mode == "generate" and cfg.agent.group_size >= 2
        assert cfg.coevolution.seed == cfg.run.seed == cfg.coevolution.creator.seed
    transfer = load_evolve_config(CONFIGS / "scienceworld_transfer.yaml")
    assert transfer.env.name == "scienceworld" and transfer.env.skills.endswith("/skills")


def test_published_variants_carry_the_published_values() -> None:
    """configs/evolve/*_published.yaml: every published choice (values cited from
    amazon-science/reskill in the files); a drift from the published value fails here."""
    from reskill_gym.creator import CreatorSampling
    from reskill_gym.llm import parse_spec
    from reskill_gym.rollout.published import PUBLISHED_PROMPT_CHAR_RATIO
    from reskill_gym.versioning.config import TesterConfig

    # env: (turns, reply tokens, max_prompt_length of the published run)
    shapes = {"alfworld": (50, 512, 4096), "scienceworld": (30, 1024, 6000)}
    for name in ("alfworld_published", "scienceworld_transfer_published"):
        cfg = load_evolve_config(CONFIGS / f"{name}.yaml")
        env = cfg.env.name
        turns, reply, prompt_len = shapes[env]
        assert cfg.run.skills_mode == "coevolve"
        assert cfg.rollout.format == "published" and cfg.rollout.layout == "per_turn"
        assert cfg.rollout.history_turns == turns == cfg.env.kwargs["max_turns"]
        assert cfg.rollout.prompt_chars == int(prompt_len * PUBLISHED_PROMPT_CHAR_RATIO[env])
        assert cfg.rollout.include_skills and cfg.rollout.record_prompts
        assert (cfg.agent.group_size, cfg.agent.groups_per_step) == (8, 16)
        assert cfg.agent.max_tokens == reply and cfg.agent.temperature == 1.0
        assert cfg.env.template == "published" and cfg.env.skill_budget_chars is None
        assert cfg.env.max_active_skills == 8
        co = cfg.coevolution
        assert co.async_creator is False and co.test_outcome == "won"
        assert (co.reservoir_size, co.reservoir_dedup_by) == (200, "task_arm_outcome")
        assert co.tester == TesterConfig.published()
        cr = co.creator
        assert cr.pipeline == "published" and cr.sampling == CreatorSampling.published()
        assert cr.assertion_text == "published" and cr.min_reservoir_size == 100
        assert (cr.n_groups, cr.min_success_ratio, cr.min_trigger_rate) == (30, 0.3, 0.5)
        assert (cr.max_skill_content_chars, cr.max_proposal_retries) == (500, 3)
        assert (cr.analysis_workers, cr.max_library_skills, cr.n_version_history) == (16, 8, 5)
        llm = parse_spec(cr.backend, **cr.llm_options)
        assert (llm.backend, llm.model, llm.aws_region) == (
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-west-2",
        )
    alf = load_evolve_config(CONFIGS / "alfworld_published.yaml")
    assert alf.env.skills == "none", "published: an empty starting library"
    sw = load_evolve_config(CONFIGS / "scienceworld_transfer_published.yaml")
    assert sw.env.skills == "runs/alfworld-evolve-published/skills"
    assert sw.env.kwargs["reward"] == "published" and sw.env.kwargs["action_hint"] is True
    assert sw.env.kwargs["simplifications"] == "easy" and sw.env.kwargs["eval_variations"] == "dev"


def test_config_errors_name_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown key 'agent.worker' \(did you mean 'agent.workers'"
    ):
        load_evolve_config(DRY_RUN, ["agent.worker=4"])
    with pytest.raises(ConfigError, match="unknown key 'trainer'"):
        load_evolve_config(DRY_RUN, ["trainer.learning_rate=1e-6"])  # evolve has no trainer
    with pytest.raises(ConfigError, match="agent.spec is required"):
        load_evolve_config(None, ["run.steps=2"])
    with pytest.raises(ConfigError, match="agent.spec.*expected python:<module>:<function>"):
        load_evolve_config(None, ["agent.spec=python:nocolon"])
    with pytest.raises(ConfigError, match="score needs a local: agent"):
        load_evolve_config(DRY_RUN, ["rollout.action_mode=score"])
    with pytest.raises(ConfigError, match="agent.group_size"):
        load_evolve_config(DRY_RUN, ["agent.group_size=1"])
    # local: agents score admissible commands unless told otherwise, like reskill eval
    local = load_evolve_config(None, ["agent.spec=local:default"])
    assert local.rollout.action_mode == "score"
    result = CliRunner().invoke(app, ["evolve", "--config", str(DRY_RUN), "agent.tmperature=1"])
    assert result.exit_code == 2 and "did you mean 'agent.temperature'" in result.output


def test_import_stays_light() -> None:
    code = (
        "import sys, reskill_gym.evolve, reskill_gym.cli; "
        "print([m for m in ('torch', 'transformers', 'verl', 'ray', 'vllm') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----- the whole loop through the CLI -----------------------------------------------------------
def test_evolve_cli_runs_reports_and_resumes(tmp_path: Path, scripted_agent) -> None:
    pytest.importorskip("alfworld")
    runner = CliRunner()
    run = tmp_path / "evo"
    args = ["evolve", "--config", str(DRY_RUN), f"run.out_dir={tmp_path}", "run.name=evo"]
    first = runner.invoke(app, [*args, "run.steps=2", "--no-progress"])
    assert first.exit_code == 0, first.output
    assert f"report: {run / 'report.md'}" in first.output

    # the trainer's run folder
    assert (run / "config.yaml").is_file() and (run / "skills" / ".reskill" / "HEAD").is_file()
    cfg = load_evolve_config(run / "config.yaml")
    assert cfg.run.name == "evo" and cfg.agent.spec == "python:scripted_alfworld_agent:act"
    rows = _rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    for key in (
        "episode/reward_mean",
        "episode/success_rate",
        "episode/valid_action_ratio",
        "charts/groups_with_signal",
        "versions/testing",
        "versions/p_candidate",
        "creator/reservoir",
        "skills/library_size",
        "agent/input_tokens",
        "time/step_s",
        "run/wall_s",
    ):
        assert key in rows[0], key
    assert all(r["episode/count"] == 8 and r["episode/dropped"] == 0 for r in rows)
    assert rows[0]["episode/parse/tagged"] == 1.0  # every reply went through the tag parser
    # the rules creator proposed after step 0 and the candidate is tested inside the groups
    events = _rows(run / "events.jsonl")
    kinds = [(e["step"], e["kind"]) for e in events]
    assert (0, "candidate_committed") in kinds and (0, "test_started") in kinds, kinds
    assert rows[1]["versions/testing"] == 1.0 and rows[1]["versions/candidate"]
    assert rows[1]["arms/incumbent/episodes"] + rows[1]["arms/candidate/episodes"] == 8
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.name == "step_000002"
    assert {p.name for p in ckpt.iterdir()} == {"run.json", "coevolution.json", "evolve.json"}
    live = json.loads((ckpt / "coevolution.json").read_text())["tester"]["active"]
    assert live is not None and len(live["versions"]) == 2
    report = (run / "report.md").read_text()
    assert "1 started" in report and "| 1 |" in report
    # every episode is kept (reskill view reads them), and the creator pass's artifacts
    log = StepEpisodes(run)
    assert log.steps() == [0, 1] and len(log.entries()) == 16
    assert {e.arm for e in log.entries() if e.step == 1} == {"incumbent", "candidate"}
    assert (run / "creator" / "step_000000" / "09_result.json").is_file()
    assert (run / "plots" / "reward_per_arm.png").stat().st_size > 5000

    # a crash after step 2's rows were written but before its checkpoint: resume replays it
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 2, "episode/reward_mean": -1.0}) + "\n")
    for suffix in ("jsonl.gz", "index.json"):  # and its episodes (a stale copy of step 1's)
        stale = (run / "episodes" / f"step_000001.{suffix}").read_bytes()
        (run / "episodes" / f"step_000002.{suffix}").write_bytes(stale)
    second = runner.invoke(app, ["evolve", "--resume", str(run), "run.steps=4", "--no-progress"])
    assert second.exit_code == 0, second.output
    rows = _rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert all(r["episode/reward_mean"] >= 0 for r in rows)
    assert load_evolve_config(run / "config.yaml").run.steps == 4  # the override is recorded
    log = StepEpisodes(run)
    assert log.steps() == [0, 1, 2, 3] and len(log.entries()) == 32  # step 2 replayed once
    assert all(e.episode_id.startswith(f"s{e.step}-") for e in log.entries())
    events = _rows(run / "events.jsonl")
    decided = [e for e in events if e["kind"] == "test_decided"]
    assert len(decided) == 1 and decided[0]["data"]["candidates"] == [live["versions"][1]]
    assert latest_checkpoint(run).name == "step_000004"
    assert "1 decided" in (run / "report.md").read_text()
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0


# ----- failures ---------------------------------------------------------------------------------
def _tiny_run(tmp_path: Path, name: str, agent) -> EvolveRun:
    cfg = load_evolve_config(
        DRY_RUN,
        [
            f"run.out_dir={tmp_path}",
            f"run.name={name}",
            "run.steps=1",
            "run.progress=false",
            "run.report=false",
            "agent.spec=python:unused:act",
            "agent.group_size=2",
            "agent.groups_per_step=1",
            "agent.turn_retries=0",
            "env.kwargs.max_turns=2",
        ],
    )
    return EvolveRun.create(cfg, agent=agent)


def test_agent_bug_drops_episodes_and_bad_credentials_abort(tmp_path: Path) -> None:
    pytest.importorskip("alfworld")
    from reskill_gym.evaluation.agents import CallableAgent
    from reskill_gym.llm import LLMAuthError

    broken = _tiny_run(tmp_path, "broken", CallableAgent(lambda m, i: None, name="none"))
    # every rollout of the step failed: the run stops, the step is logged, not checkpointed
    with pytest.raises(StepFailedError, match="step 0: all 2 rollouts failed"):
        broken.run()
    assert not (tmp_path / "broken" / "checkpoints" / "LATEST").exists()
    (row,) = _rows(tmp_path / "broken" / "metrics.jsonl")
    assert row["episode/count"] == 0 and row["episode/dropped"] == 2
    dropped = [e for e in _rows(tmp_path / "broken" / "events.jsonl")]
    assert [e["kind"] for e in dropped] == ["episode_dropped"] * 2
    assert "returned NoneType, expected str" in dropped[0]["message"]

    def rejected(messages, info):
        raise LLMAuthError("401: invalid x-api-key")

    denied = _tiny_run(tmp_path, "denied", CallableAgent(rejected, name="denied"))
    with pytest.raises(EvolveAbortedError, match="invalid x-api-key"):
        denied.run()
    assert latest_checkpoint(tmp_path / "denied") is None  # nothing recorded for that step
    assert not (tmp_path / "denied" / "metrics.jsonl").exists()


def test_openai_agent_through_a_real_server(tmp_path: Path) -> None:
    """An `openai:` agent (the real SDK) against the loopback server: replies parsed by the
    turn contract, token usage in the metrics, one request per turn."""
    pytest.importorskip("alfworld")
    from reskill_gym.testing.loopback import LoopbackLLMServer, LoopbackRequest

    reply = "<think>Look first.</think> <action>look</action>"

    def respond(req: LoopbackRequest) -> str:
        assert "<action>" in req.messages[0]["content"]  # the system prompt asks for tags
        return reply

    with LoopbackLLMServer(respond) as srv:
        cfg = load_evolve_config(
            DRY_RUN,
            [
                f"run.out_dir={tmp_path}",
                "run.name=api",
                "run.steps=1",
                "run.progress=false",
                "run.report=false",
                f"agent.spec=openai:{srv.openai_base_url}#policy",
                "agent.group_size=2",
                "agent.groups_per_step=1",
                "agent.workers=2",
                "agent.llm.max_retries=0",
                "env.kwargs.max_turns=2",
            ],
        )
        EvolveRun.create(cfg).run()
        n_requests = len(srv.requests)
    (row,) = _rows(tmp_path / "api" / "metrics.jsonl")
    assert row["episode/count"] == 2 and row["episode/valid_action_ratio"] == 1.0
    assert n_requests == 4 and row["episode/turns_mean"] == 2
    # the loopback server counts whitespace-separated words as tokens
    assert row["agent/input_tokens"] > 0 and row["agent/output_tokens"] == 4 * len(reply.split())


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "benchmarks" / "configs").glob("evolve_*.yaml")),
    ids=lambda p: p.stem,
)
def test_benchmark_evolve_configs_load(path: Path) -> None:
    """The efficacy loop's configs (benchmarks/efficacy_evolve.md runs them for hours): a
    typo must fail here, not after the first rollout step."""
    cfg = load_evolve_config(path)
    assert cfg.run.name == path.stem.replace("_", "-") and cfg.env.name == "alfworld"
