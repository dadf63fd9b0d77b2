"""The access log: one line per HTTP request, with what an admin needs and nothing secret.

A line holds the method, the path, the status, the size, the time taken and the client's
address. Never the query string (a client may put anything there, a token included) and never
a header (so `Authorization` cannot reach a log). WebSocket sessions log their own opening and
closing (web/ws.py), so their upgrade is passed straight through, as is everything when the
access log is off.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..logs import fields

log = logging.getLogger("chatnode.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        size: int | None = None

        async def send_and_note(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-length" and value.isdigit():
                        size = int(value)
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client")
            log.info("request", extra=fields(
                method=scope["method"], path=scope["path"], status=status or None,
                bytes=size, ms=round((time.perf_counter() - started) * 1000, 1),
                address=client[0] if client else None))
