"""Raw sockets for the hostile-client tests: requests and WebSocket frames byte by byte, as no
well-behaved client library would send them."""

from __future__ import annotations

import base64
import json
import os
import struct

import trio

from ..conftest import Node

OP_TEXT, OP_CLOSE = 0x1, 0x8


def upgrade_request(host: str = "127.0.0.1", extensions: str | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n").encode()


def client_frame_header(length: int, opcode: int = OP_TEXT, compressed: bool = False) -> bytes:
    """A final, masked client frame header announcing `length` bytes. The mask key is zero, so
    the payload goes as it is. `compressed` sets RSV1: a permessage-deflate message."""
    first = 0x80 | (0x40 if compressed else 0) | opcode
    if length < 126:
        head = bytes([first, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", length)
    return head + b"\0\0\0\0"


def client_frame(payload: bytes | str, opcode: int = OP_TEXT) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return client_frame_header(len(data), opcode) + data


def hello_frame(token: str) -> bytes:
    return client_frame(json.dumps({"type": "hello", "token": token}))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole unmasked server frame in `data`."""
    frames = []
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, at)
            at += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, at)
            at += 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at:at + length]))
        at += length
    return frames


def close_code(data: bytes) -> int | None:
    for opcode, payload in server_frames(data):
        if opcode == OP_CLOSE:
            return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None
    return None


async def open_raw(node: Node) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", node.port)


async def open_upgraded(node: Node, extensions: str | None = None
                        ) -> tuple[trio.SocketStream, bytes]:
    """A WebSocket past its 101; returns the stream and any bytes read after the headers."""
    stream = await open_raw(node)
    await stream.send_all(upgrade_request(extensions=extensions))
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = await stream.receive_some(4096)
        assert chunk, "closed before the 101"
        response += chunk
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream, rest


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server says until it closes the connection (EOF or reset)."""
    data = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(1 << 16)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def send_until_refused(stream: trio.SocketStream, chunk: bytes, total: int) -> int:
    """Send `total` bytes in chunks; stop when the server cuts the connection. Returns how
    much was sent."""
    sent = 0
    try:
        while sent < total:
            await stream.send_all(chunk[:total - sent])
            sent += min(len(chunk), total - sent)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return sent


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now; with field="VmHWM" the most it ever was (a spike since freed)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")
