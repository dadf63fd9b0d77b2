"""What was committed while Redis was down reaches the other node's sessions once it is back,
with nothing later on the bus to reveal the gap (in-process nodes, see in_process.py; the same
outage under load on real node processes is in test_two_nodes.py)."""

from __future__ import annotations

from pathlib import Path

import trio

from chatnode.cluster.bus import RedisBus
from chatnode.cluster.facts import Resync
from chatnode.store import sqlite as sql

from ..redis_server import Redis
from .in_process import Client, add_user, cluster, create


async def test_messages_and_markers_committed_while_redis_was_down_reach_the_other_node_after(
        tmp_path: Path, own_redis: Redis) -> None:
    """Nothing later on the bus reveals the gap: only the resync from the store, once the bus
    is back, can bring the other node's sessions what they missed."""
    async with cluster(tmp_path, own_redis.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob], kind="direct")
        alice_b = await Client(b, alice).open(nursery)
        bob_a = await Client(a, bob).open(nursery)
        alice_b.send(cid, "before")
        await bob_a.wait_for(lambda c: c.seqs(cid) == [1])
        own_redis.stop()
        with trio.fail_after(10):
            while a.link.bus.healthy:
                await trio.sleep(0.02)
        for i in range(5):
            alice_b.send(cid, f"during{i}")
        await alice_b.wait_for(lambda c: len(c.of("sent")) == 6)
        b.service.submit_marker(alice, cid, 6, True, alice_b.session)
        await trio.sleep(0.5)
        assert bob_a.seqs(cid) == [1]  # the bus is down: nothing crossed
        own_redis.start()
        await bob_a.wait_for(lambda c: c.seqs(cid) == [1, 2, 3, 4, 5, 6], timeout=20)
        assert a.engine.conversations[cid].last_seq == 6
        await bob_a.wait_for(lambda c: any(s["last_read_seq"] == 6 for s in c.of("status_update")
                                           if s["conversation_id"] == cid))


async def test_after_redis_restarted_empty_users_online_elsewhere_are_shown_online_again(
        tmp_path: Path, own_redis: Redis) -> None:
    """A restarted Redis has forgotten every node's presence hash; the nodes write theirs
    again and say who is online, rather than leave each other's users offline until the next
    refresh (a third of presence_ttl_s, 20 s by default)."""
    async with cluster(tmp_path, own_redis.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        await create(a, alice, [bob], kind="direct")
        bob_a = await Client(a, bob).open(nursery)
        await Client(b, alice).open(nursery)
        await bob_a.wait_for(lambda c: a.presence.shown_online(alice))
        own_redis.restart()
        with trio.fail_after(20):
            while not (a.link.bus.healthy and b.link.bus.healthy):
                await trio.sleep(0.05)
        await trio.sleep(1)  # both resyncs done
        assert a.presence.shown_online(alice) and b.presence.shown_online(bob)
        await bob_a.wait_for(lambda c: [p["online"] for p in c.of("presence")
                                        if p["user_id"] == alice][-1] is True)


async def test_a_resync_another_node_announces_brings_what_its_dropped_facts_carried(
        tmp_path: Path, redis_server: Redis) -> None:
    """A node whose publish queue overflowed dropped facts with the bus up, so no other node
    saw an outage: its Resync is the only news. Here the commit is made straight on the shared
    store, as by a node whose fact was dropped; only the Resync can bring it to bob."""
    async with cluster(tmp_path, redis_server.url, nodes=1) as (store, (a,), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob], kind="direct")
        bob_a = await Client(a, bob).open(nursery)
        await store.write(sql.append_message, cid, alice, "dropped", "text",
                          "its fact never crossed", None, None, None)
        await trio.sleep(0.5)
        assert bob_a.seqs(cid) == []  # nothing on the bus, nothing shown
        prefix = a.link.bus.channel.removesuffix(":facts")
        other = RedisBus(redis_server.url, prefix, 60)
        await nursery.start(other.run)
        other.publish(Resync(other.node_id))
        await bob_a.wait_for(lambda c: c.seqs(cid) == [1])
        assert [m["body"] for m in bob_a.of("message")] == ["its fact never crossed"]
        await other.leave()
