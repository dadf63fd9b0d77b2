"""Delivery rules over real sockets: fan-out to devices, idempotency, order, the sync map."""

import uuid

import httpx
import msgpack
import trio

from chatnode.client import connect

from ..conftest import Node, User, new_device, new_user, of_type
from .test_rest import metric


async def test_sender_gets_sent_and_its_other_devices_get_the_message(
        node: Node, alice: User, bob: User) -> None:
    laptop = await new_device(node, alice)
    assert laptop.device_id != alice.device_id
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (phone, _), \
            connect(node.url, laptop.token) as (lap, _), \
            connect(node.url, bob.token) as (b, _):
        cmid = await phone.send_text(cid, "from my phone")
        sent, before = await phone.until_type("sent")
        assert sent["client_msg_id"] == cmid and of_type(before, "message") == []
        on_laptop, _ = await lap.until_type("message")
        on_bob, _ = await b.until_type("message")
        assert on_laptop == on_bob
        assert on_laptop["sender_id"] == alice.user_id and on_laptop["client_msg_id"] == cmid
        # the phone never sees its own message: the next thing it gets is the pong
        await phone.send({"type": "ping", "id": "after"})
        pong, before = await phone.until_type("pong")
        assert pong["id"] == "after" and of_type(before, "message") == []
    await laptop.rest.aclose()


async def test_read_on_one_device_updates_the_others_unread(node: Node, alice: User,
                                                            bob: User) -> None:
    laptop = await new_device(node, bob)
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(3):
        await alice.rest.send(cid, f"m{i}")
    async with connect(node.url, bob.token) as (phone, _), \
            connect(node.url, laptop.token) as (lap, _):
        await phone.read(cid, 3)
        mine, _ = await phone.until_type("status_update")
        other, _ = await lap.until_type("status_update")
        assert mine["my_read_seq"] == other["my_read_seq"] == 3
    (info,) = [c for c in await bob.rest.conversations() if c["conversation_id"] == cid]
    assert info["unread"] == 0
    await laptop.rest.aclose()


