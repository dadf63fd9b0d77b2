"""The cluster rules of issue 9 on a real two-node cluster (two `chatnode serve` processes on
one PostgreSQL and one Redis), with each user's devices spread over both nodes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import trio
from trio_websocket import ConnectionClosed

from chatnode.client import connect

from ..conftest import User, new_device, new_user, whole_history
from ..redis_server import Redis
from .two_nodes import Watch, two_nodes


@contextlib.asynccontextmanager
async def watching(url: str, user: User, nursery: trio.Nursery) -> AsyncIterator[Watch]:
    async with connect(url, user.token) as (session, frames):
        watch = Watch(session, frames)
        nursery.start_soon(watch.run)
        yield watch


async def healthz(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{url}/healthz", timeout=20)).status_code


async def test_messages_markers_typing_retries_and_presence_cross_nodes_and_a_node_may_die(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    """One cluster, one story (a node start costs seconds): fan-out to every session on both
    nodes, an idempotent retry through the other node, ticks, typing, and at the end a
    `kill -9` of one node: its users show offline on the other, whose sessions go on."""
    with two_nodes(tmp_path, pg_url, redis_server.url, presence_ttl_s=1) as cluster:
        one, two = cluster.nodes
        alice, bob, carol = [await new_user(one, n) for n in ("alice", "bob", "carol")]
        alice_laptop = await new_device(two, alice)
        group = (await alice.rest.group("team", [bob.user_id, carol.user_id]))["conversation_id"]
        direct = (await alice.rest.direct(bob.user_id))["conversation_id"]
        async with trio.open_nursery() as nursery, \
                watching(one.url, alice, nursery) as alice_one, \
                watching(two.url, alice_laptop, nursery) as alice_two, \
                watching(two.url, bob, nursery) as bob_two, \
                watching(one.url, carol, nursery) as carol_one:
            await alice_one.session.send_text(group, "hello team", client_msg_id="g1")
            for watch in (alice_two, bob_two, carol_one):  # her laptop on the other node too
                await watch.wait_for(lambda w: w.seqs(group) == [1])
            await alice_one.wait_for(lambda w: len(w.of("sent")) == 1)
            # The same client_msg_id again, through the other node: the original `sent`.
            await alice_two.session.send_text(group, "hello team", client_msg_id="g1")
            await alice_two.wait_for(lambda w: len(w.of("sent")) == 1)
            assert alice_two.of("sent") == alice_one.of("sent")
            # Markers: bob reads on node two, alice sees blue ticks on both her devices.
            await alice_one.session.send_text(direct, "psst", client_msg_id="d1")
            await bob_two.wait_for(lambda w: w.seqs(direct) == [1])
            await bob_two.session.read(direct, 1)
            for watch in (alice_one, alice_two):
                await watch.wait_for(lambda w: any(
                    s["conversation_id"] == direct and s["last_read_seq"] == 1
                    for s in w.of("status_update")))
            # Typing crosses too.
            await bob_two.session.send({"type": "typing", "conversation_id": direct})
            await alice_one.wait_for(lambda w: any(
                t["user_id"] == bob.user_id and t["typing"] for t in w.of("typing")))
            await trio.sleep(0.3)  # anything duplicated would have arrived by now
            assert alice_one.of("message") == []  # her own messages came as `sent`
            for watch in (alice_two, bob_two, carol_one):
                assert watch.seqs(group) == [1]

            def bob_shown(w: Watch) -> list[bool]:
                return [p["online"] for p in w.of("presence") if p["user_id"] == bob.user_id]

            assert bob_shown(carol_one)[-1:] == [True]
            two.kill()  # bob's only node, and alice's laptop's
            await carol_one.wait_for(lambda w: bob_shown(w)[-1] is False, timeout=15)
            await alice_one.wait_for(lambda w: bob_shown(w)[-1] is False)
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{one.url}/metrics")).text
            assert "chatnode_bus_up 1.0" in metrics
            # Node one never stopped: its sessions still talk.
            await carol_one.session.send({"type": "ping", "id": "still"})
            await carol_one.wait_for(lambda w: {"type": "pong", "id": "still"} in w.frames)
            nursery.cancel_scope.cancel()


async def test_concurrent_senders_on_both_nodes_every_connection_sees_one_to_n_in_order(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    per_sender = 20
    with two_nodes(tmp_path, pg_url, redis_server.url) as cluster:
        one, two = cluster.nodes
        users = [await new_user(one, f"u{i}") for i in range(4)]
        group = (await users[0].rest.group("busy", [u.user_id for u in users[1:]]))[
            "conversation_id"]
        # Each user's other device sits on the node its sender does not.
        readers = [await new_device((two, one)[i % 2], user) for i, user in enumerate(users)]
        async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
            senders = [await stack.enter_async_context(watching(
                (one, two)[i % 2].url, user, nursery)) for i, user in enumerate(users)]
            watches = [await stack.enter_async_context(watching(
                (two, one)[i % 2].url, reader, nursery)) for i, reader in enumerate(readers)]

            async def send_all(watch: Watch, n: int) -> None:
                for i in range(per_sender):
                    await watch.session.send_text(group, f"{n}:{i}", client_msg_id=f"{n}-{i}")

            async with trio.open_nursery() as sending:
                for n, sender in enumerate(senders):
                    sending.start_soon(send_all, sender, n)
            total = per_sender * len(senders)
            for watch in watches:
                await watch.wait_for(lambda w: len(w.seqs(group)) >= total, timeout=30)
                assert watch.seqs(group) == list(range(1, total + 1))
            for sender in senders:
                await sender.wait_for(lambda w: len(w.of("sent")) == per_sender)
                mine = [s["seq"] for s in sender.of("sent")]
                assert mine == sorted(mine)  # one connection's sends keep their order
                others = sender.seqs(group)
                assert others == sorted(set(others))
                assert sorted(mine + others) == list(range(1, total + 1))
            nursery.cancel_scope.cancel()


async def test_redis_restarted_under_load_sends_are_acknowledged_and_nobody_misses_anything(
        tmp_path: Path, pg_url: str, own_redis: Redis) -> None:
    with two_nodes(tmp_path, pg_url, own_redis.url) as cluster:
        one, two = cluster.nodes
        alice, bob, carol = [await new_user(one, n) for n in ("alice", "bob", "carol")]
        group = (await alice.rest.group("g", [bob.user_id, carol.user_id]))["conversation_id"]
        carol_two = await new_device(two, carol)
        async with trio.open_nursery() as nursery, \
                watching(one.url, alice, nursery) as alice_one, \
                watching(two.url, bob, nursery) as bob_two, \
                watching(one.url, carol, nursery) as carol_one, \
                watching(two.url, carol_two, nursery) as carol_on_two:
            count = 0

            async def rounds(n: int) -> None:
                nonlocal count
                for _ in range(n):
                    for watch in (alice_one, bob_two):
                        await watch.session.send_text(group, f"m{count}",
                                                      client_msg_id=f"m{count}")
                        count += 1
                    await trio.sleep(0.02)

            await rounds(10)
            own_redis.stop()
            await rounds(25)
            assert await healthz(one.url) == 503 and await healthz(two.url) == 503
            own_redis.start()
            await rounds(10)
            with trio.fail_after(30):
                while await healthz(one.url) != 200 or await healthz(two.url) != 200:
                    await trio.sleep(0.2)
            for sender in (alice_one, bob_two):  # every send acknowledged, outage or not
                await sender.wait_for(lambda w: len(w.of("sent")) == count // 2)
            for watch in (carol_one, carol_on_two):
                await watch.wait_for(lambda w: len(w.seqs(group)) >= count, timeout=30)
                assert watch.seqs(group) == list(range(1, count + 1))
            for sender in (alice_one, bob_two):
                mine = {s["seq"] for s in sender.of("sent")}
                await sender.wait_for(lambda w, mine=mine: len(mine) + len(w.seqs(group))
                                      >= count, timeout=30)
                assert sender.seqs(group) == sorted(set(sender.seqs(group)))
                assert sorted(mine | set(sender.seqs(group))) == list(range(1, count + 1))
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{one.url}/metrics")).text
            assert "chatnode_bus_resyncs_total 0.0" not in metrics
            assert "chatnode_bus_up 1.0" in metrics
            nursery.cancel_scope.cancel()


async def test_a_node_killed_under_load_loses_nothing_acknowledged_and_the_other_goes_on(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    """Both nodes take sends into one group; node one is killed mid-stream. Alice, whose node
    it was, reconnects to node two with her sync map and retries what never got `sent`; every
    acknowledged message is in the log at its seq, node two's sessions never stop, and every
    connection sees the group 1..N in order."""
    with two_nodes(tmp_path, pg_url, redis_server.url) as cluster:
        one, two = cluster.nodes
        alice, bob, carol = [await new_user(two, n) for n in ("alice", "bob", "carol")]
        group = (await alice.rest.group("g", [bob.user_id, carol.user_id]))["conversation_id"]
        async with trio.open_nursery() as nursery, \
                watching(two.url, bob, nursery) as bob_two, \
                watching(two.url, carol, nursery) as carol_two:
            alice_one = await nursery.start(_watch_until_closed, one.url, alice)
            attempted: list[str] = []

            async def alice_sends() -> None:
                with contextlib.suppress(ConnectionClosed):
                    for i in range(1000):
                        attempted.append(f"a{i}")
                        await alice_one.session.send_text(group, "from one", f"a{i}")
                        await trio.sleep(0.005)

            async def bob_sends(n: int) -> None:
                for i in range(n):
                    await bob_two.session.send_text(group, "from two", f"b{i}")
                    await trio.sleep(0.005)

            async with trio.open_nursery() as load:
                load.start_soon(alice_sends)
                load.start_soon(bob_sends, 150)
                await alice_one.wait_for(lambda w: len(w.of("sent")) >= 40)
                one.kill()
            acked = {s["client_msg_id"]: s["seq"] for s in alice_one.of("sent")}
            # Alice's phone comes back through the load balancer, now to node two.
            seen = max([*acked.values(), *alice_one.seqs(group), 0])
            async with connect(two.url, alice.token, sync={group: seen}) as (again, frames):
                caught_up = [f["seq"] for f in frames if f["type"] == "message"
                             and f["conversation_id"] == group]
                assert caught_up == list(range(seen + 1, seen + 1 + len(caught_up)))
                for cmid in attempted:
                    if cmid not in acked:  # never acknowledged: the client sends it again
                        await again.send_text(group, "from one", cmid)
                        sent, _ = await again.until(lambda f, cmid=cmid: f["type"] == "sent"
                                                    and f["client_msg_id"] == cmid)
                        acked[cmid] = sent["seq"]
            await bob_two.wait_for(lambda w: len(w.of("sent")) == 150)
            acked |= {s["client_msg_id"]: s["seq"] for s in bob_two.of("sent")}
            stored = {m["client_msg_id"]: m["seq"]
                      for m in await whole_history(carol, group)}
            assert stored == acked  # everything acknowledged, at the seq it was given
            total = len(stored)
            assert sorted(stored.values()) == list(range(1, total + 1))
            await carol_two.wait_for(lambda w: len(w.seqs(group)) >= total, timeout=30)
            assert carol_two.seqs(group) == list(range(1, total + 1))
            nursery.cancel_scope.cancel()


async def _watch_until_closed(url: str, user: User, *,
                              task_status: trio.TaskStatus[Watch] = trio.TASK_STATUS_IGNORED
                              ) -> None:
    """A session whose node may die under it: its frames stay readable after."""
    async with connect(url, user.token) as (session, frames):
        watch = Watch(session, frames)
        task_status.started(watch)
        await watch.run()
