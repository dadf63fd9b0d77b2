"""An HTTP answer given before the request body was read must not hang the connection.

hypercorn (0.17, 0.18) queues at most 10 request messages for the app. After the app's last
response message it puts a final `http.disconnect` in that same queue, from inside the app's
own `send`. When the app answered early (413 for a body over the limit, 401 for a bad token)
while the client kept sending, the queue is full of body chunks nobody reads: that `send`
never returns, hypercorn's read loop waits for room too, and the connection, its tasks and
10 chunks of body stay for good, even after the client leaves. Any client could pile them up.

`DrainWhileAnswering` reads and drops the unread body while the last response message goes
out, so there is always room for the disconnect; the connection then closes as it should.
"""

from __future__ import annotations

import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DrainWhileAnswering:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = False

        async def tracked_receive() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def drain() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def last_send_drains(message: Message) -> None:
            if body_read or message["type"] != "http.response.body" \
                    or message.get("more_body", False):
                await send(message)
                return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                await send(message)
                nursery.cancel_scope.cancel()

        await self.app(scope, tracked_receive, last_send_drains)
