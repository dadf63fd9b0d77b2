"""The /ws session loop: hello, then a reader and a writer task in one nursery.

The reader decodes and validates each frame and hands it to the service; the writer drains the
session's outbox into the socket. A session ends when the client goes, falls silent for
2 x heartbeat_s (4000), cannot keep up (4008), logs out (4001) or the node stops (1001).
"""

from __future__ import annotations

import contextlib
import logging
import math

import trio
from starlette.types import Receive, Scope
from starlette.types import Send as AsgiSend
from starlette.websockets import WebSocket

from ..accounts import Accounts
from ..hub import (
    CLOSE_GOING_AWAY,
    CLOSE_SILENT,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHENTICATED,
    Session,
    encode_for,
)
from ..logs import fields
from ..protocol import (
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    AnyClientFrame,
    ChatError,
    Codec,
    Delivered,
    ErrorCode,
    Hello,
    Ping,
    Pong,
    Read,
    Send,
    ServerFrame,
    Typing,
    decode_client_frame,
)
from ..service import ChatService
from . import send_batch

log = logging.getLogger("chatnode.ws")

# Frames written in one go at most: enough to make a busy session's writes cheap, few enough
# that one write stays small (a few hundred KiB at the most) and other sessions get their turn.
WRITE_BATCH = 64

# Why a session ended, in words, for its "session closed" line.
_CLOSE_REASONS = {CLOSE_GOING_AWAY: "node stopping", CLOSE_SILENT: "silent",
                  CLOSE_UNAUTHENTICATED: "logged out", CLOSE_TOO_SLOW: "too slow"}


def negotiate(offered: list[str]) -> tuple[Codec, str | None]:
    """MessagePack when asked for by name; otherwise JSON, naming the subprotocol only when the
    client offered it."""
    if SUBPROTOCOL_MSGPACK in offered:
        return "msgpack", SUBPROTOCOL_MSGPACK
    if SUBPROTOCOL_JSON in offered:
        return "json", SUBPROTOCOL_JSON
    return "json", None


