"""Keyed one-shot timers on trio deadlines: one task, a heap, no polling loop.

The task sleeps until the earliest deadline (or until an earlier one is added), runs what is
due, and sleeps again. Setting a key again replaces its pending timer; cancelling forgets it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Hashable

import trio

from .logs import fields

log = logging.getLogger("chatnode.timers")


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._pending: dict[Hashable, tuple[int, Callable[[], None]]] = {}
        self._counter = itertools.count()
        self._wake = trio.Event()

    def call_later(self, delay: float, key: Hashable, fn: Callable[[], None]) -> None:
        """Run `fn` in `delay` seconds, replacing any timer pending under `key`."""
        token = next(self._counter)
        self._pending[key] = (token, fn)
        heapq.heappush(self._heap, (trio.current_time() + delay, token, key))
        self._wake.set()

    def cancel(self, key: Hashable) -> bool:
        """Forget the timer under `key`; True if one was pending."""
        return self._pending.pop(key, None) is not None

    def pending(self, key: Hashable) -> bool:
        return key in self._pending

    async def run(self) -> None:
        while True:
            deadline = self._heap[0][0] if self._heap else float("inf")
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                _, token, key = heapq.heappop(self._heap)
                entry = self._pending.get(key)
                if entry is None or entry[0] != token:
                    continue  # replaced or cancelled since
                del self._pending[key]
                try:
                    entry[1]()
                except Exception:
                    log.exception("timer failed", extra=fields(timer=repr(key)))
