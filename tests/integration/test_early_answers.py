"""An answer given before the request body has all arrived (a non-admin's 403, a bad token's
401) keeps the connection usable: a small body still on its way is read first, so a client
that keeps its connection alive gets its next request answered on it. A big body, or one that
does not come, is not waited for, and the answer says `connection: close` so that no client
sends another request on a connection the node is closing (web/early_answer.py).

CI once saw httpx's "Server disconnected without sending a response" here: the node had
answered a 403 before the POST's body arrived, then closed the connection unannounced."""

from __future__ import annotations

import json

import trio

from ..conftest import Node, new_user
from .raw_wire import open_raw

INVITES = "/api/v1/invites"


def post_head(token: str, length: int) -> bytes:
    return (f"POST {INVITES} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def get_me(token: str) -> bytes:
    return f"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()


async def read_answer(stream: trio.SocketStream, buffer: bytearray
                      ) -> tuple[int, dict[str, str], bytes]:
    """One whole HTTP answer (status, headers, body) from `stream`, past what `buffer` holds."""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some()
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(rest) < length:
            rest += await stream.receive_some()
    buffer[:] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


async def test_a_body_a_moment_behind_its_headers_keeps_the_connection_for_the_next_request(
        node: Node) -> None:
    user = await new_user(node, "late")
    body = json.dumps({"uses": 1000, "admin": True}).encode()
    stream = await open_raw(node)
    buffer = bytearray()
    for _ in range(3):  # the same connection, again and again
        await stream.send_all(post_head(user.token, len(body)))
        await trio.sleep(0.2)  # the node reads the headers, and answers 403 before the body
        await stream.send_all(body)
        status, headers, answer = await read_answer(stream, buffer)
        assert status == 403 and json.loads(answer)["error"]["code"] == "forbidden"
        assert headers.get("connection") != "close"
        await stream.send_all(get_me(user.token))
        status, _, answer = await read_answer(stream, buffer)
        assert status == 200 and json.loads(answer)["user_id"] == user.user_id
    await stream.aclose()
    await user.rest.aclose()


async def test_a_big_body_or_one_that_never_comes_is_answered_with_connection_close(
        node: Node) -> None:
    user = await new_user(node, "late")
    for length in (10 << 20, 100):  # far over what is waited for; small but never sent
        stream = await open_raw(node)
        await stream.send_all(post_head(user.token, length))
        status, headers, answer = await read_answer(stream, bytearray())
        assert status == 403 and json.loads(answer)["error"]["code"] == "forbidden"
        assert headers["connection"] == "close"
        with trio.fail_after(10):  # and the node does close it
            while await stream.receive_some():
                pass
        await stream.aclose()
    await user.rest.aclose()
