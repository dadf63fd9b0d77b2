"""The node speaks HTTP/1.1 only. hypercorn would switch a plain-port connection to HTTP/2 for
a client that opens with HTTP/2's preface or asks for an h2c upgrade, and its HTTP/2 code had
crashes any client could reach, each of which stopped the whole node (web/hypercorn_fixes.py,
4 and 5). Browsers speak HTTP/2 to the reverse proxy, which speaks HTTP/1.1 to the node."""

from __future__ import annotations

import h2.config
import h2.connection
import httpx
import pytest
import trio

from ..conftest import Node, new_user
from .raw_wire import open_raw


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    answer = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some():
            answer += chunk
    return answer


async def still_serving(node: Node) -> None:
    user = await new_user(node, "after")
    me = await user.rest.request("GET", "/api/v1/me")
    assert me["user_id"] == user.user_id
    await user.rest.aclose()
    assert node.process is not None and node.process.poll() is None


async def test_the_http2_preface_gets_505_and_a_closed_connection(own_node: Node) -> None:
    """What used to stop the node: 1,001 PRIORITY frames for streams never opened (hypercorn's
    priority tree refused the 1,001st with an error that ended the server)."""
    node = own_node.start()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    for stream_id in range(1, 2 * 1100, 2):
        client.prioritize(stream_id, weight=16, depends_on=0, exclusive=False)
    stream = await open_raw(node)
    await stream.send_all(client.data_to_send())
    answer = await read_until_closed(stream)
    assert answer.startswith(b"HTTP/1.1 505 ")
    await still_serving(node)


async def test_an_http2_client_with_prior_knowledge_is_refused_and_the_node_goes_on(
        own_node: Node) -> None:
    node = own_node.start()
    async with httpx.AsyncClient(http1=False, http2=True, base_url=node.url) as client:
        with pytest.raises(httpx.HTTPError):
            await client.post("/api/v1/invites", content=b"x" * (1 << 20),
                              headers={"authorization": "Bearer not-a-token"})
    await still_serving(node)


async def test_an_h2c_upgrade_is_answered_in_http1(node: Node) -> None:
    """A server may ignore Upgrade: the request is served as the HTTP/1.1 request it is."""
    stream = await open_raw(node)
    await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings"
                          b"\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    answer = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 200 ")
    await stream.aclose()
