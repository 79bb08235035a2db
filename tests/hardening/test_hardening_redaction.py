"""Credentials never reach an event, a log line, the library history or a report."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig, CoEvolutionEvent
from reskill_gym.creator import CreatorConfig
from reskill_gym.redaction import (
    REDACTED,
    RedactingFilter,
    install_log_redaction,
    redact,
    redact_obj,
)
from reskill_gym.skills import SkillLibrary
from reskill_gym.testing.loopback import LoopbackError, LoopbackLLMServer
from reskill_gym.versioning import TesterConfig

REPO = Path(__file__).resolve().parents[2]
OPENAI = "sk-proj-" + "A1b2C3d4" * 6
ANTHROPIC = "sk-ant-api03-" + "Zx9_Yw8-" * 8
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

CASES = [
    (f"authorization=Bearer {OPENAI}", [OPENAI]),
    (f"Authorization: Bearer opaque.jwt.token-{'q' * 30}", ["opaque.jwt"]),
    (f"{{'x-api-key': '{ANTHROPIC}', 'model': 'claude'}}", [ANTHROPIC]),
    ('{"X-Api-Key": "plainkey1234567", "n": 1}', ["plainkey1234567"]),
    (f"aws_access_key_id={AWS_ID} aws_secret_access_key={AWS_SECRET}", [AWS_ID, AWS_SECRET]),
    (f"AWS_SESSION_TOKEN: {AWS_SECRET}", [AWS_SECRET]),
    ("https://bob:hunter2pw@proxy.local/v1?api_key=abcdef123456&x=1", ["hunter2pw", "abcdef1234"]),
    (f"proxy said: Basic dXNlcjpwYXNzd29yZA== and api_key: {OPENAI}", ["dXNlcjpw", OPENAI]),
    ("hf_" + "a" * 34 + " ghp_" + "b" * 36, ["hf_aaaa", "ghp_bbbb"]),
]


@pytest.mark.parametrize("text, secrets", CASES)
def test_credentials_are_cut(text: str, secrets: list[str]) -> None:
    out = redact(text)
    assert REDACTED in out
    for secret in secrets:
        assert secret not in out


@pytest.mark.parametrize(
    "text",
    ["open drawer 1", "max_tokens=256 input_tokens: 12", "sk-learn is a library", "task: heat egg"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_secret_environment_values_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123")
    assert redact("wandb login 0123456789abcdef0123 ok") == f"wandb login {REDACTED} ok"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


SHAPED = [OPENAI, ANTHROPIC, AWS_ID, "hf_" + "a" * 34, "ghp_" + "b" * 36]


@settings(max_examples=60, deadline=1000)
@given(
    value=json_values,
    secret=st.sampled_from(SHAPED),
    token=st.text("abcXYZ0189-._~+/", min_size=8, max_size=40),
)
def test_redacted_json_stays_json_and_holds_no_secret(value, secret: str, token: str) -> None:
    doc = {"data": value, "message": f"upstream: authorization=Bearer {token}", "raw": secret}
    for text in (json.dumps(doc), json.dumps(doc, separators=(",", ":"))):
        out = redact(text)
        assert secret not in out and f"Bearer {token}" not in out
        assert json.loads(out)["message"] == f"upstream: authorization=Bearer {REDACTED}"
    assert secret not in json.dumps(redact_obj(doc))


def test_events_and_history_are_redacted(kit, tmp_path: Path) -> None:
    e = CoEvolutionEvent(
        kind="creator_failed",
        step=3,
        message=f"401: echo authorization=Bearer {OPENAI}",
        data={"events": [{"message": f"x-api-key: {ANTHROPIC}"}], "api_key": "anything-at-all"},
    )
    dumped = e.model_dump_json()
    assert OPENAI not in dumped and ANTHROPIC not in dumped and "anything-at-all" not in dumped
    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    lib.append_event({"error": f"Bearer {OPENAI}"}, reason=f"key {ANTHROPIC}")
    lib.commit(
        [kit.skill("a")], reason="seed", extra={"creator": {"raw": AWS_SECRET, "id": AWS_ID}}
    )
    history = (lib.store / "history.jsonl").read_text()
    for secret in (OPENAI, ANTHROPIC, AWS_ID):
        assert secret not in history
    assert [h.kind for h in lib.history()] == ["init", "event", "commit"]  # still valid JSON


def test_log_lines_are_redacted() -> None:
    stream = io.StringIO()
    log = logging.getLogger("reskill-test-redaction")
    log.propagate = False
    handler = logging.StreamHandler(stream)
    log.addHandler(handler)
    try:
        install_log_redaction(log)
        install_log_redaction(log)  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        log.warning("request failed: %s", f"authorization=Bearer {OPENAI}")
        try:
            raise RuntimeError(f"boom x-api-key={ANTHROPIC}")
        except RuntimeError:
            log.exception("creator pass failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert OPENAI not in text and ANTHROPIC not in text and "boom x-api-key=" in text


def test_cli_installs_the_log_filter(kit) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        assert kit.cli("version").exit_code == 0
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    finally:
        root.removeHandler(handler)


def test_training_report_is_redacted(kit, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0, "episode/reward_mean": 1.0}\n')
    event = {"kind": "creator_failed", "step": 0, "message": f"Bearer {OPENAI}", "data": {}}
    (run / "events.jsonl").write_text(json.dumps(event) + "\n")
    assert kit.cli("report", run).exit_code == 0
    text = (run / "report.md").read_text()
    assert "creator_failed" in text and OPENAI not in text


def test_echoed_key_from_a_failing_creator_endpoint_stays_out_of_events_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the endpoint echoes the request's Authorization header in its error."""
    from reskill_gym.envs.search import SearchEnv
    from reskill_gym.rollout import record_episode
    from reskill_gym.runfolder import append_jsonl
    from reskill_gym.testing.agents import SearchMistakeAgent
    from reskill_gym.wrapper import SkillWrapper

    monkeypatch.setenv("HARDENING_PROXY_KEY", OPENAI)  # not a known variable: shape only

    def echo_headers(req):
        auth = req.headers.get("authorization") or req.headers.get("Authorization")
        return LoopbackError(status=400, message=f"bad request; got headers authorization={auth}")

    root = tmp_path / "lib"
    shutil.copytree(REPO / "skills" / "search", root)
    lib = SkillLibrary.open(root, create=True)
    env = SearchEnv(cache_dir=str(tmp_path / "cache"))
    with LoopbackLLMServer(echo_headers) as srv:
        cfg = CoEvolutionConfig(
            async_creator=False,
            min_reservoir_size=8,
            checkpoint_dir=str(tmp_path / "ckpt"),
            tester=TesterConfig(min_steps=2, min_episodes=8),
            creator=CreatorConfig(
                backend=srv.spec(),
                min_reservoir_size=8,
                n_groups=2,
                llm_options={
                    "max_retries": 0,
                    "timeout_s": 5,
                    "api_key_env": "HARDENING_PROXY_KEY",
                },
                artifacts_dir=tmp_path / "creator",
            ),
        )
        co = CoEvolution.create(lib, cfg)
        events = []
        tasks = env.task_ids("train")
        wrapper = SkillWrapper(env, co.view())
        for step in range(3):
            groups = [(f"s{step}g{g}", tasks[g], 4) for g in range(2)]
            plan = co.plan_step(groups)
            eps = [
                record_episode(
                    wrapper,
                    SearchMistakeAgent(),
                    task_id=t,
                    seed=10 * step + i,
                    group_id=gid,
                    step=step,
                )
                for g, (gid, t, _) in enumerate(groups)
                for i, _v in enumerate(plan.versions[g])
            ]
            co.record(eps)
            events += co.end_step(step)
        co.close()
        seen = [r for r in srv.requests if "authorization" in {k.lower() for k in r.headers}]
    env.close()
    assert seen, "the creator called the endpoint with its key"
    failed = [e for e in events if e.kind == "creator_failed"]
    assert failed, [e.kind for e in events]
    append_jsonl(tmp_path / "events.jsonl", [e.model_dump(mode="json") for e in events])
    written = (tmp_path / "events.jsonl").read_text()
    assert "authorization=" in written.lower() and REDACTED in written
    assert OPENAI not in written
    assert OPENAI not in (lib.store / "history.jsonl").read_text()
    artifacts = [p for p in (tmp_path / "creator").rglob("*") if p.is_file()]
    assert artifacts and any("authorization=" in p.read_text().lower() for p in artifacts)
    assert not [p for p in artifacts if OPENAI in p.read_text()]


