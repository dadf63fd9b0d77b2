"""Five ways hostile clients hold memory or a connection, or stop the node, in hypercorn (0.18),
closed here.

1. A WebSocket message over hypercorn's hard limit: hypercorn answers a message over
`websocket_max_message_size` with close 1009 but keeps appending the rest of it to its buffer
and keeps the connection open: a client that announces 50 MB and streams it grows the node by
50 MB (more for text, held in a StringIO).
`install()` swaps in a buffer that holds nothing once over the limit, and ends the stream right
after the 1009 so hypercorn closes the socket and the session's app sees a disconnect.

2. A compressed WebSocket message: wsproto inflates each chunk it receives with no cap, so a
few KiB of deflated zeros become hundreds of MB in memory before the buffer above can refuse
them. `install()` makes permessage-deflate inflate at most the hard limit of one message and
close 1009 past it.

3. An app that returns while its client still floods it (a WebSocket closed 4008 or 4001):
hypercorn queues at most 10 messages for the app, and once the app has returned it puts a last
`disconnect` into that queue, waiting for room that nobody will ever make. The connection, its
tasks and 10 queued messages stay for good. `install()` wraps hypercorn's app runner so that
this last step drops whatever is queued meanwhile. (web/early_answer.py does the same for an
HTTP answer given before the body was read, where the app has not returned yet.)

4. HTTP/2 on the plain port: hypercorn switches a connection to HTTP/2 when it opens with
HTTP/2's preface (prior knowledge) or asks to upgrade to h2c, and its HTTP/2 code has crashes any
client can reach: body data for a stream already answered raised KeyError (pgjones/hypercorn#329,
one POST answered early), and 1,001 PRIORITY frames for streams never opened raised
TooManyStreamsError. The node has no use for it: browsers speak HTTP/2 only over TLS, to the
reverse proxy, and the proxies in deploy/ speak HTTP/1.1 to the node. `install()` keeps every
connection on HTTP/1.1: the preface gets 505 and the connection closes, an h2c upgrade request is
answered in HTTP/1.1 (a server may ignore Upgrade).

5. An error inside one connection: under the trio worker it ends the whole server (hypercorn's
connections run in trio.serve_listeners' nursery; the asyncio worker would lose only that
connection), so any hypercorn bug a client can reach stops the node for everyone. `install()`
wraps each connection: such an error is logged and ends that connection only.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import h11 as h11_protocol
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from hypercorn.trio import task_group, tcp_server
from wsproto.events import Message
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

log = logging.getLogger("chatnode.web")


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


class BoundedPerMessageDeflate(PerMessageDeflate):
    """permessage-deflate that inflates no message past `max_message_bytes`."""

    max_message_bytes = 1 << 20  # set by install()
    _inflated = 0

    def frame_inbound_payload_data(self, proto: FrameDecoder | FrameProtocol, data: bytes
                                   ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self.max_message_bytes - self._inflated
        try:
            inflated = self._decompressor.decompress(bytes(data), room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(inflated)
        if self._inflated > self.max_message_bytes or self._decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return inflated

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol, fin: bool
                               ) -> bytes | CloseReason | None:
        if fin:
            self._inflated = 0
        return super().frame_inbound_complete(proto, fin)


_run_app = task_group._handle


async def _drop_queued(receive: Callable[[], Awaitable[object]]) -> None:
    while True:
        await receive()


async def _run_app_then_end_without_waiting(app: Any, config: Any, scope: Any,
                                            receive: Callable[[], Awaitable[object]],
                                            send: Callable[[Any], Awaitable[None]],
                                            *args: Any) -> None:
    async def send_and_drain_at_the_end(message: Any) -> None:
        if message is not None:
            await send(message)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drop_queued, receive)
            await send(None)
            nursery.cancel_scope.cancel()

    await _run_app(app, config, scope, receive, send_and_drain_at_the_end, *args)


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n"
_handle_http1 = h11_protocol.H11Protocol.handle


async def _handle_http1_only(self: h11_protocol.H11Protocol, event: Event) -> None:
    if isinstance(event, RawData) and self.connection.their_state is h11.IDLE \
            and self.connection.our_state is h11.IDLE and event.data.startswith(HTTP2_PREFACE):
        await self._send_error_response(505)  # HTTP Version Not Supported
        await self.send(Closed())
        return
    await _handle_http1(self, event)


async def _never_switch_protocol(self: h11_protocol.H11Protocol, event: h11.Request) -> None:
    """Replaces hypercorn's check that switches to HTTP/2 on an h2c upgrade, or on a preface
    split across reads: the request is served as the HTTP/1.1 request it is."""


_serve_connection = tcp_server.TCPServer.run


async def _serve_connection_alone(self: tcp_server.TCPServer) -> None:
    try:
        await _serve_connection(self)
    except Exception:  # a cancellation is a BaseException and goes on up, as it must
        log.exception("a connection failed inside hypercorn; it is closed, the node goes on")


def install(max_message_bytes: int) -> None:
    """Idempotent; called before hypercorn serves, with its websocket_max_message_size."""
    BoundedPerMessageDeflate.max_message_bytes = max_message_bytes
    ws_stream.PerMessageDeflate = BoundedPerMessageDeflate  # type: ignore[misc]
    task_group._handle = _run_app_then_end_without_waiting  # type: ignore[assignment]
    ws_stream.WebsocketBuffer = BoundedWebsocketBuffer  # type: ignore[misc]
    ws_stream.WSStream._handle_events = _handle_events_then_close_on_overflow  # type: ignore[method-assign]
    h11_protocol.H11Protocol.handle = _handle_http1_only  # type: ignore[method-assign]
    h11_protocol.H11Protocol._check_protocol = _never_switch_protocol  # type: ignore[method-assign]
    tcp_server.TCPServer.run = _serve_connection_alone  # type: ignore[method-assign]
