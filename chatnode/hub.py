"""Live sessions and fan-out: user -> sessions, each with a bounded outbox.

Publishing never blocks and never waits on a socket: a frame is encoded once per codec, put in
each session's outbox, and a session whose outbox is full is closed with 4008 (it catches up on
reconnect, so nothing is lost and nobody else slows down). While a session is catching up, its
live frames are held and released after the catch-up, above what the catch-up sent.

A `status_update` still waiting in an outbox is superseded by a newer one for the same
conversation: markers are cumulative, so the newer says everything the older would have. A
session that keeps up gets every one; one that falls behind a busy group gets the latest,
instead of writing a stale one per acknowledgement. (A superseded one still holds its place in
the outbox until the writer passes it, so the outbox bound and 4008 are as before.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

import trio

from .logs import fields
from .protocol import Codec, Message, ServerFrame, StatusUpdate, UserUpdated, encode

log = logging.getLogger("chatnode.hub")

CLOSE_GOING_AWAY = 1001
CLOSE_SILENT = 4000
CLOSE_UNAUTHENTICATED = 4001
CLOSE_TOO_SLOW = 4008

Encoded = str | bytes


class WaitingStatus:
    """A status_update in an outbox, encoded only when the writer reaches it; `frame` is None
    once a newer one for the same conversation has been queued behind it."""

    __slots__ = ("frame",)

    def __init__(self, frame: StatusUpdate) -> None:
        self.frame: StatusUpdate | None = frame


Outgoing = Encoded | WaitingStatus

# Sends one connection may have queued but not yet committed; past this its reader waits for
# the writer, which slows only that client.
MAX_SENDS_IN_FLIGHT = 256


def encode_for(frame: ServerFrame, codec: Codec) -> Encoded:
    """JSON goes out as text frames (str), MessagePack as binary frames (bytes)."""
    data = encode(frame, codec)
    return data.decode() if codec == "json" else data


class Session:
    """One WebSocket of one device. The socket itself lives in the web layer; the hub only
    sees this: an outbox, and a way to ask the session to close."""

    def __init__(self, user_id: str, device_id: str, codec: Codec, outbox_frames: int) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.codec: Codec = codec
        self.capacity = outbox_frames
        self.outbox_send, self.outbox_receive = trio.open_memory_channel[Outgoing](outbox_frames)
        self.holding = True
        self.held: list[ServerFrame] = []
        self.close_code: int | None = None
        self.cancel_scope = trio.CancelScope()
        self.send_slots = trio.Semaphore(MAX_SENDS_IN_FLIGHT)
        self._waiting_status: dict[str, WaitingStatus] = {}

    def push(self, frame: ServerFrame, encoded: Encoded | None = None) -> None:
        """Queue a frame for this session without waiting; a full outbox closes it (4008)."""
        if self.close_code is not None:
            return
        if self.holding:
            if len(self.held) >= self.capacity:
                self._too_slow()
            else:
                self.held.append(frame)
            return
        self._queue(encoded if encoded is not None else encode_for(frame, self.codec))

    def push_status(self, frame: StatusUpdate) -> None:
        """Queue a status_update behind everything queued so far, superseding one for the same
        conversation that is still waiting: it is dropped where it waits, never written."""
        if self.close_code is not None or self.holding:
            self.push(frame)
            return
        conversation_id = frame.conversation_id
        older = self._waiting_status.get(conversation_id)
        if older is not None:
            older.frame = None
        waiting = self._waiting_status[conversation_id] = WaitingStatus(frame)
        self._queue(waiting)

    def encoded(self, item: Outgoing) -> Encoded | None:
        """What the writer sends for an outbox item; None for a superseded status_update."""
        if not isinstance(item, WaitingStatus):
            return item
        frame = item.frame
        if frame is None:
            return None
        del self._waiting_status[frame.conversation_id]
        return encode_for(frame, self.codec)

    def _queue(self, data: Outgoing) -> None:
        try:
            self.outbox_send.send_nowait(data)
        except trio.WouldBlock:
            self._too_slow()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def push_waiting(self, frame: ServerFrame) -> None:
        """Queue a catch-up frame, waiting for room: the catch-up may be slow, never lossy.
        With room, no checkpoint: a backlog is queued without a trip through the scheduler
        per frame, and the session's writer drains it in a run."""
        data = encode_for(frame, self.codec)
        try:
            self.outbox_send.send_nowait(data)
        except trio.WouldBlock:
            await self.outbox_send.send(data)

    async def release_held(self, upto: dict[str, int]) -> None:
        """End the catch-up: queue the frames held meanwhile, dropping messages the catch-up
        already carried (seq at or below the plan's last_seq of their conversation).

        They are queued waiting for room, like the catch-up itself: the catch-up may have left
        the outbox full, and that is no reason to drop the session. Frames that arrive while
        this waits are held too and released in the next round; the session goes live only
        once nothing is held, with no await between that check and going live."""
        while self.held:
            held, self.held = self.held, []
            for frame in held:
                if isinstance(frame, Message) and frame.seq <= upto.get(frame.conversation_id, 0):
                    continue
                await self.push_waiting(frame)
        self.holding = False

    def _too_slow(self) -> None:
        log.warning("session too slow, closing with 4008", extra=fields(
            user=self.user_id, device=self.device_id, queued=self.capacity))
        self.close(CLOSE_TOO_SLOW)

    def close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        self.cancel_scope.cancel()


