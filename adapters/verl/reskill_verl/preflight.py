"""``reskill verl preflight``: will this config run, before a cluster is booked?

Exports ``ModelShape``, ``MemoryPlan``, ``Check``, ``find_model_config``, ``plan_memory``,
``fitting_overrides``, ``with_overrides``, ``node_checks``, ``run_node_checks``, ``render_report``
and ``node_label``.

Two parts, both from the composed config (the same arguments as ``reskill verl train``):

**Memory plan per GPU** (:func:`plan_memory`), from the model's ``config.json`` (a local
folder, or the Hugging Face cache: no download). Estimates, with the assumptions stated:

- *actor states under FSDP*: fp32 parameters (4 B), fp32 gradients (4 B) and Adam's two
  moments (8 B) per parameter, sharded over every GPU of the job (with LoRA,
  ``actor_rollout_ref.model.lora_rank > 0``: gradients and moments of the adapter only,
  rank x (in + out) per linear layer, and no reference weights: veRL computes the reference
  log-probs with the adapter disabled); while rollouts run,
  ``fsdp_config.param_offload`` / ``optimizer_offload`` move them to CPU (veRL brings them
  back for the update, so they count there either way); the reference model in bf16 unless
  ``ref.fsdp_config.param_offload``;
- *gathered FSDP unit*: the largest unit (a decoder layer or the embedding) in bf16, twice
  (forward prefetch);
- *largest micro-batch* ``T`` tokens (``ppo_max_token_len_per_gpu`` with dynamic batching,
  else ``ppo_micro_batch_size_per_gpu x (prompt + response)``; divided by Ulysses
  sequence parallelism): logits ``T x vocab`` in bf16 plus one fp32 working copy for the
  log-softmax and its gradient (6 B per entry: for Qwen3-4B at 32,768 tokens 28 GiB),
  activations ``layers x T x hidden`` bf16 with gradient checkpointing (+ one layer
  recomputed), all layers' intermediates without;
- *vLLM*: ``gpu_memory_utilization x`` GPU memory while rolling out, and during the update
  too when ``free_cache_engine`` is false; inside it the weights (bf16, split over tensor
  parallelism), an activation reserve for ``max_num_batched_tokens`` and the KV cache, of
  which one sequence of ``max_model_len`` tokens must fit (unset, vLLM takes the model's
  whole context: 262,144 tokens for Qwen3-4B-Instruct-2507, 36 GiB of KV cache at TP 1);
- 2 GiB per GPU for the CUDA context and NCCL buffers.

Verdict: ``fits`` when every phase stays within 90 % of the declared memory (allocator
fragmentation), ``tight`` up to 100 %, else ``does not fit``; :func:`fitting_overrides`
proposes the Hydra overrides that bring it within 90 % and the plan is recomputed with them.

**Checks on every node** (:func:`node_checks`, run as a Ray task pinned to each node of the
running cluster with the job's runtime environment, or in this process without a cluster):
the dataset files, the environment built from ``reskill.env_kwargs`` and reset on the first
training and validation task (ALFWorld's data, ScienceWorld's Java, the search corpus or
retrieval server), the HTTP retriever answering a query, the creator's and wandb's
credentials.

>>> shape = ModelShape(vocab_size=151936, hidden_size=2560, intermediate_size=9728,
...                    num_layers=36, num_heads=32, num_kv_heads=8, head_dim=128,
...                    max_position_embeddings=262144, tie_word_embeddings=True)
>>> round(shape.params / 1e9, 2), shape.kv_bytes_per_token(tp=1)
(4.02, 147456)
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ModelShape",
    "MemoryPlan",
    "Check",
    "find_model_config",
    "plan_memory",
    "fitting_overrides",
    "with_overrides",
    "node_checks",
    "run_node_checks",
    "render_report",
    "node_label",
]

logger = logging.getLogger(__name__)

GIB = 2**30
CUDA_CONTEXT_GIB = 2.0
FIT_SHARE = 0.9
"""Share of the declared memory a phase may use and still be called ``fits``."""
LOGIT_BYTES = 6  # bf16 logits + one fp32 working copy (log-softmax and its gradient)
VLLM_RESERVE_GIB = 1.0  # CUDA graphs, sampler, allocator slack inside vLLM's share


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan needs from a decoder-only model's ``config.json``."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    model_type: str = ""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ModelShape:
        """From a parsed ``config.json`` (a nested ``text_config`` is used when present)."""
        c = dict(cfg.get("text_config") or cfg)
        try:
            heads = int(c["num_attention_heads"])
            hidden = int(c["hidden_size"])
            return cls(
                vocab_size=int(c["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(c["intermediate_size"]),
                num_layers=int(c["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(c.get("num_key_value_heads") or heads),
                head_dim=int(c.get("head_dim") or hidden // heads),
                max_position_embeddings=int(c.get("max_position_embeddings") or 0),
                tie_word_embeddings=bool(
                    c.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))
                ),
                model_type=str(c.get("model_type") or cfg.get("model_type") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"config.json lacks a decoder field the plan needs: {exc}") from None

    @property
    def layer_params(self) -> int:
        h, q, kv = (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        )
        return h * q + 2 * h * kv + q * h + 3 * h * self.intermediate_size + 2 * h

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.embedding_params + head + self.num_layers * self.layer_params + self.hidden_size

    def lora_params(self, rank: int) -> int:
        """Trainable parameters of a rank-``rank`` LoRA on every linear layer of the decoder
        (veRL's ``target_modules: all-linear``: q, k, v, o, gate, up, down)."""
        h, q, kv, i = (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
            self.intermediate_size,
        )
        per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
        return rank * per_layer * self.num_layers

    def kv_bytes_per_token(self, tp: int) -> int:
        """bf16 K and V of every layer for one token on one GPU of a ``tp``-way replica
        (KV heads are replicated when ``tp`` exceeds them)."""
        heads = max(1, math.ceil(self.num_kv_heads / max(tp, 1)))
        return 2 * self.num_layers * heads * self.head_dim * 2


def find_model_config(model_path: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """``config.json`` of ``model_path``: ``explicit``, the local folder, or the Hugging Face
    cache (``huggingface_hub.try_to_load_from_cache``; nothing is downloaded)."""
    if explicit is not None:
        path = Path(explicit)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"--model-config {explicit}: no such file")
        return path
    local = Path(os.path.expanduser(model_path))
    if (local / "config.json").is_file():
        return local / "config.json"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_path, "config.json")
    except Exception:  # not a repo id (a missing local path), or no hub package
        cached = None
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    raise FileNotFoundError(
        f"no config.json for actor_rollout_ref.model.path={model_path!r} in a local folder or "
        f"the Hugging Face cache; fetch it (huggingface-cli download {model_path} config.json) "
        "or pass --model-config PATH"
    )


