"""chatnode.cluster.bus against a real redis-server: facts cross between nodes, a node never
hears itself, presence hashes live and expire, and a Redis outage is noticed, survived and
announced (Resync) without ever blocking the caller."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from chatnode.cluster.bus import RedisBus
from chatnode.cluster.facts import AnyFact, MarkersMoved, Resync, TypingChanged

from ..redis_server import Redis


class Listening:
    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus
        self.facts: list[AnyFact] = []
        self.reconnects = 0
        bus.on_fact = self.facts.append
        bus.on_reconnect = self._reconnected

    def _reconnected(self) -> None:
        self.reconnects += 1

    async def wait_for(self, predicate: object, timeout: float = 10) -> None:
        with trio.fail_after(timeout):
            while not predicate():  # type: ignore[operator]
                await trio.sleep(0.02)


@asynccontextmanager
async def running(url: str, prefix: str, ttl: int = 60) -> AsyncIterator[Listening]:
    bus = RedisBus(url, prefix, ttl)
    listening = Listening(bus)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        yield listening
        await bus.leave()
        nursery.cancel_scope.cancel()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def test_a_fact_published_by_one_node_reaches_the_other_and_not_itself(
        redis_server: Redis) -> None:
    p = prefix()
    async with running(redis_server.url, p) as a, running(redis_server.url, p) as b:
        fact = MarkersMoved(a.bus.node_id, "c1", "u1", 3, 2)
        a.bus.publish(fact)
        await b.wait_for(lambda: b.facts)
        assert b.facts == [fact]
        a.bus.publish(TypingChanged(a.bus.node_id, "c1", "u1", True))  # a later fact, to
        await b.wait_for(lambda: len(b.facts) == 2)                    # be sure a had time
        assert a.facts == []


async def test_clusters_with_different_prefixes_do_not_hear_each_other(
        redis_server: Redis) -> None:
    async with running(redis_server.url, prefix()) as a, \
            running(redis_server.url, prefix()) as b, running(redis_server.url, prefix()):
        a.bus.publish(MarkersMoved(a.bus.node_id, "c1", "u1", 1, 1))
        await trio.sleep(0.3)
        assert b.facts == []


async def test_presence_hashes_show_each_nodes_users_and_go_when_the_node_stops(
        redis_server: Redis) -> None:
    p = prefix()
    async with running(redis_server.url, p) as a:
        async with running(redis_server.url, p) as b:
            b.bus.presence("u_b", True)
            with trio.fail_after(10):
                while (await a.bus.read_presence()).get(b.bus.node_id) != {"u_b"}:
                    await trio.sleep(0.02)
            assert await a.bus.alive([b.bus.node_id, "n_gone"]) == {b.bus.node_id}
            gone = b.bus.node_id
        # b stopped: its hash is removed at once, not left for its TTL.
        assert await a.bus.alive([gone]) == set()
        assert gone not in await a.bus.read_presence()


async def test_a_dead_nodes_presence_expires_after_its_ttl(redis_server: Redis) -> None:
    p = prefix()
    async with running(redis_server.url, p) as a:
        dead = RedisBus(redis_server.url, p, 1)
        async with trio.open_nursery() as nursery:
            await nursery.start(dead.run)
            with trio.fail_after(5):
                while not await a.bus.alive([dead.node_id]):
                    await trio.sleep(0.02)
            # What kill -9 leaves: the hash, with no one to refresh or remove it.
            nursery.cancel_scope.cancel()
        assert dead.node_id in await a.bus.alive([dead.node_id])
        with trio.fail_after(5):
            while await a.bus.alive([dead.node_id]):
                await trio.sleep(0.1)


async def test_redis_restarted_publishing_never_blocks_and_every_node_learns_it_must_resync(
        own_redis: Redis) -> None:
    p = prefix()
    async with running(own_redis.url, p) as a, running(own_redis.url, p) as b:
        own_redis.stop()
        with trio.fail_after(1):  # never waits for Redis, even with far more than the queue
            for i in range(20_000):
                a.bus.publish(MarkersMoved(a.bus.node_id, "c1", "u1", i, 0))
        await a.wait_for(lambda: not a.bus.healthy and not b.bus.healthy)
        own_redis.start()
        await a.wait_for(lambda: a.bus.healthy and b.bus.healthy)
        # Both subscriptions came back: each node rereads what it may have missed ...
        await a.wait_for(lambda: a.reconnects == 1 and b.reconnects == 1)
        # The node that dropped facts also publishes Resync once it can, for nodes that never
        # saw the outage; b saw it, and may have subscribed again only after that Resync went
        # by, so b's own reconnection above is what makes it whole here, not the Resync.
        assert a.bus.dropped > 0
        fact = MarkersMoved(a.bus.node_id, "c1", "u1", 99, 0)
        a.bus.publish(fact)
        await b.wait_for(lambda: fact in b.facts)


async def test_facts_dropped_while_redis_works_are_announced_to_nodes_that_lost_nothing(
        redis_server: Redis) -> None:
    """A burst past the publish queue drops facts with Redis up and every subscription whole:
    nothing tells b it missed anything but the Resync a publishes, after what it could send."""
    p = prefix()
    async with running(redis_server.url, p) as a, running(redis_server.url, p) as b:
        for i in range(25_000):  # in one go, more than the queue holds
            a.bus.publish(MarkersMoved(a.bus.node_id, "c1", "u1", i, 0))
        assert a.bus.dropped > 0
        await b.wait_for(lambda: any(isinstance(f, Resync) for f in b.facts), timeout=30)
        (resync,) = [f for f in b.facts if isinstance(f, Resync)]
        assert resync.origin == a.bus.node_id
        assert b.reconnects == 0 and a.reconnects == 0  # b lost nothing of its own
