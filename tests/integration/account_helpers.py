"""Helpers of the account self-service tests: a session's close code, a token's fate."""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, Session


async def close_code(session: Session, timeout: float = 10) -> int:
    """Read until the node closes the session; its close code."""
    with trio.fail_after(timeout):
        while True:
            try:
                await session.ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code


async def still_open(session: Session) -> bool:
    """Whether the session still answers a ping (so it was not closed)."""
    await session.send({"type": "ping", "id": "still-there"})
    pong, _ = await session.until(lambda f: f.get("type") == "pong")
    return pong["id"] == "still-there"


async def token_status(url: str, token: str) -> int:
    """What GET /api/v1/me answers this token: 200 while it works, 401 once it is revoked."""
    async with RestClient(url, token) as rest:
        status, _ = await rest.call("GET", "/api/v1/me")
    return status
