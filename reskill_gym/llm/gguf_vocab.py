"""A GGUF file's header and a Hugging Face tokenizer that splits text as llama.cpp does.

Exports ``read_gguf_metadata``, ``gguf_tokenizer``, ``spm_tokenizer_from_metadata`` and
``TOKEN_TYPES``.

Why our own tokenizer for SentencePiece vocabularies: transformers turns a GGUF vocabulary of
type ``llama`` (SentencePiece: Gemma, Llama 2, TinyLlama, Mistral) into a tokenizer that does
not split like the model was trained. For Gemma 3 it builds a Unigram model from scores that
are BPE merge priorities ("go to countertop 1": 9 tokens instead of llama.cpp's 5), and its
``save_pretrained`` copy reloads character-level (18 tokens). ``spm_tokenizer_from_metadata``
rebuilds the tokenizer the way SentencePiece BPE and llama.cpp's SPM tokenizer work: a BPE whose
merges are ranked by the score of the piece they produce, byte fallback, spaces written as
``▁`` (plus a leading ``▁`` when ``add_space_prefix``), control tokens special, user-defined
tokens (Gemma's runs of spaces and newlines) matched before the model. On Gemma 3 270M it gives
llama.cpp's ids for every probe text, README-length files included. BPE vocabularies of type
``gpt2`` (SmolLM2, Qwen2.5) keep transformers' conversion, which matches llama.cpp there.

``read_gguf_metadata`` reads only the key/value header (no tensors) with ``struct``: the
``gguf`` package's reader builds one numpy view per array element and takes ~25 s on a
262k-token vocabulary; this takes well under a second.

>>> import tempfile, struct, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.gguf"
>>> key, val = b"general.name", b"tiny"
>>> blob = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
>>> _ = p.write_bytes(blob + struct.pack("<IQ", 8, len(val)) + val)
>>> read_gguf_metadata(p)
{'GGUF.version': 3, 'general.name': 'tiny'}
"""

from __future__ import annotations

import logging
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

from reskill_gym import safe_files
from reskill_gym.llm.errors import LLMConfigError

__all__ = [
    "read_gguf_metadata",
    "gguf_tokenizer",
    "spm_tokenizer_from_metadata",
    "TOKEN_TYPES",
]

log = logging.getLogger(__name__)

TOKEN_TYPES = {"normal": 1, "unknown": 2, "control": 3, "user_defined": 4, "unused": 5, "byte": 6}
"""``tokenizer.ggml.token_type`` values (llama.cpp's ``llama_token_type``)."""

