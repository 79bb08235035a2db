"""A veRL actor checkpoint as the policy folder ``reskill train`` writes (``reskill verl policy``).

Exports ``policy_from_checkpoint``.

veRL saves the actor of step ``k`` as FSDP shards (``global_step_<k>/actor/``:
``model_world_size_<n>_rank_<r>.pt``, ``fsdp_config.json``, ``huggingface/`` with the model
config and tokenizer, ``lora_train_meta.json`` for LoRA runs). veRL's own model merger
(``verl.model_merger``, CPU only: it loads every shard with ``map_location="cpu"``) joins the
shards and saves a Hugging Face folder in bf16, and for a LoRA run the adapter in
``lora_adapter/``. :func:`policy_from_checkpoint` runs that merger into a temporary folder and
lays its output out as :mod:`reskill_gym.policy_folder` describes: the whole model (full
fine-tuning) or the adapter alone naming its base (LoRA), the tokenizer with its chat
template, and ``reskill-policy.json``. ``reskill eval --agent local:<folder>`` and ``reskill
export``'s files then read it like a local run's policy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text

__all__ = ["policy_from_checkpoint"]

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def policy_from_checkpoint(
    actor_dir: str | os.PathLike[str], dest: str | os.PathLike[str], *, base: str | None = None
) -> Path:
    """Write the policy folder ``dest`` from veRL actor checkpoint ``actor_dir``.

    ``base`` (LoRA only) names the base model the adapter needs, as the run's
    ``actor_rollout_ref.model.path`` did; default: the ``_name_or_path`` of the checkpoint's
    ``huggingface/config.json``.
    """
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    from reskill_gym.policy_folder import (
        MANIFEST,
        PolicyFolderError,
        PolicyManifest,
        publish_policy,
    )

    actor, dest = Path(actor_dir), Path(dest)
    hf = actor / "huggingface"
    if not (actor / "fsdp_config.json").is_file() or not (hf / "config.json").is_file():
        raise PolicyFolderError(
            f"{actor}: not a veRL FSDP actor checkpoint (expected fsdp_config.json and "
            "huggingface/config.json: global_step_<k>/actor)"
        )
    work = Path(
        tempfile.mkdtemp(prefix=".verl-merge.", dir=dest.parent if dest.parent.is_dir() else None)
    )
    try:
        merged = work / "merged"
        FSDPModelMerger(
            ModelMergerConfig(
                operation="merge",
                backend="fsdp",
                local_dir=str(actor),
                target_dir=str(merged),
                hf_model_config_path=str(hf),
            )
        ).merge_and_save()
        adapter = merged / "lora_adapter"
        policy = work / "policy"
        policy.mkdir()
        if (adapter / "adapter_config.json").is_file():
            if base is None:
                hf_config = safe_files.read_text(hf / "config.json", follow_links=True)
                base = json.loads(hf_config).get("_name_or_path") or None
            cfg = json.loads(safe_files.read_text(adapter / "adapter_config.json"))
            cfg["base_model_name_or_path"] = base
            atomic_write_text(policy / "adapter_config.json", json.dumps(cfg, indent=2) + "\n")
            safe_files.copy_file(
                adapter / "adapter_model.safetensors", policy / "adapter_model.safetensors"
            )
            kind = "lora"
        else:
            for item in safe_files.list_folder(merged, links="skip", special="skip"):
                if item.kind == "file" and item.name not in _TOKENIZER_FILES:
                    safe_files.copy_file(item.path, policy / item.name)
            kind = "full"
        for name in _TOKENIZER_FILES:  # the merger saved the checkpoint's tokenizer
            if (merged / name).is_file():
                safe_files.copy_file(merged / name, policy / name)
        manifest = PolicyManifest(
            kind=kind,
            base=base if kind == "lora" else None,
            producer=f"veRL checkpoint {actor.parent.name}",
            steps_done=_step(actor),
        )
        atomic_write_text(policy / MANIFEST, manifest.model_dump_json(indent=1) + "\n")
        return publish_policy(policy, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _step(actor: Path) -> int | None:
    name = actor.parent.name
    return int(name.rsplit("_", 1)[1]) if name.startswith("global_step_") else None
