"""veRL's real V1 ``fit()`` on CPU: the trainer, replay buffer, TransferQueue, agent-loop
manager and Ray agent-loop workers are veRL's own; what needs GPUs is replaced by workers
that speak the same interfaces with a tiny causal LM on CPU.

What is veRL's (unchanged): ``ReskillTrainer.fit`` (``PPOTrainer.fit`` -> ``step`` ->
``_step_once``: replay-buffer sampling, batch balancing/padding, old/ref log-probs,
``_compute_advantage`` with the rollout-correction step, actor update, checkpoint save,
validation, ``_compute_metrics``), ``_load_checkpoint`` (resume), ``AgentLoopManagerTQ``
(TensorDict -> ``chunk`` -> Ray -> ``AgentLoopWorkerTQ``), TransferQueue, and veRL's
``tqbridge`` between a worker method and TransferQueue (a ``KVBatchMeta`` in, the fields the
worker returns written back per key).

What stands in (``PPOTrainer._setup`` builds these from FSDP/vLLM workers on GPUs):

- :class:`StubWorkerGroup`: the actor / reference worker group. ``compute_log_prob``,
  ``compute_ref_log_prob``, ``update_actor``, ``save_checkpoint``, ``load_checkpoint`` with
  the signatures and TransferQueue fields of ``ActorRolloutRefWorker``; the update is
  veRL's own policy loss (``core_algos.get_policy_loss_fn``) + its KL penalty on a tiny
  randomly initialised Qwen3 (2 layers, a generated 2k-token Qwen tokenizer: veRL takes its
  Qwen3 token-merge path), optimised with AdamW.
- :class:`RolloutClient`: ``LLMServerClient.generate`` (token ids in, ``TokenOutput`` out)
  on the same tiny model, loaded lazily in whichever process calls it (the agent-loop
  workers); :class:`WeightSync` (``CheckpointEngineManager.update_weights``) publishes the
  actor's weights to it through a folder, as veRL pushes them to the vLLM replicas.

The harness module is pickled by value into the Ray workers (``register_pickle_by_value``),
so the workers need nothing but the installed packages.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""Qwen3-Instruct's ChatML layout for plain messages (``<|im_start|>role\\n...<|im_end|>\\n``,
generation prompt ``<|im_start|>assistant\\n``): what veRL's Qwen token builder is written for."""

TINY_QWEN3 = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
)


class SimulatedCrash(RuntimeError):
    """Raised inside a step to stand for the job being killed."""


def build_qwen3_tokenizer(out: Path, vocab_size: int = 2048) -> Any:
    """A Qwen3-style tokenizer, generated: byte-level BPE (every text encodes, ``\\n`` is
    one token) trained on the repository's skills, docs and system prompts, Qwen's special
    tokens (``<|endoftext|>`` pad, ``<|im_start|>``, ``<|im_end|>`` eos) and
    :data:`QWEN3_CHAT_TEMPLATE`, saved as ``Qwen2Tokenizer`` (Qwen3's class). No download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    from reskill_gym.rollout import TurnConfig

    root = Path(__file__).resolve().parents[3]
    texts = [p.read_text() for p in sorted((root / "skills").rglob("*.md"))]
    texts += [p.read_text() for p in sorted((root / "docs").rglob("*.md"))]
    texts += [str(TurnConfig().resolve(env).system_prompt) for env in ("alfworld", "search")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    qwen = Qwen2TokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    qwen.chat_template = QWEN3_CHAT_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    qwen.save_pretrained(out)
    return qwen


def build_tiny_model(out: Path, seed: int = 0) -> Path:
    """A model folder veRL loads (``config.json`` with ``model_type: qwen3``, the generated
    tokenizer, weights): a 2-layer Qwen3 randomly initialised with ``seed``. veRL picks its
    Qwen continuous-token builder for it, as for Qwen3-4B."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = build_qwen3_tokenizer(out)
    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **TINY_QWEN3,
    )
    Qwen3ForCausalLM(cfg).save_pretrained(out)
    return out


def _load_model(model_dir: str) -> Any:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    return model


