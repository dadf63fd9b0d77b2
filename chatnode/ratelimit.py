"""Token buckets per key (a user's sends, an address's logins): `burst` tokens refilled at
`per_second`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .logs import fields

log = logging.getLogger("chatnode.ratelimit")


class RateLimiter:
    def __init__(self, per_second: float, burst: int,
                 clock: Callable[[], float] = time.monotonic, *, name: str = "rate") -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.name = name
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        # Keys refused since their last allowed take: a client hammering a limit is logged
        # once per run of refusals, not once per request.
        self._refusing: set[str] = set()

    def take(self, key: str) -> int | None:
        """Take a token: None when allowed, else the milliseconds until one is free.
        A rate of 0 turns the limit off."""
        if self.per_second <= 0:
            return None
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            if key not in self._refusing:
                self._refusing.add(key)
                log.info("rate limit hit", extra=fields(limit=self.name, key=key))
            return max(1, int((1 - tokens) / self.per_second * 1000 + 0.999))
        self._buckets[key] = (tokens - 1, now)
        self._refusing.discard(key)
        return None