@dataclass
class MemoryPlan:
    """Per-GPU memory of each phase of a step, in GiB, with the verdict."""

    gpu_gib: float
    world_size: int
    tokens_per_micro_batch: int
    max_model_len: int
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    kv_cache_gib: float = 0.0
    kv_needed_gib: float = 0.0
    notes: list[str] = field(default_factory=list)

    def total(self, phase: str) -> float:
        return sum(self.phases[phase].values())

    @property
    def peak(self) -> float:
        return max(self.total(p) for p in self.phases)

    @property
    def kv_ok(self) -> bool:
        return self.kv_cache_gib >= self.kv_needed_gib

    @property
    def verdict(self) -> str:
        if not self.kv_ok or self.peak > self.gpu_gib:
            return "does not fit"
        if self.peak > FIT_SHARE * self.gpu_gib:
            return "tight"
        return "fits"


def _sel(config: Any, dotted: str, default: Any = None) -> Any:
    node = config
    for part in dotted.split("."):
        getter = getattr(node, "get", None)
        if getter is None:
            return default
        node = getter(part, None)
        if node is None:
            return default
    return node


def plan_memory(config: Any, shape: ModelShape, gpu_gib: float) -> MemoryPlan:
    """The per-GPU :class:`MemoryPlan` of a composed veRL config (see the module docstring)."""
    prompt = int(_sel(config, "data.max_prompt_length", 512))
    response = int(_sel(config, "data.max_response_length", 512))
    world = int(_sel(config, "trainer.nnodes", 1)) * int(_sel(config, "trainer.n_gpus_per_node", 1))
    actor = "actor_rollout_ref.actor"
    rollout = "actor_rollout_ref.rollout"
    sp = int(_sel(config, f"{actor}.ulysses_sequence_parallel_size", 1) or 1)
    if bool(_sel(config, f"{actor}.use_dynamic_bsz", False)):
        tokens = int(_sel(config, f"{actor}.ppo_max_token_len_per_gpu", 16384))
    else:
        micro = int(_sel(config, f"{actor}.ppo_micro_batch_size_per_gpu", 1) or 1)
        tokens = micro * (prompt + response)
    t = math.ceil(tokens / sp)
    p = shape.params
    h, v, layers = shape.hidden_size, shape.vocab_size, shape.num_layers
    q = shape.num_heads * shape.head_dim
    kvd = shape.num_kv_heads * shape.head_dim
    layer_act = t * (4 * h + q + 2 * kvd + 3 * shape.intermediate_size) * 2
    checkpointing = bool(
        _sel(config, "actor_rollout_ref.model.enable_gradient_checkpointing", False)
    )
    activations = (layers * t * h * 2 + layer_act) if checkpointing else layers * layer_act
    util = float(_sel(config, f"{rollout}.gpu_memory_utilization", 0.5))
    free_cache = bool(_sel(config, f"{rollout}.free_cache_engine", True))
    tp = int(_sel(config, f"{rollout}.tensor_model_parallel_size", 1) or 1)
    max_len = _sel(config, f"{rollout}.max_model_len", None)
    max_len = int(max_len) if max_len else shape.max_position_embeddings
    fsdp = _sel(config, f"{actor}.fsdp_config", {}) or {}
    ref_offload = bool(_sel(config, "actor_rollout_ref.ref.fsdp_config.param_offload", False))
    need_ref = bool(_sel(config, f"{actor}.use_kl_loss", False)) or bool(
        _sel(config, "algorithm.use_kl_in_reward", False)
    )
    frozen = int(_sel(config, "trainer.critic_warmup", 0) or 0) > 10**6
    lora_rank = int(_sel(config, "actor_rollout_ref.model.lora_rank", 0) or 0)
    # LoRA: gradients and Adam moments of the adapter only, and veRL computes the reference
    # log-probs with the actor's adapter disabled (no reference weights)
    trained = shape.lora_params(lora_rank) if lora_rank > 0 else p
    need_ref = need_ref and lora_rank == 0
    what = f"LoRA rank {lora_rank}" if lora_rank > 0 else "FSDP shard"

    plan = MemoryPlan(gpu_gib, world, tokens, max_len)
    unit = 2 * 2 * max(shape.layer_params, shape.embedding_params) / GIB
    vllm = util * gpu_gib
    train: dict[str, float] = {
        "actor fp32 weights (FSDP shard)": 4 * p / world / GIB,
        "gathered FSDP unit (bf16, prefetch)": unit,
        f"logits of {t:,} tokens (bf16 + fp32)": t * v * LOGIT_BYTES / GIB,
        "activations" + (" (checkpointed)" if checkpointing else ""): activations / GIB,
        "CUDA context, NCCL": CUDA_CONTEXT_GIB,
    }
    if not frozen:
        train[f"gradients fp32 ({what})"] = 4 * trained / world / GIB
        train[f"Adam moments fp32 ({what})"] = 8 * trained / world / GIB
    if not free_cache:
        train["vLLM kept during the update (free_cache_engine: false)"] = vllm
    plan.phases["update" if not frozen else "log-probs"] = train
    resident = {
        "vLLM (gpu_memory_utilization)": vllm,
        "CUDA context, NCCL": CUDA_CONTEXT_GIB,
    }
    if not fsdp.get("param_offload", False):
        resident["actor fp32 weights (FSDP shard)"] = 4 * p / world / GIB
    if not frozen and not fsdp.get("optimizer_offload", False):
        resident[f"Adam moments fp32 ({what})"] = 8 * trained / world / GIB
    if need_ref and not ref_offload:
        resident["reference weights bf16 (FSDP shard)"] = 2 * p / world / GIB
    plan.phases["rollout"] = resident
    batched = int(_sel(config, f"{rollout}.max_num_batched_tokens", 8192) or 8192)
    weights_tp = 2 * p / tp / GIB
    reserve = VLLM_RESERVE_GIB + batched * (4 * h + 3 * shape.intermediate_size) * 2 / GIB
    plan.kv_cache_gib = max(0.0, vllm - weights_tp - reserve)
    plan.kv_needed_gib = shape.kv_bytes_per_token(tp) * max_len / GIB
    if not _sel(config, f"{rollout}.max_model_len", None):
        plan.notes.append(
            f"{rollout}.max_model_len is unset: vLLM sizes for the model's context of "
            f"{shape.max_position_embeddings:,} tokens; prompt + response is {prompt + response:,}"
        )
    elif max_len < prompt + response:
        plan.notes.append(
            f"{rollout}.max_model_len={max_len:,} is below prompt + response "
            f"({prompt + response:,}): long requests fail"
        )
    return plan