def _token_log_probs(model: Any, ids: torch.Tensor, temperature: float) -> tuple[Any, Any]:
    """Per position t: log p(ids[t+1] | ids[:t+1]) at ``temperature`` and the entropy of
    that distribution; the last position gets 0 (veRL's layout: ``response_from_nested``
    reads ``values[end - response_len - 1 : end - 1]``)."""
    logits = model(ids.unsqueeze(0)).logits[0].float() / max(temperature, 1e-6)
    logp = torch.log_softmax(logits, -1)
    chosen = logp[:-1].gather(-1, ids[1:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    zero = chosen.new_zeros(1)
    return torch.cat([chosen, zero]), torch.cat([entropy[:-1], zero])


# --------------------------------------------------------------------------------------------
# Rollout: veRL's LLMServerClient.generate on the tiny model, weights from the WeightSync folder


class RolloutClient:
    """``LLMServerClient.generate`` on the tiny model (see the module docstring).

    Weights follow :class:`WeightSync`: every call checks the published step and reloads
    when it moved, so a rollout of step k runs on the weights synced at the end of step
    k-1, as with veRL's replicas. ``extra_fields`` carry the weight version like veRL's
    client (``global_steps``, ``min_global_steps``, ``max_global_steps``). Pickled by its
    two folders; the model is loaded in the process that generates.
    """

    def __init__(self, model_dir: str, weights_dir: str) -> None:
        self.__setstate__({"model_dir": model_dir, "weights_dir": weights_dir})

    def __getstate__(self) -> dict[str, str]:
        return {"model_dir": self.model_dir, "weights_dir": self.weights_dir}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.model_dir = state["model_dir"]
        self.weights_dir = state["weights_dir"]
        self._lock = threading.Lock()
        self._model: Any = None
        self._step = -1

    def _state(self) -> tuple[Any, int]:
        if self._model is None:
            self._model = _load_model(self.model_dir)
        step_file = Path(self.weights_dir) / "step"
        if step_file.is_file():
            step = int(step_file.read_text())
            if step != self._step:
                sd = torch.load(Path(self.weights_dir) / f"weights-{step}.pt")
                self._model.load_state_dict(sd)
                self._step = step
        return self._model, self._step

    def _generate(self, prompt_ids: list[int], params: dict[str, Any]) -> tuple[Any, ...]:
        with self._lock:  # one CPU model: generations run one at a time
            return self._generate_locked(prompt_ids, params)

    def _generate_locked(self, prompt_ids: list[int], params: dict[str, Any]) -> tuple[Any, ...]:
        model, step = self._state()
        tok_eos = model.config.eos_token_id
        temperature = float(params.get("temperature", 1.0))
        max_tokens = int(params.get("max_tokens", 8))
        new: list[int] = []
        lps: list[float] = []
        gen = torch.Generator().manual_seed(len(prompt_ids) * 7919 + sum(prompt_ids[-8:]))
        with torch.no_grad():
            out = model(torch.tensor([prompt_ids]), use_cache=True)
            for _ in range(max_tokens):
                logits = out.logits[0, -1].float()
                if temperature > 0:
                    logp = torch.log_softmax(logits / temperature, -1)
                    token = int(torch.multinomial(logp.exp(), 1, generator=gen))
                else:
                    logp = torch.log_softmax(logits, -1)
                    token = int(logp.argmax())
                new.append(token)
                lps.append(float(logp[token]))
                if token == tok_eos:
                    return new, lps, "completed", step
                out = model(
                    torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True
                )
        return new, lps, "length", step

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: Any = None,
        video_data: Any = None,
        audio_data: Any = None,
        mm_processor_kwargs: Any = None,
        **kwargs: Any,
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        loop = asyncio.get_running_loop()
        ids, lps, stop, step = await loop.run_in_executor(
            None, self._generate, list(prompt_ids), dict(sampling_params)
        )
        return TokenOutput(
            token_ids=ids,
            log_probs=lps if sampling_params.get("logprobs", True) else None,
            stop_reason=stop,
            num_preempted=0,
            extra_fields={"global_steps": step, "min_global_steps": step, "max_global_steps": step},
        )


class WeightSync:
    """``CheckpointEngineManager``: ``update_weights`` publishes the actor's weights to the
    rollout (a folder: ``weights-<step>.pt`` + ``step``), ``sleep_replicas`` is a no-op."""

    def __init__(self, actor: StubWorkerGroup, weights_dir: Path) -> None:
        self.actor = actor
        self.weights_dir = weights_dir
        self.synced: list[int] = []

    def update_weights(self, global_steps: int | None = None) -> None:
        from reskill_gym.atomic import atomic_path, atomic_write_text

        step = int(global_steps or 0)
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.weights_dir / f"weights-{step}.pt", suffix=".pt") as tmp:
            torch.save(self.actor.model.state_dict(), tmp)
        atomic_write_text(self.weights_dir / "step", str(step))  # the rollout reloads on change
        self.synced.append(step)

    def sleep_replicas(self) -> None:
        return None


# --------------------------------------------------------------------------------------------
# Actor / reference: ActorRolloutRefWorker's methods, bridged to TransferQueue by veRL


def _bridged(fn: Any) -> Any:
    from verl.utils.transferqueue_utils import tqbridge

    return tqbridge()(fn)


class StubWorkerGroup:
    """The actor (and, with ``frozen=True``, the reference) worker group on CPU.

    One data-parallel rank. Calls are recorded in ``calls`` as ``(method, global_step,
    rows)``; ``crash_at_update`` raises :class:`SimulatedCrash` in ``update_actor`` of that
    step (the job "killed" after its rollouts and advantages).
    """

    world_size = 1

    @property
    def step(self) -> int:
        return int(self.clock())

    def __init__(self, model_dir: Path, config: Any, *, frozen: bool = False) -> None:
        from verl.utils.config import omega_conf_to_dataclass

        self.model = _load_model(str(model_dir))
        self.frozen = frozen
        if frozen:
            for p in self.model.parameters():
                p.requires_grad_(False)
        self.actor_config = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=float(config.actor_rollout_ref.actor.optim.lr)
        )
        self._dispatch_info: dict[str, list[int]] = {}
        self._collect_info: dict[str, list[bool]] = {}
        self.calls: list[tuple[str, int, int]] = []
        self.crash_at_update: int | None = None
        self.clock: Any = lambda: 0  # the trainer's global step (set by setup_trainer)
        self.compute_log_prob = _bridged(self._compute_log_prob)
        self.compute_ref_log_prob = _bridged(self._compute_log_prob)
        self.update_actor = _bridged(self._update_actor)

    def _query_dispatch_info(self, mesh_name: str) -> list[int]:
        return [0]

    def _query_collect_info(self, mesh_name: str) -> list[bool]:
        return [True]

    # ----- veRL's worker methods (TensorDict in, TensorDict out) ------------------------------
    def _compute_log_prob(self, data: Any) -> Any:
        from tensordict import TensorDict
        from verl.utils import tensordict_utils as tu

        temperature = float(tu.get(data, "temperature", default=1.0))
        ids = data["input_ids"]
        self.calls.append(("log_prob", self.step, int(ids.shape[0])))
        lps, ents = [], []
        with torch.no_grad():
            for row in ids.unbind():
                lp, ent = _token_log_probs(self.model, row, temperature)
                lps.append(lp)
                ents.append(ent)
        return TensorDict(
            {
                "log_probs": torch.nested.as_nested_tensor(lps, layout=torch.jagged),
                "entropy": torch.nested.as_nested_tensor(ents, layout=torch.jagged),
            },
            batch_size=len(lps),
        )

    def _update_actor(self, data: Any) -> Any:
        from verl.trainer.ppo import core_algos
        from verl.utils import tensordict_utils as tu

        self.calls.append(("update", self.step, int(data["input_ids"].shape[0])))
        if self.crash_at_update is not None and self.step == self.crash_at_update:
            raise SimulatedCrash(f"killed in update_actor of step {self.step}")
        assert not self.frozen, "a frozen policy must never reach update_actor"
        temperature = float(tu.get(data, "temperature", default=1.0))
        mini = int(tu.get(data, "mini_batch_size"))
        cfg = self.actor_config
        fields = ["response_mask", "old_log_probs", "advantages"]
        for name in ("ref_log_prob", "rollout_is_weights"):
            if name in data.keys():
                fields.append(name)
        padded = data.select(*fields).to_padded_tensor()
        mask = padded["response_mask"].to(torch.float32)
        width = mask.shape[1]
        resp_lens = data["response_mask"].offsets().diff().tolist()
        rows = list(data["input_ids"].unbind())
        metrics: dict[str, list[float]] = {"pg_loss": [], "grad_norm": [], "kl_loss": []}
        self.model.train()
        for start in range(0, len(rows), mini):
            idx = list(range(start, min(start + mini, len(rows))))
            logp = torch.zeros(len(idx), width)
            for j, i in enumerate(idx):
                lp, _ = _token_log_probs(self.model, rows[i], temperature)
                n = resp_lens[i]
                logp[j, :n] = lp[-n - 1 : -1]
            sel = torch.tensor(idx)
            m = mask[sel]
            pg_loss, _ = core_algos.get_policy_loss_fn(cfg.policy_loss.get("loss_mode", "vanilla"))(
                old_log_prob=padded["old_log_probs"][sel],
                log_prob=logp,
                advantages=padded["advantages"][sel],
                response_mask=m.bool(),
                loss_agg_mode=cfg.loss_agg_mode,
                config=cfg,
                rollout_is_weights=(
                    padded["rollout_is_weights"][sel] if "rollout_is_weights" in fields else None
                ),
            )
            loss = pg_loss
            if cfg.use_kl_loss:
                kld = core_algos.kl_penalty(logp, padded["ref_log_prob"][sel], cfg.kl_loss_type)
                kl_loss = core_algos.agg_loss(kld, m, cfg.loss_agg_mode)
                loss = loss + cfg.kl_loss_coef * kl_loss
                metrics["kl_loss"].append(float(kl_loss.detach()))
            self.optimizer.zero_grad()
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            metrics["pg_loss"].append(float(pg_loss.detach()))
            metrics["grad_norm"].append(float(norm))
        self.model.eval()
        metrics = {k: v for k, v in metrics.items() if v}
        metrics["mfu"] = [0.0]
        return tu.get_tensordict(tensor_dict={}, non_tensor_dict={"metrics": metrics})

    def save_checkpoint(
        self,
        local_path: str,
        hdfs_path: str | None = None,
        global_step: int = 0,
        max_ckpt_to_keep: int | None = None,
    ) -> None:
        os.makedirs(local_path, exist_ok=True)
        torch.save(
            {"model": self.model.state_dict(), "optim": self.optimizer.state_dict()},
            os.path.join(local_path, "model.pt"),
        )

    def load_checkpoint(
        self, local_path: str, hdfs_path: str | None = None, del_local_after_load: bool = False
    ) -> None:
        state = torch.load(os.path.join(local_path, "model.pt"))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optim"])
        self.calls.append(("load", -1, 0))