async def test_retried_send_never_makes_a_second_message(node: Node, alice: User,
                                                         bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    cmid = str(uuid.uuid4())
    async with connect(node.url, alice.token) as (a, _):
        await a.send_text(cid, "once", cmid)
        await a.send_text(cid, "once", cmid)  # retry on the same connection
        first, _ = await a.until_type("sent")
        second, _ = await a.until_type("sent")
        assert first == second
    async with connect(node.url, alice.token) as (a, _):  # retry after a reconnect
        await a.send_text(cid, "once", cmid)
        third, _ = await a.until_type("sent")
        assert third == first
    over_rest = await alice.rest.send(cid, "once", cmid)  # and over REST
    assert over_rest["seq"] == first["seq"]
    history = await alice.rest.history(cid)
    assert [m["client_msg_id"] for m in history["messages"]] == [cmid]


async def test_sends_of_one_connection_commit_in_arrival_order(node: Node, alice: User,
                                                               bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (a, _):
        ids = [await a.send_text(cid, f"n{i}") for i in range(200)]
        acks = [(await a.until_type("sent"))[0] for _ in ids]
    by_id = {ack["client_msg_id"]: ack["seq"] for ack in acks}
    assert [by_id[i] for i in ids] == list(range(1, 201))


async def test_sync_map_sends_what_the_device_lacks_and_recent_history_of_the_rest(
        node: Node, alice: User, bob: User) -> None:
    listed = (await alice.rest.direct(bob.user_id))["conversation_id"]
    unlisted = (await alice.rest.group("club", [bob.user_id]))["conversation_id"]
    async with connect(node.url, bob.token) as (b, _):
        for i in range(10):
            await b.send_text(listed, f"l{i}")
        for i in range(60):
            await b.send_text(unlisted, f"u{i}")
        for _ in range(70):
            await b.until_type("sent")
    async with connect(node.url, alice.token, sync={listed: 7, "c_not_mine": 0}) as (_, frames):
        messages = of_type(frames, "message")
        got = {(m["conversation_id"], m["seq"]) for m in messages}
        assert got == {(listed, s) for s in (8, 9, 10)} | {(unlisted, s) for s in range(11, 61)}
        assert frames[-1]["messages"] == 53 and frames[-1]["conversations"] == 2
        assert {s["conversation_id"] for s in of_type(frames, "status_update")} == {
            listed, unlisted}


async def test_msgpack_session_speaks_msgpack_readable_by_the_reference_library(
        node: Node, alice: User, bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    await bob.rest.send(cid, "packed")
    async with connect(node.url, alice.token, codec="msgpack") as (a, frames):
        assert a.ws.subprotocol == "chatnode.v1.msgpack"
        assert of_type(frames, "message")[0]["body"] == "packed"
        await a.ws.send_message(msgpack.packb({"type": "ping", "id": "p1"}))
        raw = await a.ws.get_message()
        assert isinstance(raw, bytes)
        assert msgpack.unpackb(raw) == {"type": "pong", "id": "p1"}
        await a.ws.send_message(msgpack.packb({
            "type": "send", "conversation_id": cid, "client_msg_id": "mp-1", "body": "hi"}))
        sent = msgpack.unpackb(await a.ws.get_message())
        assert sent["type"] == "sent" and sent["seq"] == 2


async def test_live_messages_during_catch_up_arrive_once_in_order(node: Node, alice: User,
                                                                  bob: User) -> None:
    """Bob sends steadily while Alice connects again and again: on every connection each
    conversation's seqs are strictly increasing with no gap and no duplicate."""
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    total = 400

    async def bob_sends() -> None:
        async with connect(node.url, bob.token) as (b, _):
            for i in range(total):
                await b.send_text(cid, f"s{i}")
                if i % 20 == 0:
                    await trio.sleep(0.005)
            for _ in range(total):
                await b.until_type("sent")

    async def alice_reconnects() -> int:
        connections = 0
        last_seen = 0
        while last_seen < total:
            async with connect(node.url, alice.token, sync={cid: last_seen}) as (a, frames):
                connections += 1
                seqs = [m["seq"] for m in of_type(frames, "message")]
                with trio.move_on_after(0.05):
                    while True:
                        frame = await a.recv()
                        if frame["type"] == "message":
                            seqs.append(frame["seq"])
                if seqs:
                    assert seqs == list(range(last_seen + 1, last_seen + 1 + len(seqs)))
                    last_seen = seqs[-1]
        return connections

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bob_sends)
        connections = await alice_reconnects()
    assert connections > 1


async def test_a_reply_moves_no_tick_by_itself_the_next_status_update_carries_it(
        node: Node, alice: User, bob: User) -> None:
    """PROTOCOL.md, own messages: bob's reply moves his own markers up to the reply, but sends
    no status_update by itself; the next status_update of the conversation carries the move."""
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (a, _), \
            connect(node.url, bob.token) as (b, _):
        await a.send_text(cid, "question")
        sent, _ = await a.until_type("sent")
        await b.until_type("message")
        await b.send_text(cid, "answer")  # no delivered, no read
        await b.until_type("sent")
        reply, _ = await a.until_type("message")
        assert reply["seq"] == sent["seq"] + 1
        await a.send({"type": "ping", "id": "quiet"})
        _, before = await a.until_type("pong")
        assert of_type(before, "status_update") == []
        await a.read(cid, reply["seq"])  # alice's own read: her status_update carries bob's move
        status, _ = await a.until_type("status_update")
        assert (status["last_delivered_seq"], status["last_read_seq"]) == (reply["seq"],) * 2
        assert status["my_read_seq"] == reply["seq"]


async def test_a_backlog_goes_out_several_frames_per_socket_write(own_node: Node) -> None:
    """The catch-up of 40 messages arrives whole and in order on both codecs, and the node
    wrote frames queued together in one write (web/send_batch.py), as /metrics counts."""
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(40):
        await alice.rest.send(cid, f"m{i}")
    for codec in ("json", "msgpack"):
        async with connect(node.url, bob.token, codec=codec) as (_, frames):
            assert [m["body"] for m in of_type(frames, "message")] == [
                f"m{i}" for i in range(40)]
    async with httpx.AsyncClient(base_url=node.url) as http:
        text = (await http.get("/metrics")).text
    frames_out = metric(text, "chatnode_ws_frames_out_total")
    writes = metric(text, "chatnode_ws_writes_total")
    assert frames_out >= 2 * 40 and writes < frames_out / 4
    await alice.rest.aclose()
    await bob.rest.aclose()
