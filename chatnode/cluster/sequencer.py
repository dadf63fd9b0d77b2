"""Messages of each conversation applied strictly in seq order, whichever node committed them.

Two nodes commit seq 5 and 6 of one conversation and the bus may hand them over as 6, then 5;
this node may even commit seq 7 itself while 6 is still on the bus. Every message, local or
remote, goes through here before the engine takes it in and the hub fans it out: one at
applied+1 is delivered and releases whatever waits behind it; one at or below applied is a
duplicate and dropped; one above waits. A gap that is not filled within GAP_DEADLINE_S is read
from the store (the log is the truth, the bus only makes it fast) and `fill` delivers it.

Like the engine, a plain object with no I/O: the caller owns the clock and the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import Message
from ..store import CatchupRange

# How long a later seq waits for the missing ones before they are read from the store. A fact
# crosses Redis in well under a millisecond on a LAN; a quarter second covers a busy node's
# scheduling without making a lost fact (Redis restarted) a visible stall.
GAP_DEADLINE_S = 0.25

# What the caller attaches to a message (who must not get it, an explicit audience); handed
# back untouched with the message when it is delivered.
Extra = Any
Deliver = Callable[[Message, Extra], None]


@dataclass(slots=True)
class _Line:
    applied: int
    # seq -> the message, its extra, and when it arrived (the caller's clock)
    waiting: dict[int, tuple[Message, Extra, float]] = field(default_factory=dict)


class Sequencer:
    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._lines: dict[str, _Line] = {}

    def start(self, conversation_id: str, applied: int) -> None:
        """Messages of this conversation up to `applied` are already taken in (the store's
        last_seq when this node learned the conversation); later starts change nothing."""
        if conversation_id not in self._lines:
            self._lines[conversation_id] = _Line(applied)

    def knows(self, conversation_id: str) -> bool:
        return conversation_id in self._lines

    def applied(self, conversation_id: str) -> int:
        line = self._lines.get(conversation_id)
        return 0 if line is None else line.applied

    def offer(self, message: Message, extra: Extra = None, now: float = 0.0) -> bool:
        """Take a committed message, arrived at `now`; True when it opened a gap: it waits,
        and nothing of its conversation waited before."""
        line = self._lines.get(message.conversation_id)
        if line is None:
            line = self._lines[message.conversation_id] = _Line(message.seq - 1)
        if message.seq <= line.applied:
            return False
        if message.seq > line.applied + 1:
            opened = not line.waiting
            line.waiting.setdefault(message.seq, (message, extra, now))
            return opened
        self._deliver(message, extra)
        line.applied = message.seq
        self._release(line)
        return False

    def _release(self, line: _Line) -> None:
        while line.waiting:
            entry = line.waiting.pop(line.applied + 1, None)
            if entry is None:
                return
            message, extra, _ = entry
            self._deliver(message, extra)
            line.applied = message.seq

    def gap(self, conversation_id: str) -> CatchupRange | None:
        """The seqs still missing before the highest one waiting, as a store range."""
        line = self._lines.get(conversation_id)
        if line is None or not line.waiting:
            return None
        return CatchupRange(conversation_id, line.applied, max(line.waiting))

    def gap_since(self, conversation_id: str) -> float:
        """Since when the gap's first missing seq has been known to be missing: the arrival of
        the earliest message still waiting (each waits above it). Once part of a gap is
        filled, what is left is as old as the messages still waiting, not as the gap was.
        Meaningful only while `gap` is not None."""
        line = self._lines.get(conversation_id)
        waiting = () if line is None else line.waiting.values()
        return min((arrived for _, _, arrived in waiting), default=0.0)

    def behind(self, conversation_id: str, last_seq: int) -> CatchupRange | None:
        """The range between what was applied and the store's `last_seq` (after the bus was
        down, facts may be lost with nothing later to reveal the gap)."""
        line = self._lines.get(conversation_id)
        if line is None or last_seq <= line.applied:
            return None
        return CatchupRange(conversation_id, line.applied, last_seq)

    def fill(self, messages: Iterable[Message]) -> None:
        """Messages read from the store, in ascending seq per conversation: applied in order,
        with whatever waits behind them. A waiting copy of the same seq keeps its extra (the
        local origin of a send, say); otherwise the store's copy goes with no extra."""
        for message in messages:
            line = self._lines.get(message.conversation_id)
            if line is None or message.seq <= line.applied:
                continue
            if message.seq != line.applied + 1:
                continue  # never skip: a later fill brings the rest
            waited = line.waiting.pop(message.seq, None)
            self._deliver(message, None if waited is None else waited[1])
            line.applied = message.seq
            self._release(line)
