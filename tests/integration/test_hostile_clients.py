"""Hostile connections: oversized frames and bodies, slowloris, half-open sockets, floods.

Each attack runs against a node of its own, and each test checks three things: the attacker
gets the documented answer (or is cut off within a generous deadline), the node's memory does
not grow with what the attacker sent, and a bystander pair of users can still chat.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio

from chatnode.client import connect

from ..conftest import Node, new_user
from .raw_wire import (
    client_frame,
    client_frame_header,
    close_code,
    hello_frame,
    open_raw,
    open_upgraded,
    read_until_closed,
    rss_mb,
    send_until_refused,
    upgrade_request,
)

MB = 1 << 20
ATTACK_BYTES = 50 * MB
# Generous: the node may grow by buffers and allocator slack, never by the attack's size.
RSS_GROWTH_MB = 30
# "It happens at all" bounds for the node closing a connection, far above the deadlines set.
CUT_WITHIN_S = 30


async def bystanders_chat(node: Node) -> None:
    """Two fresh users log in, connect and exchange a message."""
    a, b = await new_user(node, "by"), await new_user(node, "by")
    try:
        cid = (await a.rest.direct(b.user_id))["conversation_id"]
        async with connect(node.url, a.token) as (sa, _), connect(node.url, b.token) as (sb, _):
            await sa.send_text(cid, "still here")
            sent, _ = await sa.until_type("sent", timeout=30)
            message, _ = await sb.until_type("message", timeout=30)
            assert message["body"] == "still here" and message["seq"] == sent["seq"]
    finally:
        await a.rest.aclose()
        await b.rest.aclose()


def node_pid(node: Node) -> int:
    assert node.process is not None
    return node.process.pid


async def metric(node: Node, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


# --- oversized ---------------------------------------------------------------------------------


async def test_a_websocket_message_far_over_the_limit_is_cut_off_without_being_held(
        own_node: Node) -> None:
    node = own_node.start()
    user = await new_user(node, "big")
    await user.rest.aclose()
    rss_before = rss_mb(node_pid(node))
    stream, _ = await open_upgraded(node)
    await stream.send_all(hello_frame(user.token))
    heard = b""
    sent = 0

    async def stream_50_mb() -> None:
        nonlocal sent
        await stream.send_all(client_frame_header(ATTACK_BYTES))
        sent = await send_until_refused(stream, b"a" * MB, ATTACK_BYTES)

    async def listen() -> None:
        nonlocal heard
        heard = await read_until_closed(stream)

    with trio.fail_after(CUT_WITHIN_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream_50_mb)
            nursery.start_soon(listen)
    # hypercorn's hard limit is 16 x frame_bytes (1 MiB): over it, close 1009 and the node
    # stops reading, so most of the 50 MB never gets through.
    assert close_code(heard) == 1009
    assert sent < ATTACK_BYTES
    assert rss_mb(node_pid(node)) - rss_before < RSS_GROWTH_MB
    await bystanders_chat(node)


async def test_a_compressed_message_is_not_inflated_past_the_limit(own_node: Node) -> None:
    """A deflate bomb before `hello`: 60 MB of zeros deflate to 60 KB. Inflated whole, it took
    the node's peak memory up by 130 MB; bounded, it is dropped at 1 MiB with the connection
    (wsproto fails the frame: the connection goes without a close frame)."""
    node = own_node.start()
    peak_before = rss_mb(node_pid(node), "VmHWM")
    stream, _ = await open_upgraded(node, extensions="permessage-deflate")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflate.compress(bytes(60 * MB)) + deflate.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692: a message leaves out the final empty block's 00 00 ff ff
    with trio.fail_after(CUT_WITHIN_S):
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(client_frame_header(len(bomb), compressed=True) + bomb)
        heard = await read_until_closed(stream)  # returns once the node has dropped us
    assert close_code(heard) in (1009, None)
    assert rss_mb(node_pid(node), "VmHWM") - peak_before < RSS_GROWTH_MB
    await bystanders_chat(node)


async def test_a_client_leaving_mid_upload_is_not_an_error(tmp_path: Path) -> None:
    node = Node(tmp_path / "data", env={"CHATNODE_LOG_LEVEL": "info"},
                log_file=tmp_path / "node.log").start()
    try:
        user = await new_user(node, "leaver")
        await user.rest.aclose()
        for _ in range(3):
            stream = await open_raw(node)
            await stream.send_all(post_head("/api/v1/media", user.token, chunked=False,
                                            length=MB) + bytes(10_000))
            await stream.aclose()  # the phone lost its network
        with trio.fail_after(10):
            while (tmp_path / "node.log").read_text().count("client left") < 3:
                await trio.sleep(0.1)
        async with httpx.AsyncClient(base_url=node.url) as http:
            metrics = (await http.get("/metrics")).text
        assert 'chatnode_errors_total{code="internal"}' not in metrics
        assert "unhandled error" not in (tmp_path / "node.log").read_text()
        assert list((tmp_path / "data" / "media" / "tmp").iterdir()) == []  # nothing kept
    finally:
        node.kill()


def post_head(path: str, token: str, *, chunked: bool, length: int = ATTACK_BYTES) -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()


async def post_huge(node: Node, path: str, token: str, *, chunked: bool) -> bytes:
    """POST 50 MB (or until the node cuts us off); everything the node answered."""
    stream = await open_raw(node)
    await stream.send_all(post_head(path, token, chunked=chunked))
    chunk = b"x" * MB
    if chunked:
        chunk = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    answer = b""

    async def listen() -> None:
        nonlocal answer
        answer = await read_until_closed(stream)
        nursery.cancel_scope.cancel()

    with trio.fail_after(CUT_WITHIN_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await send_until_refused(stream, chunk, ATTACK_BYTES)
    await stream.aclose()
    return answer


async def test_huge_request_bodies_get_413_on_every_post_route(own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.group("g", [bob.user_id]))["conversation_id"]
    routes = ["/api/v1/register", "/api/v1/login", "/api/v1/conversations",
              f"/api/v1/conversations/{cid}/members", f"/api/v1/conversations/{cid}/messages",
              "/api/v1/media"]
    rss_before = rss_mb(node_pid(node))
    for path in routes:
        for chunked in (False, True):
            answer = await post_huge(node, path, alice.token, chunked=chunked)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 413"), (path, chunked, head)
            assert json.loads(body)["error"]["code"] == "too_large", (path, chunked)
    # Answered before the body was read (a bad token): 401, and the connection still closes.
    answer = await post_huge(node, "/api/v1/conversations", "not-a-token", chunked=False)
    assert answer.startswith(b"HTTP/1.1 401")
    assert rss_mb(node_pid(node)) - rss_before < RSS_GROWTH_MB
    # Nothing was stored: no message in the group, no upload left behind.
    assert all(m["kind"] == "system" for m in (await alice.rest.history(cid))["messages"])
    assert list((node.data_dir / "media" / "tmp").iterdir()) == []
    await alice.rest.aclose()
    await bob.rest.aclose()
    await bystanders_chat(node)


@pytest.mark.parametrize(("request_head", "status"), [
    # hypercorn refuses whatever does not fit h11's 16 KiB for the request line and headers
    # with 431, a huge URL included (not 414), and closes the connection.
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MB + b"\r\n\r\n", b"431"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: a\r\n" * 100_000 + b"\r\n", b"431"),
    (b"GET /" + b"a" * MB + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"431"),
])
async def test_huge_headers_and_urls_are_refused(node: Node, request_head: bytes,
                                                 status: bytes) -> None:
    stream = await open_raw(node)
    with trio.fail_after(CUT_WITHIN_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_until_refused, stream, request_head, len(request_head))
            answer = await read_until_closed(stream)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]


# --- slowloris -----------------------------------------------------------------------------------

SHORT_DEADLINES = {"CHATNODE_LIMITS_HEADER_TIMEOUT_S": "2", "CHATNODE_LIMITS_BODY_TIMEOUT_S": "2",
                   "CHATNODE_LIMITS_HELLO_TIMEOUT_S": "2"}


async def drip(stream: trio.SocketStream, data: bytes, every_s: float) -> None:
    """Send `data` one byte at a time, until it is all sent or the node cuts us off."""
    for byte in data:
        try:
            await stream.send_all(bytes([byte]))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await trio.sleep(every_s)


async def dripped_answer(stream: trio.SocketStream, data: bytes) -> bytes:
    """Drip `data`; return what the node said before it closed the connection."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drip, stream, data, 0.5)
        answer = await read_until_closed(stream)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return answer


