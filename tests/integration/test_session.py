"""The session lifecycle and every error a WebSocket client can get."""

import json

import httpx
import msgpack
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from chatnode.client import connect, ws_url

from ..conftest import Node, User, new_user


async def closed_with(ws, timeout: float = 10) -> int:  # type: ignore[no-untyped-def]
    """Read until the server closes the connection; return the close code."""
    with trio.fail_after(timeout):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code


@pytest.mark.parametrize("first", [
    '{"type": "ping"}',
    '{"type": "hello", "token": "not-a-token"}',
    "not json at all",
    '{"type": "hello"}',
])
async def test_no_session_without_a_good_hello(node: Node, first: str) -> None:
    async with open_websocket_url(ws_url(node.url)) as ws:
        await ws.send_message(first)
        error = json.loads(await ws.get_message())
        assert error["type"] == "error" and error["code"] == "unauthenticated"
        assert await closed_with(ws) == 4001


async def test_subprotocol_answer(node: Node, alice: User) -> None:
    async with open_websocket_url(ws_url(node.url), subprotocols=["chatnode.v1.json"]) as ws:
        assert ws.subprotocol == "chatnode.v1.json"
    async with open_websocket_url(ws_url(node.url), subprotocols=["something.else"]) as ws:
        assert ws.subprotocol is None
    async with open_websocket_url(ws_url(node.url)) as ws:
        assert ws.subprotocol is None
        await ws.send_message(f'{{"type": "hello", "token": "{alice.token}"}}')
        welcome = json.loads(await ws.get_message())
        assert welcome["type"] == "welcome" and welcome["user_id"] == alice.user_id
        assert welcome["device_id"] == alice.device_id and welcome["heartbeat_s"] == 30


BAD_FRAMES = [
    ("not json", "bad_frame", None),
    ("[1, 2]", "bad_frame", None),
    ('{"type": "nope"}', "invalid", "type"),
    ('{"type": "send", "conversation_id": "c", "body": "x"}', "invalid", "client_msg_id"),
    ('{"type": "delivered", "conversation_id": "c", "seq": "five"}', "invalid", "seq"),
    ('{"type": "read", "conversation_id": "c", "seq": -1}', "invalid", "seq"),
    ('{"type": "hello", "token": "again"}', "invalid", None),
]


@pytest.mark.parametrize(("frame", "code", "field"), BAD_FRAMES)
async def test_bad_frame_is_answered_and_the_session_goes_on(
        node: Node, alice: User, bob: User, frame: str, code: str, field: str | None) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (a, _):
        await a.ws.send_message(frame)
        error, _ = await a.until_type("error")
        assert error["code"] == code
        if field is not None:
            assert field in error["message"]
        await a.send_text(cid, "still here")
        sent, _ = await a.until_type("sent")
        assert sent["seq"] == 1


async def test_refusals_change_nothing(node: Node, alice: User, bob: User) -> None:
    stranger = await new_user(node, "stranger")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    await alice.rest.send(cid, "one")
    async with connect(node.url, stranger.token) as (s, frames):
        assert frames[-1] == {"type": "synced", "conversations": 0, "messages": 0}
        for frame in [
            {"type": "send", "conversation_id": cid, "client_msg_id": "x1", "body": "intrude"},
            {"type": "send", "conversation_id": "c_doesnotexist", "client_msg_id": "x2",
             "body": "intrude"},
            {"type": "read", "conversation_id": cid, "seq": 1},
            {"type": "delivered", "conversation_id": "c_doesnotexist", "seq": 1},
        ]:
            await s.send(frame)
            error, _ = await s.until_type("error")
            assert error["code"] == "forbidden"
            assert error["message"] == "not a member of this conversation"  # same either way
    async with connect(node.url, bob.token) as (b, _):
        await b.send({"type": "delivered", "conversation_id": cid, "seq": 2})
        error, _ = await b.until_type("error")
        assert error["code"] == "invalid_seq" and error["ref"] == "delivered"
        await b.send_text(cid, "x" * 10_001, "too-long")
        error, _ = await b.until_type("error")
        assert (error["code"], error["ref"]) == ("too_large", "too-long")
        await b.send({"type": "send", "conversation_id": cid, "client_msg_id": "big",
                      "body": "y" * 70_000})
        error, _ = await b.until_type("error")
        assert error["code"] == "too_large"
    history = await alice.rest.history(cid)
    assert [m["body"] for m in history["messages"]] == ["one"]
    (info,) = await alice.rest.conversations()
    assert (info["last_delivered_seq"], info["last_read_seq"]) == (0, 0)
    await stranger.rest.aclose()


async def test_silent_session_is_closed_with_4000(own_node: Node) -> None:
    own_node.env["CHATNODE_HEARTBEAT_S"] = "1"
    node = own_node.start()
    user = await new_user(node)
    async with connect(node.url, user.token) as (a, frames):
        assert frames[0]["heartbeat_s"] == 1
        # pings keep it alive past 2 x heartbeat_s ...
        for _ in range(6):
            await trio.sleep(0.5)
            await a.send({"type": "ping"})
            await a.until_type("pong")
        # ... and silence ends it
        started = trio.current_time()
        assert await closed_with(a.ws) == 4000
        assert 1.5 < trio.current_time() - started < 4
    await user.rest.aclose()


async def test_slow_reader_is_closed_with_4008_and_loses_nothing(own_node: Node) -> None:
    own_node.env["CHATNODE_OUTBOX_FRAMES"] = "16"
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    body = "z" * 8000
    total = 600
    async with open_websocket_url(ws_url(node.url), message_queue_size=0) as slow:
        await slow.send_message(f'{{"type": "hello", "token": "{bob.token}"}}')
        async with connect(node.url, alice.token) as (a, _):
            for i in range(total):  # Alice reads her acks as she goes: she is not slow
                await a.send_text(cid, f"{i} {body}")
                await a.until_type("sent", timeout=30)
        assert await closed_with(slow, timeout=30) == 4008
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(node.url + "/metrics")).text
    assert "chatnode_outbox_overflows_total 1.0" in metrics.splitlines()
    async with connect(node.url, bob.token) as (_b, frames):
        seqs = [f["seq"] for f in frames if f["type"] == "message"]
        assert seqs == list(range(1, total + 1))
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_raw_msgpack_hello_and_bad_msgpack_frame(node: Node, alice: User) -> None:
    async with open_websocket_url(ws_url(node.url),
                                  subprotocols=["chatnode.v1.msgpack"]) as ws:
        await ws.send_message(msgpack.packb({"type": "hello", "token": alice.token}))
        assert msgpack.unpackb(await ws.get_message())["type"] == "welcome"
        while msgpack.unpackb(await ws.get_message())["type"] != "synced":
            pass
        await ws.send_message(msgpack.packb([1, 2, 3]))
        error = msgpack.unpackb(await ws.get_message())
        assert error["code"] == "bad_frame"
        await ws.send_message(b"\xc1")  # never used in MessagePack
        assert msgpack.unpackb(await ws.get_message())["code"] == "bad_frame"
