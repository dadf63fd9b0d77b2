"""Redis killed and restarted under load: sends keep being acknowledged (the log is the truth,
the bus only makes it fast), and once the bus is back every session on both nodes has every
message, in order, with no gap and no duplicate."""

from __future__ import annotations

from pathlib import Path

import trio

from .conftest import Redis
from .in_process import Client, add_user, cluster, create


async def test_redis_restarted_under_load_loses_nothing_and_reorders_nothing(
        tmp_path: Path, own_redis: Redis) -> None:
    async with cluster(tmp_path, own_redis.url) as (store, (a, b), nursery):
        users = [await add_user(store, f"u{i}") for i in range(3)]
        cid = await create(a, users[0], users[1:])
        sender_a = await Client(a, users[0]).open(nursery)
        sender_b = await Client(b, users[1]).open(nursery)
        watchers = [await Client(node, users[2]).open(nursery) for node in (a, b)]
        sent = 0

        async def send_rounds(rounds: int) -> None:
            nonlocal sent
            for _ in range(rounds):
                for sender in (sender_a, sender_b):
                    sender.send(cid, f"m{sent}")
                    sent += 1
                await trio.sleep(0.01)

        await send_rounds(20)
        own_redis.stop()
        await send_rounds(40)  # about half a second with no bus at all
        assert not a.link.bus.healthy or not b.link.bus.healthy
        own_redis.start()
        await send_rounds(20)
        with trio.fail_after(20):
            while not (a.link.bus.healthy and b.link.bus.healthy):
                await trio.sleep(0.05)
        # Every send was acknowledged, outage or not.
        for sender in (sender_a, sender_b):
            await sender.wait_for(lambda c: len(c.of("sent")) == sent // 2, timeout=20)
        for watcher in watchers:
            await watcher.wait_for(lambda c: len(c.seqs(cid)) >= sent, timeout=20)
            assert watcher.seqs(cid) == list(range(1, sent + 1))
        # The senders' other node's messages reached them too, each exactly once, in order.
        for sender in (sender_a, sender_b):
            own = {f["seq"] for f in sender.of("sent")}
            await sender.wait_for(lambda c, own=own: len(own) + len(c.seqs(cid)) >= sent,
                                  timeout=20)
            assert sorted(own | set(sender.seqs(cid))) == list(range(1, sent + 1))
            assert sender.seqs(cid) == sorted(set(sender.seqs(cid)))


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
