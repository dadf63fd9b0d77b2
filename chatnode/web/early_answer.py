"""An HTTP answer given before the request body was read must neither hang the connection nor
break the client's next request on it.

hypercorn (0.17, 0.18) queues at most 10 request messages for the app. After the app's last
response message it puts a final `http.disconnect` in that same queue, from inside the app's
own `send`. When the app answered early (413 for a body over the limit, 401 for a bad token,
403 for a non-admin) while the client kept sending, the queue is full of body chunks nobody
reads: that `send` never returns, hypercorn's read loop waits for room too, and the connection,
its tasks and 10 chunks of body stay for good, even after the client leaves. Any client could
pile them up. So the unread body is read and dropped while the last response message goes out,
so there is always room for the disconnect; the connection then closes as it should.

And hypercorn closes a connection whose request body had not all arrived when the answer was
complete, without saying so in the answer. A client that keeps connections alive (httpx, a
bot's HTTP library) sends its next request on it and gets "server disconnected" instead of an
answer: a 403 to a small POST broke the request after it whenever the body's bytes came a
moment after the headers. So before an early answer starts, a small body still on its way is
read and dropped, and the connection stays usable; a big one, or one that does not come soon,
is not waited for, and the answer says `connection: close`.
"""

from __future__ import annotations

import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What an early answer waits for: a body this small that is already on its way.
SMALL_BODY_BYTES = 64 * 1024
SMALL_BODY_WAIT_S = 1.0


def declared_body(scope: Scope) -> int | None:
    """The request's Content-Length; None when it is chunked (its length is unknown)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        if name == b"transfer-encoding":
            return None
    return 0


class DrainWhileAnswering:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_body(scope)
        body_read = declared == 0  # nothing to read: hypercorn has the whole request

        async def tracked_receive() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def read_small_rest() -> bool:
            """Read and drop what is left of a small body; False if it is not small or does
            not come within SMALL_BODY_WAIT_S."""
            if declared is not None and declared > SMALL_BODY_BYTES:
                return False
            dropped = 0
            with trio.move_on_after(SMALL_BODY_WAIT_S):
                while not body_read:
                    dropped += len((await tracked_receive()).get("body", b""))
                    if dropped > SMALL_BODY_BYTES:
                        return False
            return body_read

        async def drain() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def answering(message: Message) -> None:
            if body_read:
                await send(message)
                return
            if message["type"] == "http.response.start" and not await read_small_rest():
                message = {**message,
                           "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            if body_read or message["type"] != "http.response.body" \
                    or message.get("more_body", False):
                await send(message)
                return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                await send(message)
                nursery.cancel_scope.cancel()

        await self.app(scope, tracked_receive, answering)
