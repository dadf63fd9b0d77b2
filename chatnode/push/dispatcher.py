"""Which devices to wake, when, with what; and the sending, off every other path.

A committed text or media message queues a wake-up for each recipient who has no live session
and has a push target. Wake-ups are coalesced per (user, conversation): the first message opens
a window of `coalesce_ms`, later ones only replace the message it will show, and when the
window closes one notification goes to each of the user's devices, with the latest preview and
the unread count at that moment. That is per (device, conversation) too, since every device of
a user is shown the same thing. If the user came online or read the conversation meanwhile,
nothing is sent, and a retry stops. Reading a conversation that was notified sends a `clear` to
the UnifiedPush targets, whose apps take a message without showing anything. Web Push gets no
clear: a push that shows nothing costs a browser subscription its standing (Chrome shows a
notice instead, Safari ends it), so there the next notification replaces the old one (same tag
and Topic), and an open tab reads it away. ntfy would show a clear as a message of its own.

Nothing here ever waits inside a send, a marker or a session: the hooks only touch a dict and a
timer. The HTTP requests run in tasks of their own, at most `concurrency` at once, each with a
timeout and retries; wake-ups waiting or in flight are bounded by `queue`, past which new ones
are dropped and counted. A target its push service calls gone (404, 410) is removed.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
from .payload import clear_notification, message_notification
from .targets import resolves_privately
from .vapid import KEY_FILE

if TYPE_CHECKING:
    import httpx

    from .transport import PushRequest
    from .vapid import VapidIdentity

log = logging.getLogger("chatnode.push")

WAKING_KINDS = frozenset({"text", "media"})
RETRY_BASE_S = 1.0
RETRY_AFTER_MAX_S = 300.0
# Conversations notified and not yet read, remembered for their `clear`; past this the oldest
# are forgotten (their clear is not sent: the next notification replaces them all the same).
NOTIFIED_MAX = 100_000


@dataclass(slots=True)
class Waiting:
    """A wake-up inside its coalescing window: the latest message it will show."""

    message: Message


class PushDispatcher:
    def __init__(self, config: Push, store: SqliteStore, engine: Engine, hub: Hub,
                 timers: Timers, metrics: Metrics, data_dir: Path,
                 users_with_targets: set[str]) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.hub = hub
        # In a cluster: whether the user has a live session on another node.
        self.online_elsewhere: Callable[[str], bool] = lambda user_id: False
        # In a cluster: tell the other nodes, whose commits may have to wake this user.
        self.on_target_added: Callable[[str], None] = lambda user_id: None
        self.timers = timers
        self.metrics = metrics
        self.data_dir = data_dir
        self._vapid: VapidIdentity | None = None
        self.users_with_targets = users_with_targets
        self._waiting: dict[tuple[str, str], Waiting] = {}
        self._notified: dict[tuple[str, str], None] = {}  # insertion-ordered: oldest first
        self._dropping = False
        self._in_flight = 0
        self._nursery: trio.Nursery | None = None
        self._client: httpx.AsyncClient | None = None
        self._requests = trio.CapacityLimiter(config.concurrency)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._make_key()
                await trio.sleep_forever()
        finally:
            if self._client is not None:
                with trio.CancelScope(shield=True):
                    await self._client.aclose()

    # The cryptography behind the VAPID key and Web Push, and httpx with its CA store, cost a
    # node about 15 MB of memory: a node whose users never turn push on never pays it. The key
    # file is made at first start by a process of its own; the rest is loaded the first time
    # it is needed.

    async def _make_key(self) -> None:
        """On first start, make the VAPID key in a process of its own (see `vapid`)."""
        if (self.data_dir / KEY_FILE).exists():
            return
        made = await trio.run_process([sys.executable, "-m", "chatnode.push.vapid",
                                       str(self.data_dir)], check=False, capture_stderr=True)
        if made.returncode != 0:
            log.warning("VAPID key not made at start; it will be on first use", extra=fields(
                error=made.stderr.decode(errors="replace").strip()[-500:]))

    @property
    def vapid(self) -> VapidIdentity:
        if self._vapid is None:
            from .vapid import VapidIdentity
            self._vapid = VapidIdentity.load_or_create(self.data_dir, self.config.contact)
        return self._vapid

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            # No redirects: a push service answers where it is asked. The environment's proxy
            # and CA settings (HTTPS_PROXY, SSL_CERT_FILE) apply, as for any outgoing HTTP.
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s,
                                             follow_redirects=False)
        return self._client

    def _online(self, user_id: str) -> bool:
        """Online on this node, or (in a cluster) on another: no push either way."""
        return self.hub.is_online(user_id) or self.online_elsewhere(user_id)

    # --- hooks: called in the trio thread, never wait ---------------------------------------

    def message_committed(self, message: Message, recipients: Iterable[str]) -> None:
        if message.kind not in WAKING_KINDS:
            return
        for user_id in recipients:
            if (user_id == message.sender_id or user_id not in self.users_with_targets
                    or self._online(user_id)):
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
            del self._notified[key]
            self._spawn(self._clear, user_id, conversation_id)
        self.metrics.push_waiting.set(self._load())

    def target_added(self, user_id: str) -> None:
        self.users_with_targets.add(user_id)
        self.on_target_added(user_id)

    # --- sending ------------------------------------------------------------------------------

    def _load(self) -> int:
        return len(self._waiting) + self._in_flight

    def _room(self) -> bool:
        """Whether one more wake-up fits; when not, it is counted, and logged once per stretch
        of a full queue (a 256-member group would otherwise write 255 lines a message)."""
        if self._load() < self.config.queue:
            if self._dropping:
                self._dropping = False
                log.info("push queue has room again")
            return True
        self.metrics.push_dropped.inc()
        if not self._dropping:
            self._dropping = True
            log.warning("push queue full, dropping wake-ups", extra=fields(
                queue=self.config.queue))
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
        if conv is None or user_id not in conv.members or self._online(user_id):
            return
        targets, preview, sender = await self.store.read(sql.push_context, user_id,
                                                         message.sender_id)
        unread = self.engine.unread(user_id, conv)
        if not targets or not unread or self._online(user_id):
            return  # read or came online while this was looked up: nothing to wake
        payload = message_notification(message, unread, preview, sender,
                                       conv.name if conv.kind == "group" else None)
        key = (user_id, message.conversation_id)
        self._notified[key] = None
        if len(self._notified) > NOTIFIED_MAX:
            del self._notified[next(iter(self._notified))]

        def still_wanted() -> bool:
            return key in self._notified and not self._online(user_id)

        async with trio.open_nursery() as nursery:
            for target in targets:
                nursery.start_soon(self._deliver, target, payload, message.conversation_id,
                                   True, still_wanted)

    async def _clear(self, user_id: str, conversation_id: str) -> None:
        targets = await self.store.read(sql.push_targets_of, user_id)
        payload = clear_notification(conversation_id)
        async with trio.open_nursery() as nursery:
            for target in targets:
                if target.kind == "unifiedpush":
                    nursery.start_soon(self._deliver, target, payload, conversation_id, False,
                                       lambda: True)

    async def _deliver(self, target: PushTargetRecord, payload: bytes, conversation_id: str,
                       urgent: bool, still_wanted: Callable[[], bool]) -> None:
        """POST one notification, retrying a timeout, a 429 or a 5xx with backoff while it is
        still wanted. Whatever happens stays here: the user's other devices go on."""
        try:
            outcome, attempts = await self._attempts(target, payload, conversation_id, urgent,
                                                     still_wanted)
        except Exception:
            outcome, attempts = "error", 0
            log.exception("push failed", extra=fields(user=target.user_id,
                                                      device=target.device_id))
        if outcome in ("sent", "gone", "not wanted"):
            return
        self.metrics.push_failed.labels(target.kind).inc()
        log.warning("push not delivered", extra=fields(
            user=target.user_id, device=target.device_id, kind=target.kind, outcome=outcome,
            attempts=attempts))

    async def _attempts(self, target: PushTargetRecord, payload: bytes, conversation_id: str,
                        urgent: bool, still_wanted: Callable[[], bool]) -> tuple[str, int]:
        from . import transport  # with its cryptography: see `vapid`
        request = transport.build(
            target, payload, conversation_id, urgent=urgent, ttl_s=self.config.ttl_s,
            vapid=self.vapid if target.kind == "webpush" else None)
        outcome = "no attempt"
        for attempt in range(1, self.config.attempts + 1):
            if attempt > 1 and not still_wanted():
                return "not wanted", attempt - 1
            if not self.config.allow_private and await resolves_privately(request.url):
                return "refused: a private address", attempt - 1  # never retried
            async with self._requests:
                status, retry_after, outcome = await self._post(request)
            if status is not None and status < 300:
                self.metrics.push_sent.labels(target.kind).inc()
                return "sent", attempt
            if status in (404, 410):
                await self._gone(target, status)
                return "gone", attempt
            if status is not None and status != 429 and status < 500:
                return outcome, attempt  # the request itself is wrong: again will not help
            if attempt < self.config.attempts:
                delay = retry_after if retry_after is not None else \
                    RETRY_BASE_S * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                await trio.sleep(delay)
        return outcome, self.config.attempts

    async def _post(self, request: PushRequest) -> tuple[int | None, float | None, str]:
        """(status, Retry-After, outcome) of one request, or (None, None, why) when it failed.
        Only the status and headers are read: a push service has nothing to say in a body, and
        one that streams an endless body must not fill the node's memory. The whole request
        has `timeout_s`, not each read."""
        import httpx

        with trio.move_on_after(self.config.timeout_s):
            try:
                async with self._http().stream("POST", request.url, content=request.body,
                                               headers=request.headers) as response:
                    status = response.status_code
                    return status, _retry_after(response), f"http {status}"
            except httpx.HTTPError as exc:
                return None, None, type(exc).__name__
        return None, None, "timeout"

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
