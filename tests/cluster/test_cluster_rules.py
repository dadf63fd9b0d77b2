"""Cluster rules that are hard to provoke from outside a node, on nodes of one cluster inside
the test process that share a store and talk over a real redis-server (see in_process.py): a
conversation a node has not heard of yet, presence held by a session on either node, a
dead node among three, and a fact the bus is late with or never brings. test_two_nodes.py has
the rest, on real node processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from chatnode.cluster import link
from chatnode.cluster.facts import MessageCommitted
from chatnode.cluster.sequencer import GAP_DEADLINE_S
from chatnode.protocol import Message
from chatnode.store import SqliteStore
from chatnode.store import sqlite as sql

from ..redis_server import Redis
from .in_process import Client, InProcessNode, add_user, cluster, create


async def test_a_conversation_the_nodes_have_not_heard_of_is_loaded_from_the_store(
        tmp_path: Path, redis_server: Redis) -> None:
    """Created behind both nodes' backs (as if its fact were still on the bus): a send names it
    on one node, and the other delivers the message to its members all the same."""
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        bob_a = await Client(a, bob).open(nursery)
        record, _ = await store.write(sql.insert_conversation, "group", "g", alice, [bob])
        cid = record.conversation_id
        alice_b = await Client(b, alice).open(nursery)
        await b.service.know(cid, alice)
        alice_b.send(cid, "m1", "first")
        await alice_b.wait_for(lambda c: len(c.of("sent")) == 1)
        await bob_a.wait_for(lambda c: c.seqs(cid) == [1])
        assert [f["conversation_id"] for f in bob_a.of("conversation")] == [cid]


async def test_presence_is_online_while_a_session_lives_on_either_node(
        tmp_path: Path, redis_server: Redis) -> None:
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        await create(a, alice, [bob], kind="direct")
        bob_a = await Client(a, bob).open(nursery)
        alice_b = await Client(b, alice).open(nursery)
        await bob_a.wait_for(lambda c: [p["online"] for p in c.of("presence")
                                        if p["user_id"] == alice][-1:] == [True])
        alice_a = await Client(a, alice).open(nursery)  # a second session, on bob's node
        alice_b.close()  # the first goes: she is still online on node a
        await trio.sleep(2.2)  # past the offline grace (2 s)
        # Offline in bob's catch-up, then online, and never offline meanwhile.
        assert [p["online"] for p in bob_a.of("presence") if p["user_id"] == alice] == \
            [False, True]
        alice_a.close()
        await bob_a.wait_for(lambda c: [p["online"] for p in c.of("presence")
                                        if p["user_id"] == alice][-1] is False)


async def test_the_users_of_a_dead_node_show_offline_on_the_other_within_the_ttl(
        tmp_path: Path, redis_server: Redis) -> None:
    async with cluster(tmp_path, redis_server.url, nodes=3, ttl=1) as (store, (a, b, c),
                                                                       nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        await create(a, alice, [bob], kind="direct")
        bob_a = await Client(a, bob).open(nursery)
        await Client(c, alice).open(nursery)
        await bob_a.wait_for(lambda c: [p["online"] for p in c.of("presence")
                                        if p["user_id"] == alice][-1:] == [True])
        c.kill()  # no goodbye: its presence hash is left to expire
        await bob_a.wait_for(lambda c: [p["online"] for p in c.of("presence")
                                        if p["user_id"] == alice][-1] is False, timeout=5)
        with trio.fail_after(5):  # and on the third node, which polls on its own
            while b.presence.shown_online(alice):
                await trio.sleep(0.05)
        assert not a.presence.shown_online(alice)


async def test_a_message_the_bus_never_brings_is_read_from_the_store_after_its_gaps_deadline(
        tmp_path: Path, redis_server: Redis) -> None:
    """Another node committed 1, 2 and 3 but only the facts of 2 and 3 arrive (the first is
    late, then lost): bob sees nothing out of order, and 1, 2, 3 once the gap is old enough."""
    async with cluster(tmp_path, redis_server.url, nodes=1) as (store, (a,), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob])
        bob_a = await Client(a, bob).open(nursery)
        one, two, three = [await committed_elsewhere(store, cid, alice, f"m{i}")
                           for i in range(3)]
        a.link.take(MessageCommitted("elsewhere", two))
        a.link.take(MessageCommitted("elsewhere", three))
        await trio.sleep(GAP_DEADLINE_S / 2)
        assert bob_a.seqs(cid) == [], "a message went out before the one it follows"
        await bob_a.wait_for(lambda c: c.seqs(cid) == [1, 2, 3], timeout=GAP_DEADLINE_S * 8)
        assert reads(a) == 3  # the range up to the highest waiting seq, in one read
        a.link.take(MessageCommitted("elsewhere", one))  # late after all: a duplicate now
        await trio.sleep(0.05)
        assert bob_a.seqs(cid) == [1, 2, 3]


async def test_each_gap_gets_its_whole_deadline_before_the_store_is_read(
        tmp_path: Path, redis_server: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes' sends cross on the bus, so a busy conversation opens and closes gaps all the
    time. A gap that opened just before an earlier one's deadline ran out is not read from the
    store: the bus brings it within its own deadline. (A longer deadline than the node's, so a
    busy test machine cannot make the bus look late.)"""
    deadline = 1.0
    monkeypatch.setattr(link, "GAP_DEADLINE_S", deadline)
    async with cluster(tmp_path, redis_server.url, nodes=1) as (store, (a,), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob])
        bob_a = await Client(a, bob).open(nursery)
        m = [await committed_elsewhere(store, cid, alice, f"m{i}") for i in range(4)]
        a.link.take(MessageCommitted("elsewhere", m[1]))   # gap: 1 is missing
        await trio.sleep(deadline * 0.6)
        a.link.take(MessageCommitted("elsewhere", m[0]))   # closed by the bus
        a.link.take(MessageCommitted("elsewhere", m[3]))   # a new gap: 3 is missing
        await trio.sleep(deadline * 0.6)                   # past the first gap's deadline
        a.link.take(MessageCommitted("elsewhere", m[2]))   # the bus closes it in time
        await bob_a.wait_for(lambda c: c.seqs(cid) == [1, 2, 3, 4])
        await trio.sleep(deadline)
        assert reads(a) == 0, "a gap was read from the store before its deadline"


async def committed_elsewhere(store: SqliteStore, cid: str, sender: str, client_msg_id: str
                              ) -> Message:
    """A message committed by another node: in the shared log, its fact not yet here."""
    message, _ = await store.write(sql.append_message, cid, sender, client_msg_id, "text",
                                   client_msg_id, None, None, None)
    return message


def reads(node: InProcessNode) -> float:
    return node.link.gap_reads._value.get()
