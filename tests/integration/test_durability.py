"""Nothing acknowledged is ever lost: kill -9 under load, then restart on the same data."""

import trio
from trio_websocket import ConnectionClosed

from chatnode.client import connect

from ..conftest import Node, new_user, whole_history


async def test_every_acknowledged_message_survives_kill_9(own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    conversations = [(await alice.rest.direct(bob.user_id))["conversation_id"]]
    for name in ("g1", "g2"):
        conversations.append((await alice.rest.group(name, [bob.user_id]))["conversation_id"])
    acked: dict[str, tuple[str, int]] = {}  # client_msg_id -> (conversation, seq)
    enough = trio.Event()

    async def sender(cid: str) -> None:
        try:
            async with connect(node.url, alice.token) as (a, _), \
                    trio.open_nursery() as nursery:
                async def read_acks() -> None:
                    while True:
                        frame = await a.recv(timeout=30)
                        if frame["type"] == "sent":
                            acked[frame["client_msg_id"]] = (cid, frame["seq"])
                            if len(acked) >= 300:
                                enough.set()
                nursery.start_soon(read_acks)
                for i in range(100_000):
                    await a.send_text(cid, f"{cid} {i}")
                    if i % 10 == 0:
                        await trio.sleep(0)
        except* (ConnectionClosed, OSError):
            pass  # the node was killed under us: expected

    async with trio.open_nursery() as nursery:
        for cid in conversations:
            nursery.start_soon(sender, cid)
        await enough.wait()
        node.kill()
    assert len(acked) >= 300

    node.restart()
    for cid in conversations:
        stored = await whole_history(alice, cid)
        seqs = [m["seq"] for m in stored]
        assert seqs == list(range(1, len(seqs) + 1))  # no gap, even across the kill
        by_id = {m["client_msg_id"]: m["seq"] for m in stored}
        for cmid, (conv, seq) in acked.items():
            if conv == cid:
                assert by_id.get(cmid) == seq
        # the log goes on from where it stopped
        sent = await alice.rest.send(cid, "after restart")
        assert sent["seq"] == len(seqs) + 1
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_markers_survive_restart_and_never_move_back(own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(5):
        await alice.rest.send(cid, f"m{i}")
    async with connect(node.url, bob.token) as (b, _):
        await b.read(cid, 4)
        await b.until_type("status_update")
        await b.delivered(cid, 2)  # below the marker: changes nothing
        await b.send({"type": "ping"})
        await b.until_type("pong")
    await trio.sleep(0.5)  # let the node see bob go (it stores his last_seen)
    node.kill()
    node.restart()
    async with connect(node.url, alice.token) as (_, frames):
        (presence,) = [f for f in frames if f["type"] == "presence"]
        assert (presence["user_id"], presence["online"]) == (bob.user_id, False)
        assert isinstance(presence["last_seen"], int)  # last_seen survives the restart
    (info,) = await alice.rest.conversations()
    assert (info["last_seq"], info["last_delivered_seq"], info["last_read_seq"]) == (5, 4, 4)
    (mine,) = await bob.rest.conversations()
    assert (mine["my_read_seq"], mine["unread"]) == (4, 1)
    await alice.rest.aclose()
    await bob.rest.aclose()