def with_overrides(config: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain copy of ``config`` with ``overrides`` (dotted key -> value) set."""
    import copy

    if isinstance(config, Mapping) and not hasattr(config, "_metadata"):
        out = copy.deepcopy(dict(config))
    else:
        from omegaconf import OmegaConf

        out = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def fitting_overrides(config: Any, shape: ModelShape, gpu_gib: float) -> dict[str, Any]:
    """Hydra overrides (key -> value) under which :func:`plan_memory` says ``fits``, tried in
    this order: ``max_model_len = prompt + response``, ``free_cache_engine=true``, the
    largest micro-batch token budget that fits (never below one prompt + response),
    offloading the actor while rollouts run, a lower ``gpu_memory_utilization``. Empty if
    it fits already; the result may still not fit (then these knobs are not enough)."""
    rollout = "actor_rollout_ref.rollout"
    actor = "actor_rollout_ref.actor"
    base = with_overrides(config, {})
    budget = FIT_SHARE * gpu_gib
    out: dict[str, Any] = {}

    def plan(extra: Mapping[str, Any] | None = None) -> MemoryPlan:
        return plan_memory(with_overrides(base, {**out, **(extra or {})}), shape, gpu_gib)

    first = plan()
    train = next(k for k in first.phases if k != "rollout")
    one_sample = int(_sel(base, "data.max_prompt_length", 512)) + int(
        _sel(base, "data.max_response_length", 512)
    )
    if first.notes:  # max_model_len unset or below one sample
        out[f"{rollout}.max_model_len"] = one_sample
    if plan().total(train) > budget and not bool(_sel(base, f"{rollout}.free_cache_engine", True)):
        out[f"{rollout}.free_cache_engine"] = True
    if plan().total(train) > budget:
        dynamic = bool(_sel(base, f"{actor}.use_dynamic_bsz", False))

        def knob(tokens: int) -> dict[str, Any]:
            if dynamic:
                return {f"{actor}.ppo_max_token_len_per_gpu": tokens}
            return {f"{actor}.ppo_micro_batch_size_per_gpu": max(1, tokens // one_sample)}

        lo, hi = one_sample, plan().tokens_per_micro_batch  # largest fitting budget in [lo, hi)
        step = 1024 if dynamic else one_sample
        best = lo
        while lo <= hi:
            mid = max(one_sample, (lo + hi) // 2 // step * step)
            if plan(knob(mid)).total(train) <= budget:
                best, lo = mid, mid + step
            else:
                hi = mid - step
        out.update(knob(best))
    if plan().total("rollout") > budget:
        out[f"{actor}.fsdp_config.param_offload"] = True
        out[f"{actor}.fsdp_config.optimizer_offload"] = True
    now = plan()
    if now.total("rollout") > budget:
        util = float(_sel(base, f"{rollout}.gpu_memory_utilization", 0.5))
        rest = now.total("rollout") - util * gpu_gib
        lower = math.floor((budget - rest) / gpu_gib * 100) / 100
        if 0 < lower < util:
            out[f"{rollout}.gpu_memory_utilization"] = lower
    return out


# --------------------------------------------------------------------------------------------
# Checks on a node


def node_label() -> str:
    """This process's node: the host name, plus the first 8 hex digits of the Ray node id
    inside Ray (several raylets can share a host)."""
    import socket
    import sys

    host = socket.gethostname()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return f"{host} {ray.get_runtime_context().get_node_id()[:8]}"
    return host


@dataclass
class Check:
    """One readiness check on one node."""

    name: str
    ok: bool
    detail: str
    node: str = ""


def _data_check(path_value: Any, name: str) -> tuple[Check, list[dict[str, Any]]]:
    paths = [path_value] if isinstance(path_value, str) else list(path_value or [])
    rows: list[dict[str, Any]] = []
    if not paths:
        return Check(name, False, "no file configured"), rows
    import pyarrow.parquet as pq

    for p in paths:
        if str(p).startswith(("hdfs://", "s3://", "gs://")):
            return Check(name, True, f"{p}: remote, not checked"), rows
        if not Path(p).is_file():
            return Check(name, False, f"{p}: no such file (run `reskill verl prepare`)"), rows
        try:
            rows += pq.read_table(p).slice(0, 1).to_pylist()
            n = pq.ParquetFile(p).metadata.num_rows
        except Exception as exc:
            return Check(name, False, f"{p}: unreadable parquet ({exc})"), rows
        if n == 0:
            return Check(name, False, f"{p}: no rows"), rows
    return Check(name, True, ", ".join(str(p) for p in paths)), rows


def _env_check(settings: Any, row: dict[str, Any] | None, label: str) -> Check:
    """Build the env as the agent loop does and reset it on the row's task."""
    if row is None:
        return Check(label, False, "no dataset row to reset on")
    from reskill_gym.envs.registration import make_env

    extra = row.get("extra_info") or {}
    env_name = str(extra.get("env") or settings.env)
    kwargs = settings.env_kwargs if env_name == settings.env else {}
    task_id, split = str(extra.get("task_id")), str(extra.get("split") or "train")
    try:
        env = make_env(env_name, **kwargs)
        try:
            env.reset(options={"task_id": task_id, "split": split})
        finally:
            env.close()
    except Exception as exc:
        return Check(label, False, f"{env_name} task {task_id}: {type(exc).__name__}: {exc}")
    return Check(label, True, f"{env_name} task {task_id} ({split}) resets")


def _java_check() -> Check:
    java = shutil.which("java")
    if java is None:
        return Check("java", False, "no `java` on PATH (ScienceWorld needs Java >= 8)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
        line = (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else ""
    except Exception as exc:
        return Check("java", False, f"{java} -version failed: {exc}")
    return Check("java", True, line.strip() or java)


def _requires(env_name: str, program: str) -> bool:
    """Does ``env_name``'s spec name ``program`` among the programs it needs (an unknown
    name is left to the env check, which reports it)."""
    from reskill_gym.envs.registration import find_spec

    spec = find_spec(env_name)
    return spec is not None and program in spec.requires


def _retriever_check(settings: Any) -> Check | None:
    kwargs = settings.env_kwargs
    url = kwargs.get("retriever")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return None
    from reskill_gym.envs.search.retrievers import HttpRetriever

    try:
        HttpRetriever(url, **dict(kwargs.get("retriever_kwargs") or {})).search("test", 1)
    except Exception as exc:
        return Check("retriever", False, f"{url}: {exc}")
    return Check("retriever", True, f"{url} answers")


def _credential_checks(config: Any, settings: Any) -> list[Check]:
    out: list[Check] = []
    creator = settings.coevolution.config.creator
    backend = str(getattr(creator, "backend", "rules") or "rules")
    kind = backend.split(":", 1)[0]
    options = dict(getattr(creator, "llm_options", None) or {})
    if settings.coevolution.enabled and kind in ("anthropic", "openai"):
        var = options.get("api_key_env") or (
            "ANTHROPIC_API_KEY" if kind == "anthropic" else "OPENAI_API_KEY"
        )
        ok = bool(os.environ.get(var, "").strip()) or kind == "openai"
        out.append(
            Check(f"creator {kind}", ok, f"${var} {'set' if os.environ.get(var) else 'unset'}")
        )
    elif settings.coevolution.enabled and kind == "bedrock":
        try:
            import importlib

            boto3 = importlib.import_module("boto3")  # Bedrock's SDK: an optional install
            creds = boto3.Session().get_credentials()
            ok, detail = (
                creds is not None,
                "AWS credentials found" if creds else "no AWS credentials",
            )
        except ImportError:
            ok, detail = False, "boto3 not installed (pip install 'reskill-gym[anthropic]')"
        out.append(Check("creator bedrock", ok, detail))
    loggers = _sel(config, "trainer.logger", []) or []
    loggers = [loggers] if isinstance(loggers, str) else list(loggers)
    if "wandb" in loggers:
        netrc = Path.home() / ".netrc"
        ok = bool(os.environ.get("WANDB_API_KEY")) or (
            netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
        )
        offline = os.environ.get("WANDB_MODE") in ("offline", "disabled")
        out.append(
            Check(
                "wandb",
                ok or offline,
                "key found"
                if ok
                else (
                    "WANDB_MODE=" + os.environ["WANDB_MODE"]
                    if offline
                    else "no $WANDB_API_KEY or ~/.netrc entry (or set WANDB_MODE=offline)"
                ),
            )
        )
    return out


def node_checks(config_container: Mapping[str, Any]) -> list[Check]:
    """The checks of one node (a plain-dict config: this runs inside a Ray task)."""
    from omegaconf import OmegaConf

    from reskill_verl.config import ReskillVerlConfig

    config = OmegaConf.create(dict(config_container))
    node = node_label()
    settings = ReskillVerlConfig.from_trainer_config(config)
    checks: list[Check] = []
    train_check, train_rows = _data_check(_sel(config, "data.train_files"), "train data")
    val_check, val_rows = _data_check(_sel(config, "data.val_files"), "val data")
    checks += [train_check, val_check]
    envs = {
        str((r.get("extra_info") or {}).get("env") or settings.env) for r in train_rows + val_rows
    } or {settings.env}
    if any(_requires(name, "java") for name in envs):
        checks.append(_java_check())
    retriever = _retriever_check(settings)
    if retriever is not None:
        checks.append(retriever)
    checks.append(_env_check(settings, train_rows[0] if train_rows else None, "env (train task)"))
    if val_rows:
        checks.append(_env_check(settings, val_rows[0], "env (val task)"))
    checks += _credential_checks(config, settings)
    for c in checks:
        c.node = node
    return checks


def run_node_checks(
    config: Any, *, runtime_env: Mapping[str, Any] | None = None, use_ray: bool | None = None
) -> list[Check]:
    """:func:`node_checks` on every alive node of the running Ray cluster (joined with the
    job's ``runtime_env``), or in this process when there is no cluster (``use_ray=None``:
    join one if ``$RAY_ADDRESS`` is set or a local cluster is running)."""
    container: dict[str, Any] = with_overrides(config, {})
    if use_ray is None:
        use_ray = bool(os.environ.get("RAY_ADDRESS")) or _local_cluster_running()
    if not use_ray:
        return node_checks(container)
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    started = False
    if not ray.is_initialized():
        ray.init(address="auto", runtime_env=dict(runtime_env or {}), log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=0)(node_checks)
        refs = [
            task.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)
            ).remote(container)
            for n in ray.nodes()
            if n.get("Alive")
        ]
        return [c for result in ray.get(refs) for c in result]
    finally:
        if started:
            ray.shutdown()


def _local_cluster_running() -> bool:
    """A cluster started on this machine (``ray start``) left its address file."""
    try:
        from ray._common.utils import get_ray_address_file
    except ImportError:
        return False
    return Path(get_ray_address_file(None)).is_file()


def render_report(
    name: str,
    model_path: str,
    shape: ModelShape,
    plan: MemoryPlan,
    overrides: Mapping[str, Any],
    fixed: MemoryPlan | None,
    checks: Sequence[Check],
) -> str:
    """The text ``reskill verl preflight`` prints."""
    lines = [
        f"reskill verl preflight: {name} ({plan.world_size} GPUs, {plan.gpu_gib:g} GiB each)",
        f"model {model_path}: {shape.params / 1e9:.2f} B parameters, vocab {shape.vocab_size:,}, "
        f"{shape.num_layers} layers, {shape.num_kv_heads} KV heads x {shape.head_dim}, context "
        f"{shape.max_position_embeddings:,}",
        "",
    ]
    for phase, items in plan.phases.items():
        total = plan.total(phase)
        lines.append(f"memory per GPU, {phase}: {total:.1f} GiB ({total / plan.gpu_gib:.0%})")
        for label, gib in sorted(items.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {gib:7.1f}  {label}")
    lines.append(
        f"vLLM KV cache: {plan.kv_cache_gib:.1f} GiB for one sequence of "
        f"{plan.max_model_len:,} tokens needing {plan.kv_needed_gib:.1f} GiB"
        + ("" if plan.kv_ok else "  <- vLLM would refuse to start")
    )
    lines += [f"note: {n}" for n in plan.notes]
    lines.append(f"verdict: {plan.verdict} (peak {plan.peak:.1f} of {plan.gpu_gib:g} GiB)")
    if overrides:
        lines.append(
            "overrides that would fit"
            + (f" (then: {fixed.verdict}, peak {fixed.peak:.1f} GiB)" if fixed else "")
            + ":"
        )
        lines.append("  " + " ".join(f"{k}={_hydra_value(v)}" for k, v in overrides.items()))
    if checks:
        lines.append("")
        for c in checks:
            lines.append(f"  {'ok  ' if c.ok else 'FAIL'}  [{c.node}] {c.name}: {c.detail}")
    return "\n".join(lines)


def _hydra_value(v: Any) -> str:
    return (
        "true"
        if v is True
        else "false"
        if v is False
        else json.dumps(v)
        if isinstance(v, str)
        else str(v)
    )
