"""The single retry policy of all backends: exponential backoff with jitter, Retry-After aware.

Exports ``RetryPolicy`` and ``parse_retry_after``.

The SDKs' own retries are switched off (``max_retries=0``) so this is the only policy, it is
the same for every backend, and tests can drive it through a real server.

>>> p = RetryPolicy(max_retries=3, base_s=1.0, max_s=8.0, seed=0)
>>> [round(p.delay(a), 2) <= min(8.0, 2 ** a) for a in range(5)]
[True, True, True, True, True]
>>> p.delay(0, retry_after=5.0)
5.0
>>> parse_retry_after({"retry-after-ms": "250"}), parse_retry_after({"Retry-After": "3"})
(0.25, 3.0)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    """Delay before retry ``attempt`` (0-based): ``uniform(0.5, 1) * min(max_s, base_s * 2**attempt)``,
    or the server's Retry-After (clipped to ``max_retry_after_s``) when that is longer.
    """

    max_retries: int = 5
    base_s: float = 1.0
    max_s: float = 30.0
    max_retry_after_s: float = 120.0
    seed: int | None = None
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.max_s, self.base_s * (2**attempt)) * self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after_s))
        return backoff
