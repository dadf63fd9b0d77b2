"""The Redis bus: one pub/sub channel every node publishes its facts to and listens on, and
each node's presence hash.

Publishing never waits for Redis: a fact goes into a bounded queue and one publisher task
sends it. When Redis is down or the queue is full the fact is dropped, and that is fine because
the log is the truth and the bus only makes it fast: once the bus works again this node tells
the others (Resync) and every node rereads what it missed from the store. A node whose own
subscription broke does the same when it is back (on_reconnect).

Presence: each node keeps `PREFIX:presence:NODE` (a hash: one field per user online here, and
an empty field so it exists while nobody is) with a TTL of presence_ttl_s, refreshed every
third of it. A node that dies stops refreshing, and the others, polling, see the hash gone.
Polling rather than keyspace notifications: those need `notify-keyspace-events` set on the
server (off by default, and not allowed on some managed Redis), are lost while a subscriber is
disconnected, and an expiry fires only when Redis gets round to evicting the key; one EXISTS
per node every few seconds costs nothing and works on any Redis.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import coredis
import trio
from coredis.retry import NoRetryPolicy

from ..logs import fields
from .facts import AnyFact, Resync, decode_message, encode_batch, encode_fact

log = logging.getLogger("chatnode.bus")

# Facts waiting for the publisher. At the node's highest commit rates this is a few seconds of
# facts; past it Redis is not keeping up and the facts are dropped (then Resync).
PUBLISH_QUEUE = 10_000
# Facts sent in one PUBLISH at most: coredis costs far more per command than per byte, so a
# node under load sends what it has queued together (a third of a busy node's Python time went
# to one PUBLISH per fact).
MAX_FACTS_PER_MESSAGE = 256
# One Redis command that takes longer than this counts as the bus being down.
COMMAND_TIMEOUT_S = 2.0
# Between attempts to reach Redis again while it is down.
RETRY_S = 0.5
# How long a starting node waits for its first subscription. Normally it is subscribed before
# it serves anything; with Redis down it serves anyway (the log is the truth, /healthz says 503)
# and resyncs from the store once the bus answers, as after any outage.
START_WAIT_S = 5.0
# The empty field that keeps a node's presence hash alive while none of its users is online.
ALIVE_FIELD = ""


@dataclass(frozen=True, slots=True)
class _PresenceOp:
    user_id: str
    online: bool


class _Refresh:
    """Rewrite this node's presence hash now, in order with the facts around it."""


_Op = bytes | _PresenceOp | _Refresh


def _noop(*args: Any) -> None:
    pass


