"""``reskill export RUN DIR``: a trained run as a folder ready for ``huggingface-cli upload``.

Exports ``export_run``, ``model_card`` and ``export_command``.

The folder is a model repository: the policy's files at the top (a full ``save_pretrained``
model or a PEFT adapter, tokenizer and chat template, ``reskill-policy.json``; see
:mod:`reskill_gym.policy_folder`), and beside them what a reader of the policy needs::

    README.md            the model card: front matter (library, base model, tags), how to
                         load it, the run's config, the library's skills, measured results
    skills/              the final library as plain SKILL.md folders (+ its version history
                         unless history=False)
    plots/, training-report.md   the run's figures and report (``reskill report``)
    config.yaml          the run's resolved config

Nothing touches the network. A run folder is untrusted input: the library is read through
``SkillLibrary`` (validated), its store copied file by file with links and special files
refused, and every string from it that reaches the card is clipped and made one-line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text, fsync_dir

__all__ = ["export_run", "model_card", "export_command"]

log = logging.getLogger(__name__)

_CELL_CHARS = 300
_TAGS = ["reskill-gym", "reinforcement-learning", "grpo", "agent", "skills"]


class ExportError(ValueError):
    """A run folder that cannot be exported; the message says why and what to do."""


def _cell(text: Any, limit: int = _CELL_CHARS) -> str:
    """Untrusted text as one Markdown table cell: one line, clipped, no table breaks."""
    from reskill_gym.safe_text import clip_text, terminal_text

    one = terminal_text(str(text), one_line=True).replace("|", "\\|").replace("`", "'")
    return clip_text(" ".join(one.split()), limit)


def _metric(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return float(sum(vals) / len(vals)) if vals else None


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def model_card(run_dir: str | os.PathLike[str]) -> str:
    """The ``README.md`` of an export: front matter, loading, config, skills, results."""
    from reskill_gym.policy_folder import POLICY_DIR, read_manifest
    from reskill_gym.report import load_run

    run = Path(run_dir)
    rec = load_run(run)
    manifest = read_manifest(run / POLICY_DIR)
    trainer = _section(rec.config, "trainer")
    env = _section(rec.config, "env")
    base = manifest.base or "?"
    portable_base = base if not Path(base).expanduser().is_absolute() else Path(base).name
    lora = manifest.kind == "lora"
    front = [
        "---",
        f"library_name: {'peft' if lora else 'transformers'}",
        f"base_model: {json.dumps(portable_base)}",
        "pipeline_tag: text-generation",
        "tags:",
        *[f"- {t}" for t in _TAGS],
        "---",
    ]
    n = len(rec.metrics)
    first, last = rec.metrics[: max(1, n // 4)], rec.metrics[-max(1, n // 4) :]
    load = (
        [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"base = AutoModelForCausalLM.from_pretrained({json.dumps(portable_base)})",
            'model = PeftModel.from_pretrained(base, "path/to/this/folder").merge_and_unload()',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        ]
        if lora
        else [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        ]
    )
    skills = [f"| `{_cell(name, 64)}` | {_cell(desc)} |" for name, desc in rec.skills]
    lines = [
        *front,
        "",
        f"# {_cell(run.name, 120)}",
        "",
        f"A policy trained with [reskill-gym](https://pypi.org/project/reskill-gym/): GRPO on "
        f"the `{_cell(env.get('name', '?'), 40)}` text environment while a library of short, "
        "conditional skills co-evolved with it (a skill creator proposed revisions, each tested "
        "against the current library inside GRPO groups). The policy is "
        + (
            f"a LoRA adapter (rank {_cell(trainer.get('lora_r'), 8)}) over `{_cell(portable_base, 120)}`."
            if lora
            else f"the full model, fine-tuned from `{_cell(portable_base, 120)}`."
        ),
        "",
        "## Use",
        "",
        "```python",
        *load,
        "```",
        "",
        "The agent was trained with the skill library in `skills/` injected into its "
        "observations; evaluate it the same way with "
        "`reskill eval --agent local:<this folder> --skills <this folder>/skills`.",
        "",
        "## Training",
        "",
        f"- base model: `{_cell(base, 160)}`; {manifest.steps_done} steps (`{manifest.producer}`)",
        f"- env: `{_cell(env.get('name', '?'), 40)}`, split `{_cell(env.get('split', '?'), 40)}`",
        f"- GRPO: group size {_cell(trainer.get('group_size', '?'), 8)}, "
        f"{_cell(trainer.get('groups_per_step', '?'), 8)} groups per step, learning rate "
        f"{_cell(trainer.get('learning_rate', '?'), 16)}, KL coefficient "
        f"{_cell(trainer.get('kl_coef', '?'), 16)}",
        "- the whole resolved config: `config.yaml`",
        "",
        "## Results (measured during training)",
        "",
        "| | first quarter of the steps | last quarter |",
        "|---|---|---|",
        f"| reward per episode | {_fmt(_metric(first, 'episode/reward_mean'))} | "
        f"{_fmt(_metric(last, 'episode/reward_mean'))} |",
        f"| success rate | {_fmt(_metric(first, 'episode/success_rate'))} | "
        f"{_fmt(_metric(last, 'episode/success_rate'))} |",
        "",
        f"Version tests: {sum(v.test_started is not None for v in rec.lives)} started, "
        f"{len(rec.decided)} decided ({sum(v.outcome == 'accepted' for v in rec.lives)} "
        f"accepted). Training rollouts sample the policy at the training temperature; "
        "they are not a held-out evaluation.",
        "",
        "![reward and success per arm](plots/reward_per_arm.png)",
        "",
        "![skill lifecycle](plots/skill_lifecycle.png)",
        "",
        f"## Skill library (`skills/`, version `{_cell(rec.head, 64)}`)",
        "",
        "| skill | description |",
        "|---|---|",
        *(skills or ["| (none) | |"]),
        "",
    ]
    return "\n".join(lines)


def export_run(
    run_dir: str | os.PathLike[str], dest: str | os.PathLike[str], *, history: bool = True
) -> Path:
    """Write the export folder ``dest`` (new or empty) for run ``run_dir``; returns ``dest``.

    Written into a temporary sibling and renamed into place, so ``dest`` is whole or absent.
    """
    from reskill_gym.policy_folder import POLICY_DIR, resolve_policy_path
    from reskill_gym.report import write_run_report
    from reskill_gym.skills import SkillLibrary
    from reskill_gym.skills.source import is_library

    run, dest = Path(run_dir), Path(dest)
    if not (run / "config.yaml").is_file():
        raise ExportError(f"{run}: not a run folder (no config.yaml)")
    policy = resolve_policy_path(run)  # a run without a policy: the error says what to do
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest}: exists and is not empty; export into a new folder")
    if not is_library(run / "skills"):
        raise ExportError(f"{run}/skills: no skill library with history")
    if not (run / "plots").is_dir():
        write_run_report(run)  # the figures, as `reskill report` writes them
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        # the policy's files; a link or FIFO in it is left out, as publish_policy does
        for item in safe_files.list_folder(policy, links="skip", special="skip"):
            if item.kind == "file":
                safe_files.copy_file(item.path, tmp / item.name)
        library = SkillLibrary.open(run / "skills")
        library.export(tmp / "skills", history=history)
        if (run / "plots").is_dir():
            safe_files.copy_tree(run / "plots", tmp / "plots")  # a linked figure: error
        if (run / "report.md").is_file():
            safe_files.copy_file(run / "report.md", tmp / "training-report.md")
        safe_files.copy_file(run / "config.yaml", tmp / "config.yaml")
        atomic_write_text(tmp / "README.md", model_card(run))  # replaces PEFT's own card
        tmp.chmod(0o755)
        fsync_dir(tmp)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s (%s) to %s", run, POLICY_DIR, dest)
    return dest


def export_command(
    run_dir: Path = typer.Argument(..., help="A run folder (runs/<name>) with a policy."),
    dest: Path = typer.Argument(..., help="New (or empty) folder to write."),
    no_history: bool = typer.Option(
        False, "--no-history", help="The final library's SKILL.md folders without .reskill."
    ),
) -> None:
    """Export a trained run: policy (HF format), final library, figures and a model card."""
    from reskill_gym.policy_folder import PolicyFolderError
    from reskill_gym.safe_text import error_line
    from reskill_gym.skills.errors import LibraryError, SkillError

    try:
        out = export_run(run_dir, dest, history=not no_history)
    except (ExportError, PolicyFolderError, LibraryError, SkillError, OSError) as exc:
        typer.echo(f"error: {error_line(exc)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"exported: {out} (upload with: huggingface-cli upload <repo> {out})")
