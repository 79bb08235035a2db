"""``reskill export RUN DIR`` on a real trained run (the demo config, tiny model, LoRA)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reskill_gym.cli import app


@pytest.fixture()
def no_network(monkeypatch):
    """Any connection attempt fails the test: an export needs nothing from the network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"export opened a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_export_is_a_model_repository_with_card_library_and_figures(
    demo_trained_run: Path, tmp_path: Path, no_network
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from reskill_gym.policy_folder import read_manifest
    from reskill_gym.skills import SkillLibrary

    run = tmp_path / "run"
    shutil.copytree(demo_trained_run, run)  # the export writes the figures into the run
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(run), str(out)])
    assert result.exit_code == 0, result.output
    assert f"huggingface-cli upload <repo> {out}" in result.output

    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert {"README.md", "config.yaml", "skills", "plots", "reskill-policy.json"} <= names
    manifest = read_manifest(out)
    base = AutoModelForCausalLM.from_pretrained(manifest.base)
    PeftModel.from_pretrained(base, out)  # loads from the export as from the run

    lib = SkillLibrary.open(out / "skills")
    src = SkillLibrary.open(run / "skills")
    assert lib.head == src.head and len(lib.history()) == len(src.history())
    assert (out / "plots" / "reward_per_arm.png").stat().st_size > 1000

    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: peft" in front and "base_model:" in front
    assert str(tmp_path) not in front  # a local base path is named, not leaked
    for name, _ in [(s.name, s.description) for s in lib.view().skills][:3]:
        assert f"`{name}`" in card
    assert "reward per episode" in card and "PeftModel.from_pretrained" in card

    # without the history: plain SKILL.md folders only
    plain = tmp_path / "plain"
    assert CliRunner().invoke(app, ["export", str(run), str(plain), "--no-history"]).exit_code == 0
    assert not (plain / "skills" / ".reskill").exists()
    assert sorted(p.name for p in (plain / "skills").iterdir()) == sorted(lib.view().names)


def test_export_refuses_what_it_cannot_export(demo_trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(demo_trained_run, run)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    result = CliRunner().invoke(app, ["export", str(run), str(busy)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert (busy / "x").read_text() == "x"

    shutil.rmtree(run / "policy")
    result = CliRunner().invoke(app, ["export", str(run), str(tmp_path / "out")])
    assert result.exit_code == 2 and f"reskill train --resume {run}" in result.output
    assert not (tmp_path / "out").exists()

    linked = tmp_path / "linked"
    shutil.copytree(demo_trained_run, linked)
    store = linked / "skills" / ".reskill"
    (store / "evil").symlink_to("/etc/passwd")
    result = CliRunner().invoke(app, ["export", str(linked), str(tmp_path / "out2")])
    assert result.exit_code == 2 and "not a regular file" in result.output
    assert not (tmp_path / "out2").exists()
    assert json.loads((linked / "policy" / "reskill-policy.json").read_text())["kind"] == "lora"