class _ServerManager:
    """``LLMServerManager``: hands out the rollout client."""

    def __init__(self, client: RolloutClient) -> None:
        self.client = client

    def get_client(self, *args: Any, **kwargs: Any) -> RolloutClient:
        return self.client

    def get_replicas(self) -> list[Any]:
        return []

    def start_profile(self) -> None:
        return None

    def stop_profile(self) -> None:
        return None


class _ResourcePools:
    def get_n_gpus(self) -> int:
        return 1


def setup_trainer(trainer: Any, model_dir: Path, weights_dir: Path) -> SimpleNamespace:
    """``PPOTrainer.init()`` with the stand-ins: ``_setup`` on CPU, then ``on_init_end``.

    Mirrors ``_setup``: tokenizer, dataloaders, dump executor, worker groups, reward-loop
    manager (streaming: the agent loop sets ``reward_score``), server manager, checkpoint
    engine manager, ``sleep_replicas`` + veRL's own ``_load_checkpoint`` (resume).
    """
    trainer._init_tokenizer()
    trainer._init_dataloader()
    trainer._init_dump_executor()
    trainer.resource_pool_manager = _ResourcePools()
    trainer.ref_in_actor = False
    actor = StubWorkerGroup(model_dir, trainer.config)
    trainer.actor_rollout_wg = actor
    ref = None
    if trainer.use_reference_policy:
        ref = StubWorkerGroup(model_dir, trainer.config, frozen=True)
        trainer.ref_policy_wg = ref
    for group in (actor, ref):
        if group is not None:
            group.clock = lambda: getattr(trainer, "global_steps", 0)
    trainer.reward_loop_manager = SimpleNamespace(reward_loop_worker_handles=[])
    trainer.teacher_model_manager = None
    trainer.distillation_config = None
    client = RolloutClient(str(model_dir), str(weights_dir))
    trainer.llm_server_manager = _ServerManager(client)
    sync = WeightSync(actor, weights_dir)
    trainer.checkpoint_manager = sync
    sync.sleep_replicas()
    trainer._load_checkpoint()
    trainer.on_init_end()
    return SimpleNamespace(actor=actor, ref=ref, sync=sync, client=client)