# How long a logged-out device is remembered: longer than any hello takes between checking its
# token and registering its session.
REVOKED_MEMORY_S = 60.0


class AccountNewsElsewhere(Protocol):
    """In cluster mode (cluster/link.py): account changes whose sessions may sit on other
    nodes too. The nodes that hear of them act through the hub's `*_here` methods, so nothing
    is told twice."""

    def device_revoked(self, device_id: str) -> None: ...
    def user_disabled(self, user_id: str) -> None: ...
    def user_updated(self, frame: UserUpdated) -> None: ...


class Hub:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Session]] = {}
        self._revoked: dict[str, float] = {}  # device id -> when, oldest first
        self.elsewhere: AccountNewsElsewhere | None = None

    def register(self, session: Session) -> None:
        self._by_user.setdefault(session.user_id, set()).add(session)
        if session.device_id in self._revoked:
            # Its token was good when its hello was checked, and revoked before it got here.
            session.close(CLOSE_UNAUTHENTICATED)

    def unregister(self, session: Session) -> None:
        sessions = self._by_user.get(session.user_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_user[session.user_id]

    def is_online(self, user_id: str) -> bool:
        return user_id in self._by_user

    def session_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def publish(self, user_ids: Iterable[str], frame: ServerFrame,
                exclude: Session | None = None) -> None:
        """Put `frame` in the outbox of every live session of these users, encoding it at most
        once per codec."""
        encoded: dict[Codec, Encoded] = {}
        for user_id in user_ids:
            for session in self._by_user.get(user_id, ()):
                if session is exclude:
                    continue
                if session.holding:
                    session.push(frame)
                    continue
                data = encoded.get(session.codec)
                if data is None:
                    data = encoded[session.codec] = encode_for(frame, session.codec)
                session.push(frame, data)

    def publish_status(self, user_id: str, frame: StatusUpdate) -> None:
        """A viewer's status_update, to each of their live sessions (see WaitingStatus)."""
        for session in self._by_user.get(user_id, ()):
            session.push_status(frame)

    def devices_online(self, user_id: str) -> set[str]:
        return {session.device_id for session in self._by_user.get(user_id, ())}

    def live_devices(self) -> set[str]:
        """The device of every live session."""
        return {session.device_id for sessions in self._by_user.values()
                for session in sessions}

    def revoke_device(self, device_id: str) -> None:
        """A device was logged out: its live sessions close with 4001 now, here and on every
        other node, and so does one whose hello passed just before the token was revoked."""
        self.revoke_device_here(device_id)
        if self.elsewhere is not None:
            self.elsewhere.device_revoked(device_id)

    def disable_user(self, user_id: str) -> None:
        """An account was disabled: its tokens already fail every request, and its live
        sessions, here and on every other node, end now rather than at their next reconnect."""
        self.close_user(user_id, CLOSE_UNAUTHENTICATED)
        if self.elsewhere is not None:
            self.elsewhere.user_disabled(user_id)

    def user_updated(self, frame: UserUpdated, audience: Iterable[str]) -> None:
        """A profile change, to `audience` here; other nodes work out their own audience."""
        self.publish(audience, frame)
        if self.elsewhere is not None:
            self.elsewhere.user_updated(frame)

    def revoke_device_here(self, device_id: str) -> None:
        now = trio.current_time()
        while self._revoked:
            oldest, at = next(iter(self._revoked.items()))
            if now - at < REVOKED_MEMORY_S:
                break
            del self._revoked[oldest]
        self._revoked[device_id] = now
        self.close_device(device_id, CLOSE_UNAUTHENTICATED)

    def close_device(self, device_id: str, code: int) -> None:
        for sessions in list(self._by_user.values()):
            for session in list(sessions):
                if session.device_id == device_id:
                    session.close(code)

    def close_user(self, user_id: str, code: int) -> None:
        for session in list(self._by_user.get(user_id, ())):
            session.close(code)

    def close_all(self, code: int) -> None:
        for sessions in list(self._by_user.values()):
            for session in list(sessions):
                session.close(code)
