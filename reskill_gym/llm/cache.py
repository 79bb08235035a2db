"""On-disk response cache, so a resumed creator or eval run does not pay twice for a prompt.

Exports ``ResponseCache``, ``cache_key`` and ``cache_root``.

``cache_root()`` is the one place every cache of the project lives under: ``$RESKILL_CACHE``,
else ``~/.cache/reskill-gym`` (generated ALFWorld games, the search corpus, converted GGUF
models, GGUF files assembled from chunk packages). ``RESKILL_CACHE_DIR``, read by older
versions for converted models, is no longer read; a warning says so when it is set alone.

One JSON file per answer under ``<dir>/<key[:2]>/<key>.json``; the key is the SHA-256 of the
canonical JSON of (backend, model, messages, schema, parameters). Writes are atomic (temp
file + fsync + rename), so a crash leaves either the old state or the full entry, and
several threads or processes can share one directory. A corrupt entry is logged and treated
as a miss.

>>> import tempfile
>>> cache = ResponseCache(tempfile.mkdtemp())
>>> k = cache_key({"backend": "openai", "model": "m", "messages": [["user", "hi"]]})
>>> cache.get(k) is None
True
>>> cache.put(k, {"text": "hello"})
>>> cache.get(k)["text"]
'hello'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_json

__all__ = ["ResponseCache", "cache_key", "cache_root"]

log = logging.getLogger(__name__)

_warned_legacy = False


def cache_root() -> Path:
    """``$RESKILL_CACHE``, else ``~/.cache/reskill-gym`` (not created here).

    >>> import os
    >>> saved = os.environ.get("RESKILL_CACHE")
    >>> os.environ["RESKILL_CACHE"] = "/srv/cache"
    >>> str(cache_root())
    '/srv/cache'
    >>> if saved is None: del os.environ["RESKILL_CACHE"]
    ... else: os.environ["RESKILL_CACHE"] = saved
    """
    global _warned_legacy
    root = os.environ.get("RESKILL_CACHE")
    if not root and os.environ.get("RESKILL_CACHE_DIR") and not _warned_legacy:
        _warned_legacy = True
        log.warning(
            "RESKILL_CACHE_DIR is no longer read; set RESKILL_CACHE (one root for every cache)"
        )
    return Path(root).expanduser() if root else Path.home() / ".cache" / "reskill-gym"


def cache_key(material: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``material`` (sorted keys, no whitespace)."""
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A directory of cached answers keyed by ``cache_key``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache key must be 64 lowercase hex chars, got {key!r}")
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        try:
            data = json.loads(safe_files.read_text(p))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("llm cache: ignoring unreadable entry %s (%s)", p, e)
            return None
        if not isinstance(data, dict):
            log.warning("llm cache: ignoring entry %s (not a JSON object)", p)
            return None
        return data

    def put(self, key: str, value: dict[str, Any]) -> None:
        atomic_write_json(self.path(key), value, ensure_ascii=False, sort_keys=True)

    def __len__(self) -> int:
        shards = safe_files.list_folder(
            self.directory, links="skip", special="skip", match="??", missing_ok=True
        )
        return sum(
            len(safe_files.list_folder(d.path, links="skip", special="skip", match="*.json"))
            for d in shards
            if d.kind == "folder"
        )
