"""What a scenario needs before it is timed: users, conversations, missed messages."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import trio
from trio_websocket import open_websocket_url

from ..client import SUBPROTOCOL_JSON, RestClient, ws_url
from .peers import Peer

PASSWORD = "bench password 1"


async def users(url: str, count: int, prefix: str = "b") -> list[dict[str, Any]]:
    """Register `count` users, a few at a time (each registration hashes a password)."""
    run = uuid.uuid4().hex[:6]
    made: list[dict[str, Any]] = [{}] * count
    limit = trio.CapacityLimiter(8)

    async def one(i: int) -> None:
        async with limit, RestClient(url) as rest:
            auth = await rest.register(f"{prefix}{run}{i}", PASSWORD)
            made[i] = auth

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return made


async def directs(url: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    ids: list[str] = [""] * len(pairs)
    limit = trio.CapacityLimiter(16)

    async def one(i: int) -> None:
        a, b = pairs[i]
        async with limit, RestClient(url, a["token"]) as rest:
            ids[i] = (await rest.direct(b["user_id"]))["conversation_id"]

    async with trio.open_nursery() as nursery:
        for i in range(len(pairs)):
            nursery.start_soon(one, i)
    return ids


async def group(url: str, admin: dict[str, Any], members: list[dict[str, Any]]) -> str:
    async with RestClient(url, admin["token"]) as rest:
        info = await rest.group("bench", [m["user_id"] for m in members])
    return info["conversation_id"]


async def backlog(url: str, token: str, conversation_ids: list[str], per_conversation: int,
                  window: int = 256) -> None:
    """Send `per_conversation` messages into each conversation over one pipelined session."""
    peer = Peer(token, ack="none")
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run, url)
        peer.window = trio.Semaphore(window)
        for cid in conversation_ids:
            for _ in range(per_conversation):
                await peer.window.acquire()
                await peer.send_stamped(cid)
        while peer.unacknowledged:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def hello_to_synced(url: str, token: str) -> tuple[float, dict[str, list[int]]]:
    """Seconds from sending hello (on an open socket) to `synced`, and the seqs the catch-up
    carried per conversation, in arrival order."""
    seqs: dict[str, list[int]] = {}
    async with open_websocket_url(ws_url(url), subprotocols=[SUBPROTOCOL_JSON]) as ws:
        started = trio.current_time()
        await ws.send_message(msgspec.json.encode({"type": "hello", "token": token}).decode())
        while True:
            frame = msgspec.json.decode(await ws.get_message())
            if frame["type"] == "message":
                seqs.setdefault(frame["conversation_id"], []).append(frame["seq"])
            elif frame["type"] == "synced":
                return trio.current_time() - started, seqs