# ----- configured secrets of any length; config.yaml keeps references, never values ------------
def test_configured_secrets_are_cut_whatever_their_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reskill_gym.creator.artifacts import PassArtifacts
    from reskill_gym.redaction import register_config_secrets

    monkeypatch.setenv("RESKILL_API_KEY", "q7Zk")  # 4 characters, no known shape
    assert redact("proxy: key q7Zk refused") == f"proxy: key {REDACTED} refused"
    assert redact("q7Zkx and xq7Zk stay") == "q7Zkx and xq7Zk stay"  # whole tokens only
    assert register_config_secrets({"creator": {"llm_options": {"api_key": "Pw3", "n": 1}}}) == 1
    assert redact('{"echo": "Pw3"}') == f'{{"echo": "{REDACTED}"}}'

    path = PassArtifacts(tmp_path, 1).text("x.txt", "upstream said: Pw3 is not a valid key")
    assert path is not None and path.read_text() == f"upstream said: {REDACTED} is not a valid key"


def test_run_config_yaml_stores_env_references_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An api_key given as ${oc.env:...} stays a reference; one given as key=value is
    stored as [REDACTED] and a resume asks for it again."""
    from reskill_gym.evolve import load_evolve_config
    from reskill_gym.runfolder import ConfigError, create_run_folder

    monkeypatch.setenv("HARDENING_CREATOR_KEY", "envkey-0123456789")
    dry_run = REPO / "configs" / "evolve" / "alfworld_python.yaml"
    overrides = [
        f"run.out_dir={tmp_path}",
        "run.name=r",
        "env.skills=none",
        "coevolution.creator.llm_options.api_key=${oc.env:HARDENING_CREATOR_KEY}",
        "agent.llm.api_key=lit9",  # short and shapeless
    ]
    config, run_dir = create_run_folder(load_evolve_config(dry_run, overrides), command="evolve")
    assert config.coevolution.creator.llm_options["api_key"] == "envkey-0123456789"
    text = (run_dir / "config.yaml").read_text()
    assert "${oc.env:HARDENING_CREATOR_KEY}" in text and "envkey-0123456789" not in text
    assert "lit9" not in text and f"api_key: '{REDACTED}'" in text
    with pytest.raises(ConfigError, match=r"agent\.llm\.api_key is \[REDACTED\].*give it again"):
        load_evolve_config(run_dir / "config.yaml")
    again = load_evolve_config(run_dir / "config.yaml", ["agent.llm.api_key=lit9"])
    assert again.agent.llm["api_key"] == "lit9"
    assert again.coevolution.creator.llm_options["api_key"] == "envkey-0123456789"
    assert "envkey" not in json.dumps(again.to_container())  # a tracker's copy too
