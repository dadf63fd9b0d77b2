"""One session of the load: it sends time-stamped messages, and checks, times and acknowledges
what arrives. The checks are the point: a bench that is fast but loses a message fails."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Literal

import msgspec
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from ..client import Session, connect, ws_url

Ack = Literal["each", "batched", "none"]
BATCHED_ACK_EVERY_S = 0.2
KEEPALIVE_S = 10.0


class Peer:
    def __init__(self, token: str, ack: Ack) -> None:
        self.token = token
        self.ack = ack
        self.session: Session | None = None
        self.user_id = ""
        self.counter = 0
        self.sent_at: dict[str, int] = {}  # client_msg_id -> monotonic ns, until `sent`
        self.own: defaultdict[str, list[int]] = defaultdict(list)  # conversation -> own seqs
        self.received: defaultdict[str, set[int]] = defaultdict(set)  # others' seqs
        self.duplicates = 0
        self.e2e_ns: list[int] = []
        self.sent_ns: list[int] = []
        self.marker: dict[str, int] = {}  # conversation -> last_delivered_seq shown to us
        self.to_ack: dict[str, int] = {}
        self.errors: list[dict[str, Any]] = []
        self.window: trio.Semaphore | None = None

    @property
    def unacknowledged(self) -> int:
        return len(self.sent_at)

    def last_seq(self, conversation_id: str) -> int:
        return max([*self.own[conversation_id], *self.received[conversation_id], 0])

    async def run(self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with connect(url, self.token) as (session, _):
            self.session = session
            self.user_id = session.welcome["user_id"]
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_alive)
                if self.ack == "batched":
                    nursery.start_soon(self._ack_batches)
                await self._read()

    async def send_stamped(self, conversation_id: str) -> None:
        assert self.session is not None
        client_msg_id = f"b{self.counter}"
        self.counter += 1
        now = time.monotonic_ns()
        self.sent_at[client_msg_id] = now
        # Shielded: a send cut off half-way by the end of the run would count as never
        # acknowledged, a fault of the bench and not of the node.
        with trio.CancelScope(shield=True):
            await self.session.send({"type": "send", "conversation_id": conversation_id,
                                     "client_msg_id": client_msg_id, "body": str(now)})

    async def pipeline(self, conversation_id: str, window: int) -> None:
        """Keep `window` sends in flight: the next goes out when a `sent` comes back."""
        self.window = trio.Semaphore(window)
        while True:
            await self.window.acquire()
            await self.send_stamped(conversation_id)

    async def _read(self) -> None:
        assert self.session is not None
        ws = self.session.ws
        while True:
            frame = msgspec.json.decode(await ws.get_message())
            kind = frame["type"]
            if kind == "message":
                await self._on_message(frame)
            elif kind == "sent":
                self._on_sent(frame)
            elif kind == "status_update":
                cid = frame["conversation_id"]
                self.marker[cid] = max(self.marker.get(cid, 0), frame["last_delivered_seq"])
            elif kind == "error":
                self.errors.append(frame)

    def _on_sent(self, frame: dict[str, Any]) -> None:
        started = self.sent_at.pop(frame["client_msg_id"], None)
        if started is None:
            self.errors.append({"unexpected sent": frame})
            return
        self.sent_ns.append(time.monotonic_ns() - started)
        self.own[frame["conversation_id"]].append(frame["seq"])
        if self.window is not None:
            self.window.release()

    async def _on_message(self, frame: dict[str, Any]) -> None:
        cid, seq = frame["conversation_id"], frame["seq"]
        if seq in self.received[cid]:
            self.duplicates += 1
            return
        self.received[cid].add(seq)
        if frame["body"].isdigit():
            self.e2e_ns.append(time.monotonic_ns() - int(frame["body"]))
        if self.ack == "each":
            assert self.session is not None
            await self.session.delivered(cid, seq)
        elif self.ack == "batched":
            self.to_ack[cid] = max(seq, self.to_ack.get(cid, 0))

    async def _ack_batches(self) -> None:
        assert self.session is not None
        while True:
            await trio.sleep(BATCHED_ACK_EVERY_S)
            batch, self.to_ack = self.to_ack, {}
            for cid, seq in batch.items():
                await self.session.delivered(cid, seq)

    async def _keep_alive(self) -> None:
        assert self.session is not None
        while True:
            await trio.sleep(KEEPALIVE_S)
            await self.session.send({"type": "ping"})

    def gaps(self) -> int:
        """Conversations whose seqs, own and received, are not one run with no hole."""
        count = 0
        for cid in set(self.own) | set(self.received):
            seqs = set(self.own[cid]) | self.received[cid]
            if seqs and len(seqs) != max(seqs) - min(seqs) + 1:
                count += 1
        return count

    @staticmethod
    def report(peers: list[Peer]) -> dict[str, Any]:
        return {
            "sent": sum(len(s) for p in peers for s in p.own.values()),
            "received": [sum(len(r) for r in p.received.values()) for p in peers],
            "own": [sum(len(s) for s in p.own.values()) for p in peers],
            "duplicated": sum(p.duplicates for p in peers),
            "unacknowledged": sum(p.unacknowledged for p in peers),
            "gaps": sum(p.gaps() for p in peers),
            "errors": [e for p in peers for e in p.errors][:5],
            "error_count": sum(len(p.errors) for p in peers),
            "e2e_ns": [x for p in peers for x in p.e2e_ns],
            "sent_ns": [x for p in peers for x in p.sent_ns],
        }


class EchoPeer:
    """A session of the echo server: numbered frames out, the same frames back in order."""

    def __init__(self) -> None:
        self.ws: WebSocketConnection | None = None
        self.sent = 0
        self.echoed = 0
        self.wrong = 0  # echoes missing, doubled or out of order
        self.sent_at: dict[int, int] = {}
        self.rtt_ns: list[int] = []
        self.bursts = 0
        self.burst_frames = 0

    @property
    def waiting(self) -> int:
        return len(self.sent_at)

    async def ask_burst(self, frames: int) -> None:
        assert self.ws is not None
        self.bursts += 1
        await self.ws.send_message(f"burst:{frames}")

    async def run(self, url: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with open_websocket_url(ws_url(url)) as ws:
            self.ws = ws
            # One round trip before the session counts as open, as hello → synced does.
            await self.send()
            self._take(await ws.get_message())
            self.sent = self.echoed = 0
            self.rtt_ns.clear()
            task_status.started()
            while True:
                self._take(await ws.get_message())

    def _take(self, data: str | bytes) -> None:
        frame = msgspec.json.decode(data)
        if frame["type"] == "message":
            self.burst_frames += 1
            return
        number = int(frame["client_msg_id"])
        started = self.sent_at.pop(number, None)
        if started is None or number != self.echoed + 1:
            self.wrong += 1
            return
        self.echoed += 1
        self.rtt_ns.append(time.monotonic_ns() - started)

    async def send(self) -> None:
        assert self.ws is not None
        self.sent += 1
        now = time.monotonic_ns()
        self.sent_at[self.sent] = now
        # The size and shape of a chat `send` frame.
        await self.ws.send_message(msgspec.json.encode({
            "type": "send", "conversation_id": "c_0123456789abcdef0123",
            "client_msg_id": str(self.sent), "body": str(now)}).decode())
