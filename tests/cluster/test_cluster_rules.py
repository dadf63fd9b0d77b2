"""The rules that must hold across nodes (issue 9), on two nodes of one cluster that share a
store and talk over a real redis-server (see in_process.py): fan-out, order under concurrent
senders, idempotent retries, markers, typing, presence, and a conversation a node has not
heard of yet."""

from __future__ import annotations

from pathlib import Path

import trio

from chatnode.store import sqlite as sql

from .conftest import Redis
from .in_process import Client, add_user, cluster, create


async def test_a_message_reaches_every_member_session_on_both_nodes_and_the_senders_other_device(
        tmp_path: Path, redis_server: Redis) -> None:
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        alice, bob, carol = [await add_user(store, n) for n in ("alice", "bob", "carol")]
        cid = await create(a, alice, [bob, carol])
        alice_a = await Client(a, alice).open(nursery)
        alice_b = await Client(b, alice).open(nursery)  # her laptop, on the other node
        bob_b = await Client(b, bob).open(nursery)
        carol_a = await Client(a, carol).open(nursery)
        alice_a.send(cid, "m1", "hello")
        for client in (alice_b, bob_b, carol_a):
            await client.wait_for(lambda c: c.seqs(cid) == [1])
            assert client.of("message")[0]["body"] == "hello"
        await alice_a.wait_for(lambda c: [f["seq"] for f in c.of("sent")] == [1])
        assert alice_a.of("message") == []  # the sending session gets `sent`, not the message


async def test_concurrent_senders_on_both_nodes_every_session_sees_one_to_n_in_order(
        tmp_path: Path, redis_server: Redis) -> None:
    per_sender = 40
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        users = [await add_user(store, f"u{i}") for i in range(4)]
        cid = await create(a, users[0], users[1:])
        senders = [await Client(a, users[0]).open(nursery), await Client(b, users[1]).open(nursery),
                   await Client(a, users[2]).open(nursery), await Client(b, users[3]).open(nursery)]
        watchers = [await Client(node, user).open(nursery) for node in (a, b) for user in users]
        for i in range(per_sender):
            for n, sender in enumerate(senders):
                sender.send(cid, f"s{n}-{i}")
            if i % 5 == 0:
                await trio.sleep(0)  # let the two nodes' commits and facts interleave
        total = per_sender * len(senders)
        for watcher in watchers:
            # A watcher of a sender's user does not get that session's own messages (it got
            # `sent`), but every other session of the user does: here, all of them.
            await watcher.wait_for(lambda c: len(c.seqs(cid)) >= total, timeout=20)
            assert watcher.seqs(cid) == list(range(1, total + 1))
        for sender in senders:
            await sender.wait_for(lambda c: len(c.of("sent")) == per_sender)
            mine = {f["seq"] for f in sender.of("sent")}
            assert sorted(mine | set(sender.seqs(cid))) == list(range(1, total + 1))
            assert sender.seqs(cid) == sorted(sender.seqs(cid))


async def test_a_retry_with_the_same_client_msg_id_on_the_other_node_gets_the_original_sent(
        tmp_path: Path, redis_server: Redis) -> None:
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob], kind="direct")
        on_a = await Client(a, alice).open(nursery)
        on_b = await Client(b, alice).open(nursery)
        bob_b = await Client(b, bob).open(nursery)
        on_a.send(cid, "once")
        await on_a.wait_for(lambda c: len(c.of("sent")) == 1)
        on_b.send(cid, "once")
        await on_b.wait_for(lambda c: len(c.of("sent")) == 1)
        assert on_b.of("sent") == on_a.of("sent")
        await trio.sleep(0.3)
        assert bob_b.seqs(cid) == [1]
        messages, _ = await store.read(sql.history, cid, before=None, after=None, limit=10,
                                       min_seq=0)
        assert [m.seq for m in messages] == [1]


async def test_markers_and_status_updates_cross_nodes(tmp_path: Path,
                                                     redis_server: Redis) -> None:
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob], kind="direct")
        alice_a = await Client(a, alice).open(nursery)
        alice_b = await Client(b, alice).open(nursery)
        bob_b = await Client(b, bob).open(nursery)
        alice_a.send(cid, "m1")
        await bob_b.wait_for(lambda c: c.seqs(cid) == [1])
        b.service.submit_marker(bob, cid, 1, True, bob_b.session)
        for client in (alice_a, alice_b):  # the sender sees blue ticks on both her devices
            await client.wait_for(lambda c: any(
                s["last_read_seq"] == 1 for s in c.of("status_update")
                if s["conversation_id"] == cid))
        assert a.engine.conversations[cid].members[bob].read == 1


async def test_typing_crosses_nodes(tmp_path: Path, redis_server: Redis) -> None:
    async with cluster(tmp_path, redis_server.url) as (store, (a, b), nursery):
        alice, bob = await add_user(store, "alice"), await add_user(store, "bob")
        cid = await create(a, alice, [bob], kind="direct")
        bob_b = await Client(b, bob).open(nursery)
        a.presence.typing(alice, cid, trio.current_time())
        await bob_b.wait_for(lambda c: c.of("typing") != [])
        assert bob_b.of("typing") == [{"type": "typing", "conversation_id": cid,
                                       "user_id": alice, "typing": True}]


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
        await b.service.know(cid)
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
        await trio.sleep(2.5)  # past the offline grace
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
