"""What the node keeps of secrets, and what it agrees to on the wire."""

import base64
import os
import sqlite3

import trio

from ..conftest import PASSWORD, Node, new_user


async def test_passwords_are_argon2_and_tokens_are_stored_only_as_hashes(own_node: Node) -> None:
    node = own_node.start()
    user = await new_user(node)
    second = await user.rest.login(user.username, PASSWORD)
    db = sqlite3.connect(own_node.data_dir / "chatnode.db")
    try:
        (password_hash,) = db.execute(
            "SELECT password_hash FROM users WHERE user_id = ?", (user.user_id,)).fetchone()
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert password_hash.startswith("$argon2")
    assert PASSWORD not in dump
    for token in (user.token, second["token"]):
        assert token not in dump
        assert token.encode() not in (own_node.data_dir / "chatnode.db").read_bytes()
    await user.rest.aclose()


async def test_permessage_deflate_is_used_when_offered(node: Node) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        await stream.send_all((
            "GET /ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{node.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: chatnode.v1.json\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode())
        response = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in response:
                response += await stream.receive_some(4096)
    head = response.decode("latin-1").lower()
    assert head.startswith("http/1.1 101")
    assert "sec-websocket-extensions: permessage-deflate" in head
    assert "sec-websocket-protocol: chatnode.v1.json" in head
