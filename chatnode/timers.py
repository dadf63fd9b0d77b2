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

COMPACT_SLACK = 64


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._pending: dict[Hashable, tuple[int, float, Callable[[], None]]] = {}
        self._counter = itertools.count()
        self._wake = trio.Event()

    def call_later(self, delay: float, key: Hashable, fn: Callable[[], None]) -> None:
        """Run `fn` in `delay` seconds, replacing any timer pending under `key`."""
        token = next(self._counter)
        deadline = trio.current_time() + delay
        self._pending[key] = (token, deadline, fn)
        if len(self._heap) > 2 * len(self._pending) + COMPACT_SLACK:
            # A key set again and again (a client flooding `typing`) leaves its replaced
            # entries in the heap until their deadlines: rebuild it from what is pending, so
            # the heap stays the size of the pending timers whatever the rate.
            self._heap = [(d, t, k) for k, (t, d, _) in self._pending.items()]
            heapq.heapify(self._heap)
        else:
            heapq.heappush(self._heap, (deadline, token, key))
        if self._heap[0][1] == token:  # a new earliest deadline: the task must sleep less
            self._wake.set()

    @property
    def heap_entries(self) -> int:
        """Entries in the heap, replaced ones included: bounded by the pending timers (the
        test of that bound reads it)."""
        return len(self._heap)

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
                    entry[2]()
                except Exception:
                    log.exception("timer failed", extra=fields(timer=repr(key)))