def agent_loop_manager(trainer: Any) -> Any:
    """What ``TaskRunnerV1.init_agent_loop_manager`` builds: veRL's ``AgentLoopManagerTQ``
    with real Ray ``AgentLoopWorkerTQ`` actors."""
    from verl.trainer.ppo.v1 import AgentLoopManagerTQ

    return AgentLoopManagerTQ.create(
        config=trainer.config,
        llm_client=trainer.get_llm_client(),
        teacher_client=trainer.get_teacher_client(),
        reward_loop_worker_handles=trainer.get_reward_handles(),
    )


def fit_config(
    tmp_path: Path,
    model: Path,
    data: Path,
    cache: Path | None,
    extra: list[str],
    *,
    workers: int = 1,
) -> Any:
    """configs/verl/search.yaml scaled to CPU: 2 tasks x group 2 per step, 2 turns of up to
    8 tokens, ``workers`` agent-loop workers; the co-evolution actor keeps its run-scoped
    name. ``data``: ``reskill verl prepare``'s folder; ``cache``: the search corpus's cache
    folder (None: each worker's ``$RESKILL_CACHE``, as on a cluster without the override)."""
    from verl_harness import AGENT_LOOPS_YAML, compose  # not at import: pickled by value

    return compose(
        "search",
        [
            f"actor_rollout_ref.model.path={model}",
            f"data.train_files={data / 'train.parquet'}",
            f"data.val_files={data / 'val.parquet'}",
            "data.train_batch_size=2",
            "data.val_batch_size=2",
            "data.dataloader_num_workers=0",
            "data.max_prompt_length=1024",
            "actor_rollout_ref.rollout.n=2",
            "actor_rollout_ref.actor.ppo_mini_batch_size=1",
            "actor_rollout_ref.actor.optim.lr=1e-3",
            f"actor_rollout_ref.rollout.agent.num_workers={workers}",
            f"actor_rollout_ref.rollout.agent.agent_loop_config_path={AGENT_LOOPS_YAML}",
            "trainer.logger=[console]",
            "trainer.n_gpus_per_node=1",
            "trainer.val_before_train=false",
            f"trainer.default_local_dir={tmp_path / 'ckpt'}",
            *([f"+reskill.env_kwargs.cache_dir={cache}"] if cache is not None else []),
            "reskill.env_kwargs.max_turns=2",
            "reskill.max_turns=2",
            "reskill.max_tokens_per_turn=8",
            *extra,
        ],
    )