async def test_slowloris_connections_are_closed_and_others_are_served(own_node: Node) -> None:
    own_node.env.update(SHORT_DEADLINES)
    node = own_node.start()
    user = await new_user(node, "slow")
    await user.rest.aclose()
    headers_only = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 100
    answers: dict[str, list[bytes]] = {"headers": [], "upgrade": [], "body": [], "frame": []}

    async def slow(kind: str, opened: Callable[[], Awaitable[trio.SocketStream]],
                   data: bytes) -> None:
        answers[kind].append(await dripped_answer(await opened(), data))

    async def upgraded_then_drip_hello() -> trio.SocketStream:
        return (await open_upgraded(node))[0]

    async def body_started() -> trio.SocketStream:
        stream = await open_raw(node)
        await stream.send_all(post_head("/api/v1/login", "", chunked=False, length=200))
        return stream

    with trio.fail_after(CUT_WITHIN_S):
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(slow, "headers", partial_open(node), headers_only)
            nursery.start_soon(slow, "upgrade", partial_open(node), upgrade_request())
            nursery.start_soon(slow, "body", body_started, b"{" + b" " * 199)
            nursery.start_soon(slow, "frame", upgraded_then_drip_hello, hello_frame(user.token))
            await bystanders_chat(node)
    # Headers that never end, a WebSocket upgrade among them: closed without an answer.
    assert answers["headers"] == [b""] * 200 and answers["upgrade"] == [b""]
    # A body that drips: 408, and the connection is closed.
    assert answers["body"][0].startswith(b"HTTP/1.1 408")
    assert json.loads(answers["body"][0].partition(b"\r\n\r\n")[2])["error"]["code"] == "invalid"
    # A hello that drips never makes a session: closed 4000 at the hello deadline.
    assert close_code(answers["frame"][0]) == 4000


