"""Which devices to wake, when, with what; and the sending, off every other path.

A committed text or media message queues a wake-up for each recipient who has no live session
and has a push target. Wake-ups are coalesced per (user, conversation): the first message opens
a window of `coalesce_ms`, later ones only replace the message it will show, and when the
window closes one notification goes to each of the user's devices, with the latest preview and
the unread count at that moment. That is per (device, conversation) too, since every device of
a user is shown the same thing. If the user came online or read the conversation meanwhile,
nothing is sent. Reading a conversation that was notified sends a `clear` to every device.

Nothing here ever waits inside a send, a marker or a session: the hooks only touch a dict and a
timer. The HTTP requests run in tasks of their own, at most `concurrency` at once, each with a
timeout and retries; wake-ups waiting or in flight are bounded by `queue`, past which new ones
are dropped and counted. A target its push service calls gone (404, 410) is removed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
import trio

from ..config import Push
from ..engine import Engine
from ..hub import Hub
from ..logs import fields
from ..metrics import Metrics
from ..protocol import Message
from ..store import PushTargetRecord, SqliteStore
from ..store import sqlite as sql
from ..timers import Timers
from . import transport
from .payload import clear_notification, message_notification
from .vapid import VapidIdentity

log = logging.getLogger("chatnode.push")

WAKING_KINDS = frozenset({"text", "media"})
RETRY_BASE_S = 1.0
RETRY_AFTER_MAX_S = 300.0


@dataclass(slots=True)
class Waiting:
    """A wake-up inside its coalescing window: the latest message it will show."""

    message: Message


class PushDispatcher:
    def __init__(self, config: Push, store: SqliteStore, engine: Engine, hub: Hub,
                 timers: Timers, metrics: Metrics, vapid: VapidIdentity,
                 users_with_targets: set[str]) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.hub = hub
        self.timers = timers
        self.metrics = metrics
        self.vapid = vapid
        self.users_with_targets = users_with_targets
        self._waiting: dict[tuple[str, str], Waiting] = {}
        self._notified: set[tuple[str, str]] = set()
        self._in_flight = 0
        self._nursery: trio.Nursery | None = None
        self._client: httpx.AsyncClient | None = None
        self._requests = trio.CapacityLimiter(config.concurrency)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        # No redirects: a push service answers where it is asked. The environment's proxy and
        # CA settings (HTTPS_PROXY, SSL_CERT_FILE) apply, as for any outgoing HTTP.
        async with httpx.AsyncClient(timeout=self.config.timeout_s,
                                     follow_redirects=False) as client, \
                trio.open_nursery() as nursery:
            self._client, self._nursery = client, nursery
            task_status.started()
            await trio.sleep_forever()

    # --- hooks: called in the trio thread, never wait ---------------------------------------

    def message_committed(self, message: Message, recipients: Iterable[str]) -> None:
        if message.kind not in WAKING_KINDS:
            return
        for user_id in recipients:
            if (user_id == message.sender_id or user_id not in self.users_with_targets
                    or self.hub.is_online(user_id)):
                continue
            key = (user_id, message.conversation_id)
            waiting = self._waiting.get(key)
            if waiting is not None:
                waiting.message = message
                continue
            if not self._room():
                continue
            self._waiting[key] = Waiting(message)
            self.timers.call_later(self.config.coalesce_ms / 1000, ("push", *key),
                                   lambda key=key: self._window_closed(key))  # type: ignore[misc]
        self.metrics.push_waiting.set(self._load())

    def read_moved(self, user_id: str, conversation_id: str) -> None:
        """The user's read marker moved: if that left nothing unread, the wake-up waiting for
        that conversation is dropped, and a notification already shown is cleared."""
        conv = self.engine.conversations.get(conversation_id)
        if conv is None or user_id not in conv.members or self.engine.unread(user_id, conv):
            return
        key = (user_id, conversation_id)
        if self._waiting.pop(key, None) is not None:
            self.timers.cancel(("push", *key))
        if key in self._notified:
            self._notified.discard(key)
            self._spawn(self._clear, user_id, conversation_id)
        self.metrics.push_waiting.set(self._load())

    def target_added(self, user_id: str) -> None:
        self.users_with_targets.add(user_id)

    # --- sending ------------------------------------------------------------------------------

    def _load(self) -> int:
        return len(self._waiting) + self._in_flight

    def _room(self) -> bool:
        if self._load() < self.config.queue:
            return True
        self.metrics.push_dropped.inc()
        log.warning("push queue full, wake-up dropped", extra=fields(queue=self.config.queue))
        return False

    def _window_closed(self, key: tuple[str, str]) -> None:
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            self._spawn(self._notify, key[0], waiting.message)

    def _spawn(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        if self._nursery is None:
            return
        self._in_flight += 1
        self._nursery.start_soon(self._counted, fn, *args)

    async def _counted(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            await fn(*args)
        except Exception:
            self.metrics.push_failed.labels("error").inc()
            log.exception("push failed")
        finally:
            self._in_flight -= 1
            self.metrics.push_waiting.set(self._load())

    async def _notify(self, user_id: str, message: Message) -> None:
        conv = self.engine.conversations.get(message.conversation_id)
        if conv is None or user_id not in conv.members or self.hub.is_online(user_id):
            return
        targets, preview, sender = await self.store.read(sql.push_context, user_id,
                                                         message.sender_id)
        unread = self.engine.unread(user_id, conv)
        if not targets or not unread or self.hub.is_online(user_id):
            return  # read or came online while this was looked up: nothing to wake
        payload = message_notification(message, unread, preview, sender,
                                       conv.name if conv.kind == "group" else None)
        self._notified.add((user_id, message.conversation_id))
        async with trio.open_nursery() as nursery:
            for target in targets:
                nursery.start_soon(self._deliver, target, payload, message.conversation_id,
                                   True)

    async def _clear(self, user_id: str, conversation_id: str) -> None:
        targets = await self.store.read(sql.push_targets_of, user_id)
        payload = clear_notification(conversation_id)
        async with trio.open_nursery() as nursery:
            for target in targets:
                nursery.start_soon(self._deliver, target, payload, conversation_id, False)

    async def _deliver(self, target: PushTargetRecord, payload: bytes, conversation_id: str,
                       urgent: bool) -> None:
        """POST one notification, retrying a timeout, a 429 or a 5xx with backoff."""
        assert self._client is not None
        request = transport.build(target, payload, conversation_id, urgent=urgent,
                                  ttl_s=self.config.ttl_s, vapid=self.vapid)
        outcome = "no attempt"
        for attempt in range(1, self.config.attempts + 1):
            retry_after: float | None = None
            async with self._requests:
                try:
                    response = await self._client.post(request.url, content=request.body,
                                                       headers=request.headers)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                else:
                    status = response.status_code
                    if status < 300:
                        self.metrics.push_sent.labels(target.kind).inc()
                        return
                    if status in (404, 410):
                        await self._gone(target, status)
                        return
                    outcome = f"http {status}"
                    if status != 429 and status < 500:
                        break  # the request itself is wrong: sending it again will not help
                    retry_after = _retry_after(response)
            if attempt < self.config.attempts:
                delay = retry_after if retry_after is not None else \
                    RETRY_BASE_S * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                await trio.sleep(delay)
        self.metrics.push_failed.labels(target.kind).inc()
        log.warning("push not delivered", extra=fields(
            user=target.user_id, device=target.device_id, kind=target.kind, outcome=outcome,
            attempts=attempt))

    async def _gone(self, target: PushTargetRecord, status: int) -> None:
        removed = await self.store.write(sql.remove_gone_push_target, target.device_id,
                                         target.endpoint)
        if removed:
            self.metrics.push_removed.inc()
            log.info("push target gone, removed", extra=fields(
                user=target.user_id, device=target.device_id, kind=target.kind, status=status))


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, if the push service gave one (the date form is ignored)."""
    try:
        return min(max(float(response.headers["retry-after"]), 0.0), RETRY_AFTER_MAX_S)
    except (KeyError, ValueError):
        return None
