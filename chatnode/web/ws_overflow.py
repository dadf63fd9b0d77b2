"""A WebSocket message over hypercorn's hard limit closes the connection and is not buffered.

hypercorn (0.17, 0.18) answers a message over `websocket_max_message_size` with close 1009 but
keeps appending the rest of it to its buffer and keeps the connection open: a client that
announces 50 MB and streams it grows the node by 50 MB (more for text, held in a StringIO).
`install()` swaps in a buffer that holds nothing once over the limit, and ends the stream right
after the 1009 so hypercorn closes the socket and the session's app sees a disconnect.
"""

from __future__ import annotations

from typing import Any

from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from wsproto.events import Message


class BoundedWebsocketBuffer(ws_stream.WebsocketBuffer):
    overflowed = False

    def extend(self, event: Message[Any]) -> None:
        if not self.overflowed and self.length + len(event.data) <= self.max_length:
            super().extend(event)
            return
        # What came before is dropped too: this connection takes no more messages.
        self.overflowed = True
        self.clear()
        raise ws_stream.FrameTooLargeError()


_handle_events = ws_stream.WSStream._handle_events


async def _handle_events_then_close_on_overflow(self: ws_stream.WSStream) -> None:
    await _handle_events(self)
    if getattr(self.buffer, "overflowed", False) and not self.closed:
        await self.send(StreamClosed(stream_id=self.stream_id))


def install() -> None:
    """Idempotent; called before hypercorn serves."""
    ws_stream.WebsocketBuffer = BoundedWebsocketBuffer  # type: ignore[misc]
    ws_stream.WSStream._handle_events = _handle_events_then_close_on_overflow  # type: ignore[method-assign]