_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_NUMPY = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "?",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise LLMConfigError(f"GGUF file {self.path} is truncated inside its header")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        raw = bytes(self.buf[self.pos : self.pos + n])
        if len(raw) != n:
            raise LLMConfigError(f"GGUF file {self.path} is truncated inside its header")
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if etype in _NUMPY:
                dt = np.dtype(_NUMPY[etype])
                end = self.pos + dt.itemsize * count
                if end > len(self.buf):
                    raise LLMConfigError(f"GGUF file {self.path} is truncated inside its header")
                arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos).copy()
                self.pos = end
                return arr
            return [self.value(etype) for _ in range(count)]
        raise LLMConfigError(f"GGUF file {self.path}: unknown metadata value type {vtype}")


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """Every key/value of a GGUF (v2/v3) header, plus ``GGUF.version``.

    Numeric arrays come back as numpy arrays, string arrays as lists. Raises
    ``LLMConfigError`` naming the file when it is not a little-endian GGUF v2/v3 file.
    """
    p = Path(path)
    try:
        with (
            safe_files.open_regular(p, follow_links=True) as fh,
            mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            if mm[:4] != b"GGUF":
                raise LLMConfigError(f"{p} is not a GGUF file (starts with {bytes(mm[:4])!r})")
            cur = _Cursor(mm, p)
            cur.pos = 4
            version = cur.unpack("<I")
            if version not in (2, 3):
                raise LLMConfigError(
                    f"GGUF file {p}: version {version} is not supported (2 or 3; a big-endian "
                    "file also shows up here)"
                )
            cur.unpack("<Q")  # tensor count
            n_kv = cur.unpack("<Q")
            out: dict[str, Any] = {"GGUF.version": version}
            for _ in range(n_kv):
                key = cur.string()
                out[key] = cur.value(cur.unpack("<I"))
            return out
    except (OSError, ValueError) as e:  # ValueError: mmap of an empty file
        raise LLMConfigError(f"cannot read GGUF file {p}: {e}") from e


def spm_tokenizer_from_metadata(meta: dict[str, Any], *, source: str = "GGUF") -> Any:
    """A ``PreTrainedTokenizerFast`` for a SentencePiece (``tokenizer.ggml.model == 'llama'``)
    GGUF vocabulary that splits text exactly as llama.cpp does (see the module docstring)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    try:
        tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
        scores = np.asarray(meta["tokenizer.ggml.scores"], dtype=np.float64)
    except KeyError as e:
        raise LLMConfigError(f"{source}: SentencePiece vocabulary without {e.args[0]}") from None
    types = np.asarray(
        meta.get("tokenizer.ggml.token_type", np.full(len(tokens), 1)), dtype=np.int64
    )
    if not (len(tokens) == len(scores) == len(types)):
        raise LLMConfigError(
            f"{source}: tokenizer.ggml.tokens/scores/token_type have different lengths "
            f"({len(tokens)}, {len(scores)}, {len(types)})"
        )
    vocab: dict[str, int] = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    normal = TOKEN_TYPES["normal"]
    # A merge (a, b) exists when a + b is a normal piece; SentencePiece merges the adjacent pair
    # whose result scores highest, so rank merges by that score (ties: lower ids first, as
    # ``tokenizers``' SentencePiece extractor does).
    ranked: list[tuple[float, int, int, str, str]] = []
    for i, piece in enumerate(tokens):
        if types[i] != normal or len(piece) < 2:
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            il, ir = vocab.get(left), vocab.get(right)
            if il is not None and ir is not None:
                ranked.append((-float(scores[i]), il, ir, left, right))
    ranked.sort()
    unk_id = meta.get("tokenizer.ggml.unknown_token_id")
    unk = tokens[int(unk_id)] if unk_id is not None else None
    tk = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=[(r[3], r[4]) for r in ranked],
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    space_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    steps = [normalizers.Replace(" ", "▁")]
    if space_prefix:
        steps.insert(0, normalizers.Prepend("▁"))
    tk.normalizer = normalizers.Sequence(steps)
    dec = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if space_prefix:
        dec.append(decoders.Strip(" ", 1, 0))
    tk.decoder = decoders.Sequence(dec)
    control, user = TOKEN_TYPES["control"], TOKEN_TYPES["user_defined"]
    tk.add_tokens(
        [
            AddedToken(tokens[i], special=bool(types[i] == control), normalized=False)
            for i in range(len(tokens))
            if types[i] in (control, user)
        ]
    )

    def tok_of(key: str) -> str | None:
        idx = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[int(idx)] if idx is not None and 0 <= int(idx) < len(tokens) else None

    bos, eos = tok_of("bos"), tok_of("eos")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False)) and eos is not None
    if add_bos or add_eos:
        single = ([f"{bos}:0"] if add_bos else []) + ["$A:0"] + ([f"{eos}:0"] if add_eos else [])
        pair = single + ["$B:1"] + ([f"{eos}:1"] if add_eos else [])
        special = [(t, vocab[t]) for t in {bos, eos} if t is not None]
        tk.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=special
        )
    kwargs: dict[str, Any] = {
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "pad_token": tok_of("padding"),
        "chat_template": meta.get("tokenizer.chat_template") or None,
        "clean_up_tokenization_spaces": False,
    }
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, **{k: v for k, v in kwargs.items() if v is not None}
    )


def gguf_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a GGUF file, splitting text as llama.cpp does.

    SentencePiece vocabularies are rebuilt by :func:`spm_tokenizer_from_metadata`; BPE
    (``gpt2``) and other vocabularies use transformers' own GGUF conversion. The chat template
    stored in the file is kept either way.
    """
    p = Path(path)
    meta = read_gguf_metadata(p)
    kind = meta.get("tokenizer.ggml.model")
    if kind == "llama":
        log.info("llm local: SentencePiece vocabulary of %s rebuilt as llama.cpp splits it", p)
        return spm_tokenizer_from_metadata(meta, source=str(p))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    template = meta.get("tokenizer.chat_template")
    if template and not tok.chat_template:
        tok.chat_template = template
    return tok