class WebSocketSession:
    def __init__(self, scope: Scope, receive: Receive, send: AsgiSend, service: ChatService,
                 accounts: Accounts, frame_bytes: int, outbox_frames: int,
                 hello_timeout_s: float) -> None:
        # Starlette's WebSocket does the handshake and the close; data frames go straight
        # through the ASGI callables, without its per-frame state checks.
        self.websocket = WebSocket(scope, receive, send)
        self._receive_event = receive
        self._send_event = send
        self.service = service
        self.accounts = accounts
        self.frame_bytes = frame_bytes
        self.outbox_frames = outbox_frames
        self.codec: Codec = "json"
        self.silence_limit = 2 * service.heartbeat_s
        self.hello_timeout_s = hello_timeout_s
        self._sync: dict[str, int] | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.metrics = service.metrics

    async def run(self) -> None:
        self.codec, subprotocol = negotiate(self.websocket.scope.get("subprotocols", []))
        await self.websocket.accept(subprotocol=subprotocol)
        session = await self._hello()
        if session is None:
            return
        opened = trio.current_time()
        log.info("session opened", extra=fields(
            user=session.user_id, device=session.device_id, codec=self.codec,
            address=self._address()))
        try:
            with session.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, session)
                    nursery.start_soon(self._read, session)
                    await self.service.open_session(session, self._sync)
        finally:
            self.service.close_session(session)
            self.accounts.device_seen(session.device_id, always=True)
            self._log_closed(session, trio.current_time() - opened)
        if session.close_code == CLOSE_TOO_SLOW:
            self.service.metrics.outbox_overflows.inc()
        if session.close_code is not None:
            await self._close(session.close_code)

    def _address(self) -> str:
        client = self.websocket.scope.get("client")
        return client[0] if client else "unknown"

    def _log_closed(self, session: Session, seconds: float) -> None:
        # The code is the node's; when the client closes, hypercorn reports 1006 whatever code
        # the client sent, so there is none worth logging.
        code = session.close_code
        reason = "client left" if code is None else _CLOSE_REASONS.get(code, "closed")
        log.info("session closed", extra=fields(
            user=session.user_id, device=session.device_id, codec=self.codec, code=code,
            reason=reason, seconds=round(seconds, 3), frames_in=self.frames_in,
            frames_out=self.frames_out))

    async def _hello(self) -> Session | None:
        """The first frame must be a good `hello`; anything else is unauthenticated (4001).
        It has hello_timeout_s to come (then 4000): a socket nobody has logged in on is held
        for seconds, not for the silence limit of a live session."""
        data, close_code = await self._receive(self.hello_timeout_s)
        if data is None:
            if close_code is not None:
                await self._close(close_code)
            return None
        try:
            frame = self._decode(data)
            if not isinstance(frame, Hello):
                raise ChatError(ErrorCode.UNAUTHENTICATED, "the first frame must be hello")
            device = await self.accounts.authenticate(frame.token)
        except ChatError as exc:
            log.info("hello refused", extra=fields(code=exc.code, reason=exc.message,
                                                   address=self._address()))
            await self._send_now(self.service.refusal(ChatError(
                ErrorCode.UNAUTHENTICATED, exc.message, ref=exc.ref or "hello")))
            await self._close(CLOSE_UNAUTHENTICATED)
            return None
        self._sync = frame.sync
        return Session(device.user_id, device.device_id, self.codec, self.outbox_frames)

    async def _receive(self, timeout: float) -> tuple[bytes | str | None, int | None]:
        """(the next data frame, None), or (None, close code) when the session is over: the
        client left (no code to send) or stayed silent for `timeout` (4000)."""
        with trio.move_on_after(timeout):
            return await self._next_data(), None
        return None, CLOSE_SILENT

    async def _next_data(self) -> bytes | str | None:
        """The next data frame, or None when the client left."""
        message = await self._receive_event()
        if message["type"] == "websocket.disconnect":
            return None
        self.frames_in += 1
        text = message.get("text")
        return text if text is not None else message.get("bytes", b"")

    def _decode(self, data: bytes | str) -> AnyClientFrame:
        # A str of n characters is at most 4n bytes of UTF-8: encode only when that matters.
        size = len(data) if isinstance(data, bytes) or 4 * len(data) <= self.frame_bytes \
            else len(data.encode())
        if size > self.frame_bytes:
            raise ChatError(ErrorCode.TOO_LARGE, f"frame is larger than {self.frame_bytes} bytes")
        # Text frames are JSON whatever was negotiated; binary ones use the session's codec.
        return decode_client_frame(data, "json" if isinstance(data, str) else self.codec)

    async def _read(self, session: Session) -> None:
        # One scope for the whole loop, its deadline pushed on at each frame: a fresh
        # move_on_after per frame is a measurable share of the node's CPU under load.
        with trio.CancelScope() as silence:
            while True:
                silence.deadline = trio.current_time() + self.silence_limit
                data = await self._next_data()
                if data is None:
                    session.cancel_scope.cancel()
                    return
                try:
                    await self._handle(session, self._decode(data), silence)
                except ChatError as exc:
                    session.push(self.service.refusal(exc))
        session.close(CLOSE_SILENT)

    async def _handle(self, session: Session, frame: AnyClientFrame,
                      silence: trio.CancelScope) -> None:
        user_id = session.user_id
        match frame:
            case Send():
                if self.service.cluster is not None:
                    await self.service.know(frame.conversation_id, user_id,
                                            max(frame.target or 0, frame.reply_to or 0))
                # The slot is given back when the send is committed or refused (service).
                # Waiting for one is the node's doing, not the client's silence.
                try:
                    session.send_slots.acquire_nowait()
                except trio.WouldBlock:
                    silence.deadline = math.inf
                    await session.send_slots.acquire()
                try:
                    self.service.submit_send(user_id, frame, session)
                except BaseException:
                    session.send_slots.release()
                    raise
            case Delivered():
                if self.service.cluster is not None:
                    await self.service.know(frame.conversation_id, user_id, frame.seq)
                self.service.submit_marker(user_id, frame.conversation_id, frame.seq, False,
                                           session)
            case Read():
                if self.service.cluster is not None:
                    await self.service.know(frame.conversation_id, user_id, frame.seq)
                self.service.submit_marker(user_id, frame.conversation_id, frame.seq, True,
                                           session)
            case Ping():
                session.push(Pong(id=frame.id))
            case Typing():
                if self.service.cluster is not None:
                    await self.service.know(frame.conversation_id, user_id)
                self.service.engine.conversation_for(user_id, frame.conversation_id, "typing")
                self.service.presence.typing(user_id, frame.conversation_id, trio.current_time())
            case Hello():
                raise ChatError(ErrorCode.INVALID, "already authenticated", ref="hello")

    async def _write(self, session: Session) -> None:
        """Drain the outbox: each round takes what is queued (up to WRITE_BATCH frames) without
        a checkpoint per frame, and writes it to the socket at once where the server offers
        it (web/send_batch.py)."""
        outbox = session.outbox_receive
        batches = send_batch.offered(self.websocket.scope)
        with contextlib.suppress(trio.EndOfChannel):
            while True:
                frames = []
                item = await outbox.receive()
                while True:
                    data = session.encoded(item)
                    if data is not None:
                        frames.append(data)
                    if len(frames) == WRITE_BATCH:
                        break
                    try:
                        item = outbox.receive_nowait()
                    except trio.WouldBlock:
                        break
                if batches and len(frames) > 1:
                    await self._send_event({"type": send_batch.SEND_BATCH, "frames": frames})
                    self.metrics.socket_writes.inc()
                else:
                    for data in frames:
                        await self._send_raw(data)
                    self.metrics.socket_writes.inc(len(frames))
                self.frames_out += len(frames)
                self.metrics.frames_out.inc(len(frames))

    async def _send_now(self, frame: ServerFrame) -> None:
        await self._send_raw(encode_for(frame, self.codec))

    async def _send_raw(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self._send_event({"type": "websocket.send", "text": data})
        else:
            await self._send_event({"type": "websocket.send", "bytes": data})

    async def _close(self, code: int) -> None:
        # The client may already be gone; then there is nothing left to tell it.
        with contextlib.suppress(Exception):
            await self.websocket.close(code)
