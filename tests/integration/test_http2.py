"""HTTP/2 reaches the node too: hypercorn speaks it on the plain port to any client that opens
with HTTP/2's preface (prior knowledge), so an answer given before a request body has all come
must hold there as it does on HTTP/1.1 (web/early_answer.py, web/hypercorn_fixes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ..conftest import Node, new_user

INVITES = "/api/v1/invites"


def http2_client(node: Node) -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=False, http2=True, base_url=node.url, timeout=10)


async def test_body_data_after_an_early_http2_answer_leaves_the_node_running(
        own_node: Node) -> None:
    """hypercorn raised KeyError for DATA of a stream it had already answered, and under the
    trio worker that stopped the whole node: one unauthenticated POST was enough."""
    node = own_node.start()
    user = await new_user(node, "h2")
    async with http2_client(node) as client:
        refused = await client.post(INVITES, content=b"x" * (1 << 20),
                                    headers={"authorization": "Bearer not-a-token"})
        assert (refused.http_version, refused.status_code) == ("HTTP/2", 401)
        me = await client.get("/api/v1/me", headers={"authorization": f"Bearer {user.token}"})
        assert me.status_code == 200 and me.json()["user_id"] == user.user_id
    assert node.process is not None and node.process.poll() is None
    await user.rest.aclose()


async def test_an_early_http2_answer_to_a_body_without_length_keeps_the_connection(
        node: Node) -> None:
    """An HTTP/2 body needs no Content-Length. Taken for an empty one, its data was not drained
    behind a non-admin's 403: hypercorn's queue for the app filled, and the connection, every
    request on it included, hung for good."""
    user = await new_user(node, "h2")
    auth = {"authorization": f"Bearer {user.token}"}

    async def body_in_small_frames() -> AsyncIterator[bytes]:
        for _ in range(300):  # far more frames than hypercorn queues for the app (10)
            yield b" " * 10

    async with http2_client(node) as client:
        for _ in range(3):
            refused = await client.post(INVITES, content=body_in_small_frames(), headers=auth)
            assert (refused.http_version, refused.status_code) == ("HTTP/2", 403)
            me = await client.get("/api/v1/me", headers=auth)
            assert me.status_code == 200 and me.json()["user_id"] == user.user_id
    await user.rest.aclose()
