"""The trained policy as a Hugging Face-format folder: layout, manifest, writing, finding it.

Exports ``PolicyManifest``, ``PolicyFolderError``, ``POLICY_DIR``, ``MANIFEST``,
``write_policy_folder``, ``publish_policy``, ``read_manifest``, ``is_run_folder``,
``resolve_policy_path`` and ``lora_base``.

A run's policy is what other tools read, not the trainer's own state: ``reskill train``
writes it at the end (``<run>/policy/``) and into every kept checkpoint
(``<run>/checkpoints/step_<N>/policy/``), and ``reskill export`` copies it. One of two kinds:

- ``full``: ``save_pretrained`` of the whole model (``config.json``, ``model.safetensors``,
  ``generation_config.json``), loadable with ``AutoModelForCausalLM.from_pretrained``, read
  by vLLM and llama.cpp's ``convert_hf_to_gguf.py``;
- ``lora``: a PEFT adapter folder (``adapter_config.json``, ``adapter_model.safetensors``),
  loadable with ``PeftModel.from_pretrained(base, folder)``; ``adapter_config.json``'s
  ``base_model_name_or_path`` and the manifest name the base model.

Both hold the tokenizer with its chat template (``tokenizer.json``, ``tokenizer_config.json``,
``chat_template.jinja``) and ``reskill-policy.json`` (:class:`PolicyManifest`: kind, base,
stop token, steps, producer). A folder is written into a temporary sibling and renamed into
place, so a reader (or a resumed run) never sees half a policy.

``local:<path>`` accepts a policy folder, a run folder (its ``policy/``) and ``run:<run>`` is
the same; :func:`resolve_policy_path` says what to do when a run has no policy yet. torch,
transformers and peft are imported only by the functions that write or load weights.

>>> PolicyManifest(kind="lora", base="smollm2", stop_token="<|im_end|>").kind
'lora'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text, fsync_dir

__all__ = [
    "PolicyManifest",
    "PolicyFolderError",
    "POLICY_DIR",
    "MANIFEST",
    "write_policy_folder",
    "publish_policy",
    "read_manifest",
    "is_run_folder",
    "resolve_policy_path",
    "lora_base",
]

log = logging.getLogger(__name__)

POLICY_DIR = "policy"
MANIFEST = "reskill-policy.json"
_ADAPTER_CONFIG = "adapter_config.json"
_MAX_MANIFEST_BYTES = 64 * 1024


class PolicyFolderError(ValueError):
    """A policy folder (or run folder) that cannot be used; the message says what to do."""


class PolicyManifest(BaseModel):
    """``reskill-policy.json``: what a policy folder holds and how it was made."""

    model_config = ConfigDict(extra="forbid")

    format: int = Field(1, description="Layout version of the policy folder.")
    kind: Literal["full", "lora"] = Field(
        description="full: the whole model (save_pretrained); lora: a PEFT adapter folder."
    )
    base: str | None = Field(
        None,
        description="The model the run started from, as its config named it (an alias such as "
        "'smollm2', a folder, a .gguf file); for lora folders, the base the adapter needs.",
    )
    base_path: str | None = Field(
        None, description="The base resolved to an absolute path when it was a path (lora)."
    )
    stop_token: str | None = Field(None, description="The token that ends a reply.")
    steps_done: int | None = Field(None, ge=0, description="Training steps in these weights.")
    producer: str = Field("reskill train", description="What wrote the folder.")


# ----- writing ---------------------------------------------------------------------------------
def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def write_policy_folder(
    dest: str | os.PathLike[str],
    model: Any,
    tokenizer: Any,
    *,
    base: str | None,
    stop_token: str | None = None,
    steps_done: int | None = None,
    producer: str = "reskill train",
) -> Path:
    """Save ``model`` (a transformers model, or a PEFT model: adapter only) and ``tokenizer``
    (with its chat template) to ``dest`` atomically; returns ``dest``.

    A ``dest`` that exists is replaced only once the new folder is complete.
    """
    dest = Path(dest)
    lora = _is_peft(model)
    if not getattr(tokenizer, "chat_template", None):
        raise PolicyFolderError(
            f"{dest}: the tokenizer has no chat template; a policy folder must carry the one "
            "it was trained with"
        )
    base_path = None
    if lora and base is not None and Path(base).expanduser().exists():
        base_path = str(Path(base).expanduser().resolve())
    manifest = PolicyManifest(
        kind="lora" if lora else "full",
        base=base,
        base_path=base_path,
        stop_token=stop_token,
        steps_done=steps_done,
        producer=producer,
    )
    with _staged_folder(dest) as tmp:
        if lora:
            # the adapter names its base as the run's config did (PEFT writes the loaded
            # model's internal path otherwise: a cache folder on the training machine)
            for cfg in model.peft_config.values():
                cfg.base_model_name_or_path = base
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / MANIFEST, manifest.model_dump_json(indent=1) + "\n")
        _readable(tmp)
    return dest


@contextlib.contextmanager
def _staged_folder(dest: Path) -> Iterator[Path]:
    """A new folder beside ``dest``, fsynced and moved over ``dest`` when the block ends;
    removed if the block raises, so ``dest`` is never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        yield tmp
        fsync_dir(tmp)
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _readable(folder: Path) -> None:
    """0755 / 0644 like any other written file (mkdtemp and some writers make 0700 / 0600):
    a policy is shared, uploaded, served by another user's process."""
    folder.chmod(0o755)
    for item in safe_files.list_folder(folder, links="skip", special="skip"):
        if item.kind == "file":
            item.path.chmod(0o644)