def start_transfer_queue() -> Any:
    """A real TransferQueue (controller + one storage unit) on the connected Ray; this module
    travels to the Ray workers by value (they run its rollout client). ``tq.close()`` ends it."""
    import transfer_queue as tq
    from omegaconf import OmegaConf
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    tq.init(
        OmegaConf.create(
            {
                "backend": {
                    "SimpleStorage": {"num_data_storage_units": 1, "total_storage_size": 4000}
                }
            }
        )
    )
    return tq


@dataclass
class FitRun:
    """One ``fit`` (as ``TaskRunnerV1.run`` drives it) and what it left."""

    trainer: Any
    stubs: SimpleNamespace
    manager: Any
    logged: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    error: BaseException | None = None

    def metric(self, step: int, key: str) -> float:
        """``key`` as the logger received it at ``step`` (KeyError if it was not logged)."""
        for s, m in self.logged:
            if s == step and key in m:
                return float(m[key])
        raise KeyError(f"{key} not logged at step {step}")

    def kill(self) -> None:
        """What a killed job leaves behind is gone: its Ray workers (agent loops, the
        co-evolution actor) and the TransferQueue contents."""
        import ray
        import transfer_queue as tq

        for worker in self.manager.agent_loop_workers:
            ray.kill(worker)
        if self.trainer.reskill_hook is not None:
            ray.kill(self.trainer.reskill_hook.actor)
        for partition, items in (tq.kv_list() or {}).items():
            if items:
                tq.kv_clear(keys=list(items), partition_id=partition)


def run_fit(config: Any, weights_dir: Path, *, crash_at_update: int | None = None) -> FitRun:
    """Build the trainer as ``TaskRunnerV1.run`` does (``get_trainer_cls``, ``init`` with the
    stand-ins, ``AgentLoopManagerTQ.create``) and run ``fit``; the metrics each
    ``Tracking.log`` call received are kept. An exception from ``fit`` is kept in ``error``."""
    import verl.trainer.ppo.v1.trainer_base as trainer_base
    from verl.trainer.ppo.v1 import get_trainer_cls

    trainer = get_trainer_cls(config.trainer.v1.trainer_mode)(config)
    stubs = setup_trainer(trainer, Path(config.actor_rollout_ref.model.path), weights_dir)
    stubs.actor.crash_at_update = crash_at_update
    run = FitRun(trainer, stubs, agent_loop_manager(trainer))
    tracking = trainer_base.Tracking

    class RecordingTracking(tracking):  # type: ignore[misc, valid-type]
        def log(self, data: dict, step: int, *args: Any, **kwargs: Any) -> None:
            run.logged.append((int(step), dict(data)))
            super().log(data, step, *args, **kwargs)

    trainer_base.Tracking = RecordingTracking
    try:
        trainer.fit(run.manager)
    except Exception as exc:
        run.error = exc
    finally:
        trainer_base.Tracking = tracking
    return run
