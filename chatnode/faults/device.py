"""A chatting device for the fault scripts (kill9, soak).

It sends at a steady pace, acknowledges what it receives, keeps a replica of everything it was
told, reconnects whenever the node goes away (resending its unacknowledged messages with their
client_msg_id, saying hello with its sync map), and writes down every promise of PROTOCOL.md it
sees broken. The scripts compare the replicas with the log afterwards.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import trio
from trio_websocket import ConnectionClosed, HandshakeError

from ..client import Frame, Session, connect

# (sender_id, client_msg_id, kind, body): what must be the same wherever a message is seen.
Content = tuple[str, str, str, str]
# (last_seq, last_delivered_seq, last_read_seq, my_read_seq) of one status_update.
Status = tuple[int, int, int, int]


@dataclass
class Account:
    username: str
    user_id: str
    token: str


@dataclass
class Load:
    """What every device of a run is asked to do; the script flips it."""

    sends_per_s: float  # per device
    sending: bool = True
    stopping: bool = False
    # The soak's connection churn: each connection of a device lasts this long on average
    # before it leaves on its own (None: stay until the node goes away).
    churn_s: float | None = None


@dataclass
class Device:
    name: str
    account: Account
    conversations: list[str]  # the ones it is a member of, all created before the run
    rng: random.Random
    replica: dict[str, dict[int, Content]] = field(default_factory=lambda: defaultdict(dict))
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # client_msg_id -> where
    outbox: dict[str, tuple[str, str]] = field(default_factory=dict)  # not yet acked, in order
    status: dict[str, Status] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    connections: int = 0
    latencies_s: list[float] = field(default_factory=list)  # send -> sent, since last asked
    _sent_at: dict[str, float] = field(default_factory=dict)
    last_frame_at: float = 0.0  # trio clock
    _counter: int = 0
    _trace: list[tuple[object, ...]] = field(default_factory=list)  # for the violation report
    _session: Session | None = None
    _connection_scope: trio.CancelScope | None = None

    @property
    def connected(self) -> bool:
        return self._session is not None

    def drop(self) -> None:
        """Leave the current connection at once, as a phone losing its network does; `run`
        comes back by itself (the soak's reconnect storms)."""
        if self._connection_scope is not None:
            self._connection_scope.cancel()

    def sync_map(self) -> dict[str, int]:
        """The highest seq of each conversation below which the replica has everything."""
        sync = {}
        for cid in self.conversations:
            have = self.replica[cid]
            seq = 0
            while seq + 1 in have:
                seq += 1
            sync[cid] = seq
        return sync

    async def run(self, url: str, load: Load) -> None:
        """Stay connected, through kills and restarts, until the load says stop."""
        while not load.stopping:
            try:
                with trio.CancelScope() as self._connection_scope:
                    await self._one_connection(url, load)
            except* (ConnectionClosed, HandshakeError, OSError, trio.TooSlowError):
                pass  # the node went away (killed, restarting): come back
            finally:
                self._session = self._connection_scope = None
            if not load.stopping:
                await trio.sleep(self.rng.uniform(0.05, 0.3))

    async def _one_connection(self, url: str, load: Load) -> None:
        sync = self.sync_map()
        async with connect(url, self.account.token, sync=sync) as (session, frames):
            self.connections += 1
            # The connection starts where the hello said the replica ends: every message frame
            # of a conversation must come next, from the catch-up on.
            seen = dict(sync)
            self._trace = []
            for frame in frames:
                await self._absorb(session, frame, seen)
            self._session = session
            lifetime = self.rng.expovariate(1 / load.churn_s) if load.churn_s else float("inf")
            with trio.move_on_after(lifetime):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, session, seen)
                    for cmid, (cid, body) in list(self.outbox.items()):
                        await self._send(session, cid, body, cmid)
                    await self._chat(session, load)
                    nursery.cancel_scope.cancel()

    async def _chat(self, session: Session, load: Load) -> None:
        while not load.stopping:
            if load.sending and load.sends_per_s > 0:
                await trio.sleep(self.rng.expovariate(load.sends_per_s))
                if load.sending and not load.stopping:
                    self._counter += 1
                    cmid = f"{self.name}-{self._counter}"
                    cid = self.rng.choice(self.conversations)
                    body = f"{self.name} #{self._counter} {'x' * self.rng.randrange(200)}"
                    self.outbox[cmid] = (cid, body)
                    await self._send(session, cid, body, cmid)
            else:
                await trio.sleep(0.05)

    async def _send(self, session: Session, cid: str, body: str, cmid: str) -> None:
        self._sent_at.setdefault(cmid, trio.current_time())
        await session.send({"type": "send", "conversation_id": cid, "client_msg_id": cmid,
                            "body": body})

    async def _read(self, session: Session, seen: dict[str, int]) -> None:
        while True:
            frame = await session.recv(timeout=3600)
            await self._absorb(session, frame, seen)

    async def _absorb(self, session: Session, frame: Frame, seen: dict[str, int]) -> None:
        """Take in one frame; `seen` is the last seq of each conversation on this connection."""
        self.last_frame_at = trio.current_time()
        kind = frame["type"]
        self._trace = [*self._trace[-11:], (kind, frame.get("conversation_id", "")[-4:],
                                             frame.get("seq"))]
        if kind == "message":
            cid, seq = frame["conversation_id"], frame["seq"]
            if seq != seen[cid] + 1:
                self._broken(f"message {cid}#{seq} after #{seen[cid]} on one connection")
            seen[cid] = seq
            self._remember(cid, seq, (frame["sender_id"], frame["client_msg_id"], frame["kind"],
                                      frame["body"]))
            await session.delivered(cid, seq)
            if self.rng.random() < 0.3:
                await session.read(cid, seq)
        elif kind == "sent":
            cmid, cid, seq = frame["client_msg_id"], frame["conversation_id"], frame["seq"]
            if cmid in self.acked and self.acked[cmid] != (cid, seq):
                self._broken(f"{cmid} acked as {cid}#{seq}, earlier as {self.acked[cmid]}")
            self.acked[cmid] = (cid, seq)
            # Its own messages come back as `sent`, in the same order as the others' `message`;
            # a retry's `sent` names its original seq, which the replica or the catch-up
            # already holds.
            if seq > seen[cid] + 1:
                self._broken(f"sent {cid}#{seq} after #{seen[cid]} on one connection")
            seen[cid] = max(seen[cid], seq)
            queued = self.outbox.pop(cmid, None)
            if queued is not None:
                self._remember(cid, seq, (self.account.user_id, cmid, "text", queued[1]))
                started = self._sent_at.pop(cmid, None)
                if started is not None:
                    self.latencies_s.append(trio.current_time() - started)
        elif kind == "status_update":
            cid = frame["conversation_id"]
            new: Status = (frame["last_seq"], frame["last_delivered_seq"],
                           frame["last_read_seq"], frame["my_read_seq"])
            old = self.status.get(cid)
            if old is not None and any(n < o for n, o in zip(new, old, strict=True)):
                self._broken(f"status of {cid} went back from {old} to {new}")
            self.status[cid] = new
        elif kind == "error":
            self._broken(f"error frame {frame}")

    def _remember(self, cid: str, seq: int, content: Content) -> None:
        known = self.replica[cid].get(seq)
        if known is not None and known != content:
            self._broken(f"{cid}#{seq} was {known}, now {content}")
        self.replica[cid][seq] = content

    def _broken(self, what: str) -> None:
        self.violations.append(f"{self.name}: {what} (connection {self.connections},"
                               f" its last frames: {self._trace})")
