"""An ASGI extension for hypercorn (0.18): several WebSocket frames in one socket write.

ASGI hands the server one frame per `websocket.send`, and hypercorn writes each through five
layers, a lock, a shielded cancel scope and its own `send_all`: under a busy group the profile
showed about half of the node's time there, most of it per call rather than per byte. A
session's writer often has many frames queued at once (a group's fan-out, a catch-up), so
`install()` teaches hypercorn one more message:

    {"type": "chatnode.websocket.send_batch", "frames": [str | bytes, ...]}

Each frame is framed by wsproto as `websocket.send` would frame it, and the bytes go out in
one write. It is offered in the scope's extensions (as ASGI extensions are), so an app under a
server without it sends frame by frame.
"""

from __future__ import annotations

from typing import Any

from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Data
from hypercorn.trio import task_group
from wsproto.events import BytesMessage, TextMessage
from wsproto.utilities import LocalProtocolError

SEND_BATCH = "chatnode.websocket.send_batch"

def offered(scope: Any) -> bool:
    return SEND_BATCH in scope.get("extensions", {})


def install() -> None:
    """Idempotent; called before hypercorn serves, after hypercorn_fixes.install() (which
    replaces hypercorn's app runner, so each wrapper is checked for, not remembered)."""
    run_app = task_group._handle
    if not getattr(run_app, "offers_batches", False):
        async def run_app_offering_batches(app: Any, config: Any, scope: Any,
                                           *args: Any) -> None:
            # Before the app runs, in its own task: the scope is the app's from here on.
            if scope["type"] == "websocket":
                scope["extensions"][SEND_BATCH] = {}
            await run_app(app, config, scope, *args)

        run_app_offering_batches.offers_batches = True  # type: ignore[attr-defined]
        task_group._handle = run_app_offering_batches  # type: ignore[assignment]

    app_send = ws_stream.WSStream.app_send
    if getattr(app_send, "sends_batches", False):
        return

    async def app_send_with_batches(self: ws_stream.WSStream, message: Any) -> None:
        if message is None or message["type"] != SEND_BATCH:
            await app_send(self, message)
            return
        if self.closed or self.state != ws_stream.ASGIWebsocketState.CONNECTED:
            return  # as hypercorn drops a send after the close: the client is gone
        chunks = []
        for frame in message["frames"]:
            event = TextMessage(data=frame) if isinstance(frame, str) else \
                BytesMessage(data=bytes(frame))
            try:
                chunks.append(self.connection.send(event))
            except LocalProtocolError:
                break  # the connection is closing: nothing more can be sent on it
        if chunks:
            await self.send(Data(stream_id=self.stream_id, data=b"".join(chunks)))

    app_send_with_batches.sends_batches = True  # type: ignore[attr-defined]
    ws_stream.WSStream.app_send = app_send_with_batches  # type: ignore[method-assign,assignment]