def partial_open(node: Node) -> Callable[[], Awaitable[trio.SocketStream]]:
    return lambda: open_raw(node)


# --- half-open -----------------------------------------------------------------------------------

IDLE_SOCKETS = 2000
SILENT_WEBSOCKETS = 300
# Per connection held open by hypercorn and, for a WebSocket, our session task before hello.
RSS_PER_CONNECTION_KIB = 100


def enough_file_descriptors(needed: int) -> None:
    """Raise this process's soft limit (the node inherits it) or skip where it cannot be."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def node_fd_limit(node: Node) -> int:
    with open(f"/proc/{node_pid(node)}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no fd limit")


async def test_thousands_of_half_open_connections_are_closed_and_others_are_served(
        own_node: Node) -> None:
    needed = IDLE_SOCKETS + SILENT_WEBSOCKETS + 200
    enough_file_descriptors(needed)
    # Long enough that they are all open at once, short enough for the test.
    own_node.env.update({"CHATNODE_LIMITS_HEADER_TIMEOUT_S": "6",
                         "CHATNODE_LIMITS_HELLO_TIMEOUT_S": "6"})
    node = own_node.start()
    assert node_fd_limit(node) >= needed
    user = await new_user(node, "open")
    await user.rest.aclose()
    rss_before = rss_mb(node_pid(node))
    everyone_open = trio.Event()
    opened = 0
    idle_answers: list[bytes] = []
    websocket_answers: list[bytes] = []

    async def hold(open_one: Callable[[], Awaitable[trio.SocketStream]],
                   answers: list[bytes]) -> None:
        nonlocal opened
        stream = await open_one()
        opened += 1
        if opened == IDLE_SOCKETS + SILENT_WEBSOCKETS:
            everyone_open.set()
        answers.append(await read_until_closed(stream))
        await stream.aclose()

    async def upgraded() -> trio.SocketStream:
        return (await open_upgraded(node))[0]

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(IDLE_SOCKETS):
                nursery.start_soon(hold, partial_open(node), idle_answers)
            for _ in range(SILENT_WEBSOCKETS):
                nursery.start_soon(hold, upgraded, websocket_answers)
            await everyone_open.wait()
            held = rss_mb(node_pid(node)) - rss_before
            await bystanders_chat(node)
    assert held * 1024 / (IDLE_SOCKETS + SILENT_WEBSOCKETS) < RSS_PER_CONNECTION_KIB
    # Silent sockets are closed at the header deadline without a word; upgraded ones that
    # never said hello get 4000 at the hello deadline.
    assert idle_answers == [b""] * IDLE_SOCKETS
    assert [close_code(a) for a in websocket_answers] == [4000] * SILENT_WEBSOCKETS
    await bystanders_chat(node)


# --- floods --------------------------------------------------------------------------------------

FLOOD_OUTBOX = 64


async def flood_without_reading(node: Node, token: str, frame: bytes) -> int:
    """Say hello, then send `frame` as fast as possible and never read, until the node cuts
    the connection. Returns how many were sent."""
    stream, _ = await open_upgraded(node)
    # A small receive window, so the node's writes back to us stall early.
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await stream.send_all(hello_frame(token))
    batch = frame * 500
    sent = 0
    try:
        while True:
            await stream.send_all(batch)
            sent += 500
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return sent


async def test_floods_are_bounded_by_the_flooders_own_outbox(own_node: Node) -> None:
    own_node.env.update({"CHATNODE_OUTBOX_FRAMES": str(FLOOD_OUTBOX),
                         "CHATNODE_LIMITS_UNREAD_TIMEOUT_S": "2"})
    node = own_node.start()
    pinger, garbler, typist, watcher = [await new_user(node, name) for name in
                                        ("pinger", "garbler", "typist", "watcher")]
    cid = (await typist.rest.group("typing flood", [watcher.user_id]))["conversation_id"]
    for user in (pinger, garbler, typist, watcher):
        await user.rest.aclose()
    rss_before = rss_mb(node_pid(node))
    typing = client_frame(json.dumps({"type": "typing", "conversation_id": cid}))
    flooded: dict[str, int] = {}

    async def flood(name: str, token: str, frame: bytes) -> None:
        flooded[name] = await flood_without_reading(node, token, frame)

    async with connect(node.url, watcher.token) as (watching, _):
        typing_shown = 0
        with trio.fail_after(CUT_WITHIN_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood, "pings", pinger.token,
                                   client_frame('{"type": "ping", "id": "p"}'))
                nursery.start_soon(flood, "bad frames", garbler.token, client_frame("not json"))
                stream, _ = await open_upgraded(node)
                await stream.send_all(hello_frame(typist.token))
                started = last_shown = trio.current_time()
                for _ in range(40):
                    await stream.send_all(typing * 500)
                # What the watcher was shown meanwhile: nothing like 20,000 typing events.
                with trio.move_on_after(0.5):
                    while True:
                        frame = await watching.recv()
                        if frame["type"] == "typing" and frame["typing"]:
                            typing_shown += 1
                            last_shown = trio.current_time()
        # One `typing: true` per forwarding window of 2 s, however fast the typist types: the
        # n-th was forwarded 2 (n - 1) s after the first at the earliest, and the first not
        # before the flood started (a busy node may still be reading the flood after the
        # typist's last write, so the bound runs to the last one shown, not to that write).
        assert 1 <= typing_shown <= (last_shown - started) / 2 + 1
        # A non-reading flooder's answers stop at its own outbox: it is closed as too slow
        # (4008) and, as it takes none of the node's bytes, cut off.
        assert set(flooded) == {"pings", "bad frames"}
        assert await metric(node, "chatnode_outbox_overflows_total") >= 2
        assert rss_mb(node_pid(node)) - rss_before < RSS_GROWTH_MB
        # The watcher's own session was never overflowed: it still gets live frames.
        await bystanders_chat(node)
        await watching.send({"type": "ping", "id": "after"})
        pong, _ = await watching.until_type("pong")
        assert pong["id"] == "after"