def _replace_dir(new: Path, dest: Path) -> None:
    """Move folder ``new`` to ``dest``; an existing ``dest`` goes only after ``new`` is there."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old."))
        os.replace(dest, old / dest.name)
    os.replace(new, dest)
    fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_policy(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy policy folder ``src`` to ``dest`` atomically: files are hard-linked where the
    file system allows (a run's final policy costs no space beside its newest checkpoint;
    policy files are never modified in place), else copied."""
    src, dest = Path(src), Path(dest)
    read_manifest(src)
    with _staged_folder(dest) as tmp:
        # regular files only: a link or FIFO in a checkpoint's policy is left out
        for item in safe_files.list_folder(src, links="skip", special="skip"):
            if item.kind != "file":
                continue
            try:
                os.link(item.path, tmp / item.name)
            except OSError:
                safe_files.copy_file(item.path, tmp / item.name)
        tmp.chmod(0o755)
    return dest


# ----- reading ---------------------------------------------------------------------------------
def read_manifest(folder: str | os.PathLike[str]) -> PolicyManifest:
    """The manifest of a policy folder (untrusted input: bounded, validated)."""
    from reskill_gym.safe_files import UnsafeFileError, read_text

    path = Path(folder) / MANIFEST
    try:
        text = read_text(path, max_bytes=_MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise PolicyFolderError(f"{folder}: not a policy folder (no {MANIFEST})") from None
    except (OSError, UnsafeFileError, UnicodeDecodeError) as exc:
        raise PolicyFolderError(f"{path}: cannot read it ({exc})") from None
    try:
        return PolicyManifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise PolicyFolderError(f"{path}: {where}: {first['msg']}") from None


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """A folder ``reskill train`` / ``reskill evolve`` wrote (``config.yaml`` + ``skills/``)."""
    p = Path(path)
    return p.is_dir() and (p / "config.yaml").is_file() and (p / "skills").is_dir()


def _newest_checkpoint_policy(run: Path) -> Path | None:
    root = run / "checkpoints"
    steps = safe_files.list_folder(
        root, links="skip", special="skip", match="step_*", missing_ok=True
    )
    found = [
        e.path / POLICY_DIR
        for e in steps
        if e.kind == "folder"
        and not (e.path / POLICY_DIR).is_symlink()
        and (e.path / POLICY_DIR / MANIFEST).is_file()
    ]
    return found[-1] if found else None


def resolve_policy_path(path: str | os.PathLike[str]) -> Path:
    """The policy folder ``path`` names: itself, or a run folder's ``policy/``.

    A run folder without one is an error that says what to do: finish the run, evaluate a
    checkpoint's policy, or (a frozen-policy or ``reskill evolve`` run) the model it ran.
    """
    p = Path(path).expanduser()
    if not is_run_folder(p):
        return p
    policy = p / POLICY_DIR
    if (policy / MANIFEST).is_file():
        return policy
    model = _run_model(p)
    if model is not None and not model[1]:
        raise PolicyFolderError(
            f"run folder {p} trained no weights (trainer.update_policy=false): its policy "
            f"is the model it started from; use --agent local:{model[0]}"
        )
    if model is None:
        agent = _evolve_agent(p)
        hint = f"use --agent {agent}" if agent else "use the agent it ran"
        raise PolicyFolderError(
            f"run folder {p} has no policy (a `reskill evolve` run trains none); {hint}"
        )
    ckpt = _newest_checkpoint_policy(p)
    later = f", or evaluate its newest checkpoint: --agent local:{ckpt}" if ckpt else ""
    raise PolicyFolderError(
        f"run folder {p} has no policy yet (it is written when the run ends): finish it with "
        f"`reskill train --resume {p}`{later}"
    )


def _run_config(run: Path) -> dict[str, Any]:
    from reskill_gym.yaml_loading import load_yaml_file

    try:
        data = load_yaml_file(run / "config.yaml")
    except Exception as exc:  # a broken config is reported as what it is, below
        raise PolicyFolderError(f"{run / 'config.yaml'}: cannot read it ({exc})") from None
    return data if isinstance(data, dict) else {}


def _run_model(run: Path) -> tuple[str, bool] | None:
    """``(trainer.model, trainer.update_policy)`` of a ``reskill train`` run, else ``None``."""
    trainer = _run_config(run).get("trainer")
    if not isinstance(trainer, dict) or not isinstance(trainer.get("model"), str):
        return None
    return trainer["model"], bool(trainer.get("update_policy", True))


def _evolve_agent(run: Path) -> str | None:
    agent = _run_config(run).get("agent")
    spec = agent.get("spec") if isinstance(agent, dict) else None
    return spec if isinstance(spec, str) else None


def lora_base(folder: str | os.PathLike[str], resolve_local_model: Callable[[str], object]) -> str:
    """The base model a LoRA policy folder needs, as a ``local:`` model spec.

    The manifest's ``base`` when it still resolves (an alias, an existing path), else its
    ``base_path``; neither: an error naming the base and what to do. ``resolve_local_model``
    is :func:`reskill_gym.llm.local.resolve_local_model`, passed in by its caller so this
    module, which that one imports, does not import the ``llm`` package back; a spec it
    cannot resolve raises ``LLMConfigError``, a ``ValueError``.
    """
    folder = Path(folder)
    manifest = read_manifest(folder) if (folder / MANIFEST).is_file() else None
    candidates: list[str] = []
    if manifest is not None:
        candidates += [c for c in (manifest.base, manifest.base_path) if c]
    else:  # a PEFT folder from elsewhere: its adapter_config names the base
        try:
            cfg = json.loads(safe_files.read_text(folder / _ADAPTER_CONFIG))
        except (OSError, ValueError) as exc:
            raise PolicyFolderError(f"{folder / _ADAPTER_CONFIG}: cannot read it ({exc})") from None
        base = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
        if isinstance(base, str) and base:
            candidates.append(base)
    if not candidates:
        raise PolicyFolderError(f"LoRA adapter {folder}: names no base model")
    errors = []
    for spec in candidates:
        try:
            resolve_local_model(spec)
            return spec
        except ValueError as exc:  # LLMConfigError
            errors.append(str(getattr(exc, "message", exc)))
    raise PolicyFolderError(
        f"LoRA adapter {folder}: its base model {candidates[0]!r} is missing here "
        f"({errors[0]}); install or copy that base model, or evaluate a full policy "
        "(a run trained with trainer.lora_r=0)"
    )