class RedisBus:
    def __init__(self, url: str, prefix: str, presence_ttl_s: int,
                 node_id: str | None = None) -> None:
        self.url = url
        self.node_id = node_id or f"n_{secrets.token_hex(6)}"
        self.channel = f"{prefix}:facts"
        self.presence_prefix = f"{prefix}:presence:"
        self.presence_ttl_s = presence_ttl_s
        self.refresh_every_s = presence_ttl_s / 3
        # Set by the node before run(): where facts from other nodes go, what to do when the
        # subscription came back after a break, and who is online here (for the refresh).
        self.on_fact: Callable[[AnyFact], None] = _noop
        self.on_reconnect: Callable[[], None] = _noop
        self.online_here: Callable[[], Iterable[str]] = lambda: ()
        self.subscribed = False
        self.publishing = True
        self.dropped = 0
        self._lost = False
        self._first_subscription = trio.Event()
        self._gave_up_waiting = False
        self._client: coredis.Redis[bytes] | None = None
        self._send, self._receive = trio.open_memory_channel[_Op](PUBLISH_QUEUE)

    @property
    def healthy(self) -> bool:
        return self.subscribed and self.publishing

    @property
    def presence_key(self) -> str:
        return self.presence_prefix + self.node_id

    # --- called in the trio thread, never wait --------------------------------------------

    def publish(self, fact: AnyFact) -> None:
        self._queue(encode_fact(fact))

    def presence(self, user_id: str, online: bool) -> None:
        """This node's presence hash gains or loses a user (in order with the facts)."""
        self._queue(_PresenceOp(user_id, online))

    def refresh_presence(self) -> None:
        self._queue(_Refresh())

    def _queue(self, op: _Op) -> None:
        try:
            self._send.send_nowait(op)
        except trio.WouldBlock:
            self.dropped += 1
            self._lost = True

    # --- the tasks ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Subscribe (or give up waiting after START_WAIT_S), report started, then publish,
        listen and refresh this node's presence until cancelled."""
        try:
            async with coredis.Redis.from_url(self.url, retry_policy=NoRetryPolicy()) as client:
                self._client = client
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._listen, client)
                    nursery.start_soon(self._publish_loop, client)
                    with trio.move_on_after(START_WAIT_S):
                        await self._first_subscription.wait()
                    if not self._first_subscription.is_set():
                        self._gave_up_waiting = True
                        log.warning("serving without the bus until Redis answers",
                                    extra=fields(node=self.node_id))
                    task_status.started()
        except* anyio.ClosedResourceError:
            # coredis (6.9) cleans a cancelled subscription up on the connection it has just
            # closed; that happens only as the node stops, and the stop goes on.
            await trio.lowlevel.checkpoint()
            raise RuntimeError("the bus stopped unexpectedly") from None

    async def _listen(self, client: coredis.Redis[bytes]) -> None:
        first = True
        warned = False
        while True:
            try:
                async with client.pubsub(channels=[self.channel],
                                         retry_policy=NoRetryPolicy()) as pubsub:
                    self.subscribed = True
                    if not first or self._gave_up_waiting:
                        # Facts may have gone by unheard: the node rereads the store.
                        log.info("bus subscription is back", extra=fields(node=self.node_id))
                        self.on_reconnect()
                    first = warned = False
                    self._first_subscription.set()
                    async for message in pubsub:
                        if message["type"] == "message":
                            self._take(message["data"])
            except Exception as exc:  # whatever broke, reaching Redis again is the cure
                if self.subscribed or not warned:  # once per outage, not every retry
                    log.warning("bus subscription lost, retrying", extra=fields(
                        node=self.node_id, error=_why(exc)))
                warned = True
                self.subscribed = False
            await trio.sleep(RETRY_S)

    def _take(self, data: Any) -> None:
        try:
            facts = decode_message(data)
        except ValueError:
            log.warning("not a fact on the bus, ignored", extra=fields(bytes=len(data)))
            return
        for fact in facts:
            if fact.origin == self.node_id:
                continue
            try:
                self.on_fact(fact)
            except Exception:
                # A bug of ours, not the bus's: keep listening, and let the store put right
                # whatever this fact should have done.
                log.exception("applying a fact failed", extra=fields(fact=type(fact).__name__))
                self.on_reconnect()

    async def _publish_loop(self, client: coredis.Redis[bytes]) -> None:
        next_refresh = trio.current_time()
        while True:
            if trio.current_time() >= next_refresh:
                await self._attempt(client, self._refresh(client))
                next_refresh = trio.current_time() + self.refresh_every_s
            op: _Op | None = None
            with trio.move_on_at(next_refresh):
                op = await self._receive.receive()
            if isinstance(op, bytes):
                # Every fact queued behind it goes in the same message, up to the first
                # presence operation, which follows in order.
                facts, after = [op], None
                while len(facts) < MAX_FACTS_PER_MESSAGE:
                    try:
                        queued = self._receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if not isinstance(queued, bytes):
                        after = queued
                        break
                    facts.append(queued)
                message = facts[0] if len(facts) == 1 else encode_batch(facts)
                await self._attempt(client, client.publish(self.channel, message))
                op = after
            if op is not None:
                await self._attempt(client, self._run_op(client, op))

    async def _attempt(self, client: coredis.Redis[bytes], work: Any) -> None:
        """Run one Redis operation; when Redis fails, drop what is queued (it would only
        delay the news that we lost facts) and retry until it answers, then say Resync."""
        try:
            with trio.fail_after(COMMAND_TIMEOUT_S):
                await work
            if self._lost:
                self._lost = False
                with trio.fail_after(COMMAND_TIMEOUT_S):
                    await client.publish(self.channel, encode_fact(Resync(self.node_id)))
            return
        except Exception as exc:  # a down bus must never stop the node
            log.warning("bus publishing failed, facts are dropped until it works", extra=fields(
                node=self.node_id, error=_why(exc)))
        self.publishing = False
        self._lost = True
        while True:
            while True:
                try:
                    self._receive.receive_nowait()
                    self.dropped += 1
                except trio.WouldBlock:
                    break
            await trio.sleep(RETRY_S)
            try:
                with trio.fail_after(COMMAND_TIMEOUT_S):
                    await self._refresh(client)
                    await client.publish(self.channel, encode_fact(Resync(self.node_id)))
            except Exception:  # still down
                continue
            self._lost = False
            self.publishing = True
            log.info("bus publishing works again", extra=fields(node=self.node_id,
                                                                dropped=self.dropped))
            return

    async def _run_op(self, client: coredis.Redis[bytes], op: _Op) -> None:
        if isinstance(op, bytes):
            await client.publish(self.channel, op)
        elif isinstance(op, _Refresh):
            await self._refresh(client)
        elif op.online:
            await client.hset(self.presence_key, {op.user_id: b"1"})
        else:
            await client.hdel(self.presence_key, [op.user_id])

    async def _refresh(self, client: coredis.Redis[bytes]) -> None:
        """Write this node's whole presence hash again and push its expiry on."""
        online = {user_id: b"1" for user_id in self.online_here()}
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete([self.presence_key])
            pipe.hset(self.presence_key, {ALIVE_FIELD: b"1", **online})
            pipe.expire(self.presence_key, self.presence_ttl_s)

    async def leave(self) -> None:
        """As the node stops (before run is cancelled): remove its presence hash, so the other
        nodes show its users offline now rather than after the TTL. Best effort: Redis may be
        the very reason the node stops."""
        if self._client is None:
            return
        with trio.move_on_after(COMMAND_TIMEOUT_S), contextlib.suppress(Exception):
            await self._client.delete([self.presence_key])

    # --- reads for the presence poll ---------------------------------------------------------

    async def read_presence(self) -> dict[str, set[str]]:
        """Every other live node's online users (an empty set for a node with none)."""
        client = self._ready()
        found: dict[str, set[str]] = {}
        with trio.fail_after(COMMAND_TIMEOUT_S * 2):
            async for key in client.scan_iter(match=self.presence_prefix + "*"):
                node_id = key.decode()[len(self.presence_prefix):]
                if node_id == self.node_id:
                    continue
                users = {f.decode() for f in await client.hkeys(key)}
                users.discard(ALIVE_FIELD)
                if users or await client.exists([key]):
                    found[node_id] = users
        return found

    async def alive(self, node_ids: Iterable[str]) -> set[str]:
        client = self._ready()
        alive = set()
        with trio.fail_after(COMMAND_TIMEOUT_S):
            for node_id in node_ids:
                if await client.exists([self.presence_prefix + node_id]):
                    alive.add(node_id)
        return alive

    def _ready(self) -> coredis.Redis[bytes]:
        if self._client is None:
            raise RuntimeError("the bus is not running")
        return self._client


def _why(exc: BaseException) -> str:
    """The first real error inside the exception groups anyio and trio wrap it in."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
