"""The chat operations that /ws and REST share: catch-up, send, markers, conversations, history.

Each write follows the one-way path: the engine checks, the store commits, and only then, in
the writer's commit order, the engine takes the fact in and the hub fans out what it returned.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .engine import ConversationState, Engine
from .folding import FOLDED_KINDS, fold
from .hub import Hub, Session
from .logs import fields
from .metrics import Metrics
from .presence import PresenceTracker
from .protocol import (
    ChatError,
    ConversationInfo,
    CreateConversationRequest,
    Error,
    ErrorCode,
    FoldedHistoryPage,
    HistoryPage,
    MemberInfo,
    Message,
    Send,
    Sent,
    Synced,
    Welcome,
)
from .push.dispatcher import PushDispatcher
from .ratelimit import RateLimiter
from .store import Job, SqliteStore, StoreUnavailable, now_ms
from .store import sqlite as sql

if TYPE_CHECKING:
    from .cluster.link import ClusterLink

# Ids, seqs, kinds and counts only: a message body (or a group's name) never reaches a log.
log = logging.getLogger("chatnode.service")

# The log's words for the system messages of group changes.
_GROUP_EVENTS = {"member_added": "member added", "member_removed": "member removed",
                 "member_left": "member left", "role_changed": "role changed",
                 "renamed": "group renamed"}

HISTORY_MAX_LIMIT = 200


class ChatService:
    def __init__(self, store: SqliteStore, engine: Engine, hub: Hub, metrics: Metrics,
                 presence: PresenceTracker, rate: RateLimiter, *, heartbeat_s: int,
                 group_members: int, push: PushDispatcher | None = None) -> None:
        self.store = store
        self.engine = engine
        self.hub = hub
        self.metrics = metrics
        self.presence = presence
        self.rate = rate
        self.heartbeat_s = heartbeat_s
        self.group_members = group_members
        self.push = push
        # Set in cluster mode ([bus] url): what crosses to the other nodes. None on a single
        # node, which then does exactly what it always did.
        self.cluster: ClusterLink | None = None

    # --- sessions -----------------------------------------------------------------------------

    async def open_session(self, session: Session, sync: dict[str, int] | None) -> None:
        """welcome, the catch-up (messages, statuses, presence), synced; then the session goes
        live.

        The session is registered (holding its live frames) and the plan is made in the same
        step, with no await between: every message committed before is in the plan's ranges,
        every one after is held, so the cut is exact."""
        started = time.perf_counter()
        await session.push_waiting(Welcome(session.user_id, session.device_id, now_ms(),
                                           self.heartbeat_s))
        if self.cluster is not None:
            await self.cluster.catch_up_user(session.user_id)
        first = not self.hub.is_online(session.user_id)
        self.hub.register(session)
        plan = self.engine.catchup_plan(session.user_id, sync)
        self.presence.session_opened(session.user_id, first)
        count = 0
        async for chunk in self.store.stream_ranges(plan.ranges):
            for message in chunk:
                await session.push_waiting(message)
            count += len(chunk)
        for status in plan.statuses:
            await session.push_waiting(status)
        peers = self.engine.peers_of(session.user_id)
        stored = await self.store.read(sql.users_info, peers)
        presence = self.presence.snapshot(
            session.user_id, {user_id: user.last_seen for user_id, user in stored.items()})
        for frame in presence:
            await session.push_waiting(frame)
        await session.push_waiting(Synced(len(plan.statuses), count))
        await session.release_held(plan.upto)
        self.metrics.catchup_seconds.observe(time.perf_counter() - started)

    def close_session(self, session: Session) -> None:
        self.hub.unregister(session)
        self.presence.session_closed(session.user_id)

    async def know(self, conversation_id: str, user_id: str, seq: int = 0) -> None:
        """In a cluster, make sure this node has taken in the conversation (the user's
        membership, its log up to `seq`) before judging a request that names it: a device may
        have learned of it through another node, and the fact may still be on the bus. On a
        single node, nothing."""
        cluster = self.cluster
        if cluster is None:
            return
        conv = self.engine.conversations.get(conversation_id)
        if conv is None:
            await cluster.learn(conversation_id)
        elif seq > conv.last_seq or user_id not in conv.members:
            await cluster.catch_up(conversation_id)

    # --- sending ------------------------------------------------------------------------------

    def submit_send(self, user_id: str, frame: Send, origin: Session | None) -> Job:
        """Queue a send; the origin session gets `sent` (or an error) once it is committed.

        Queuing never waits, so one connection's sends are committed in the order they
        arrived, and a client may pipeline them."""
        self.engine.check_send(user_id, frame)
        retry_after_ms = self.rate.take(user_id)
        if retry_after_ms is not None:
            raise ChatError(ErrorCode.RATE_LIMITED, "too many messages; nothing was stored,"
                            " retry with the same client_msg_id", ref=frame.client_msg_id,
                            retry_after_ms=retry_after_ms)
        return self.store.submit(
            sql.append_message, frame.conversation_id, user_id, frame.client_msg_id,
            frame.kind, frame.body, frame.media_id, frame.reply_to, frame.target,
            on_done=lambda job: self._send_done(job, origin, frame.client_msg_id),
        )

    def _send_done(self, job: Job, origin: Session | None, client_msg_id: str) -> None:
        if origin is not None:
            origin.send_slots.release()
        if job.error is not None:
            if origin is not None:
                origin.push(self.refusal(self.error_for(job.error, client_msg_id)))
            return
        message, created = job.result
        # The hot path: no record, no dict, unless debug is on.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("message committed", extra=fields(
                conversation=message.conversation_id, seq=message.seq, kind=message.kind,
                sender=message.sender_id, created=created))
        if created:
            self.metrics.messages.inc()
            self.presence.message_sent(message.sender_id, message.conversation_id)
            if self.cluster is None:
                recipients = self.engine.apply_message(message)
                self.hub.publish(recipients, message, exclude=origin)
            else:
                # Another node's message before it may still be on the bus: the cluster
                # applies and fans out in seq order (sequencer.py).
                recipients = list(self.engine.conversations[message.conversation_id].members)
                self.cluster.message_committed(message, origin)
            if self.push is not None:
                self.push.message_committed(message, recipients)
        if origin is not None:
            origin.push(Sent(message.conversation_id, message.client_msg_id, message.seq,
                             message.ts))

    def refusal(self, error: ChatError) -> Error:
        """The `error` frame a session is sent, counted in /metrics by code."""
        self.metrics.errors.labels(error.code).inc()
        return error.frame()

    def error_for(self, error: BaseException, ref: str | None) -> ChatError:
        """What a client is told about a failed write."""
        if isinstance(error, ChatError):
            if error.ref is None and ref is not None:  # a store's refusal names no request
                error.ref = ref
            return error
        if isinstance(error, StoreUnavailable):
            return ChatError(ErrorCode.INTERNAL, "the store cannot be written right now;"
                             " nothing was stored, retry later", ref=ref, http_status=503)
        log.error("write failed", exc_info=error)
        return ChatError(ErrorCode.INTERNAL, "internal error; nothing was stored", ref=ref)

    # --- markers ------------------------------------------------------------------------------

    def submit_marker(self, user_id: str, conversation_id: str, seq: int, read: bool,
                      origin: Session | None) -> None:
        """`delivered` or `read` (which implies delivered) up to `seq`; a no-op below the
        current marker. Affected sessions get their status_update after the commit."""
        if not self.engine.check_marker(user_id, conversation_id, seq, read):
            return
        self.store.submit(
            sql.advance_markers, conversation_id, user_id, seq, seq if read else 0,
            on_done=lambda job: self._marker_done(job, conversation_id, user_id, seq, read,
                                                  origin),
        )

    def _marker_done(self, job: Job, conversation_id: str, user_id: str, seq: int, read: bool,
                     origin: Session | None) -> None:
        if job.error is not None:
            if origin is not None:
                origin.push(self.refusal(self.error_for(job.error,
                                                        "read" if read else "delivered")))
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("marker committed", extra=fields(
                conversation=conversation_id, user=user_id, marker="read" if read else
                "delivered", seq=seq))
        updates = self.engine.apply_markers(conversation_id, user_id, seq, seq if read else 0)
        for viewer, status in updates:
            self.hub.publish_status(viewer, status)
        if self.cluster is not None:
            self.cluster.markers_moved(conversation_id, user_id, seq, seq if read else 0)
        if read and self.push is not None:
            self.push.read_moved(user_id, conversation_id)

    # --- conversations ------------------------------------------------------------------------

    async def create_conversation(self, user_id: str, request: CreateConversationRequest
                                  ) -> tuple[ConversationInfo, bool]:
        others = list(dict.fromkeys(m for m in request.members if m != user_id))
        name = request.name
        if request.kind == "direct":
            if len(others) != 1:
                raise ChatError(ErrorCode.INVALID,
                                "members: a direct conversation has exactly one other member")
            name = None
        elif len(others) + 1 > self.group_members:
            raise ChatError(ErrorCode.TOO_LARGE,
                            f"members: a group has at most {self.group_members} members")
        found = await self.store.read(sql.existing_user_ids, others)
        missing = [m for m in others if m not in found]
        if missing:
            raise ChatError(ErrorCode.NOT_FOUND, f"members: no such user: {', '.join(missing)}")
        job = self.store.submit(sql.insert_conversation, request.kind, name, user_id, others,
                                on_done=self._conversation_done)
        record, created = await job.wait()
        conv = self.engine.conversations[record.conversation_id]
        if created:
            log.info("conversation created", extra=fields(
                conversation=record.conversation_id, kind=record.kind, creator=user_id,
                members=len(record.members)))
            await self.introduce(conv, set(conv.members))
        return await self.conversation_info(user_id, conv), created

    def _conversation_done(self, job: Job) -> None:
        if job.error is not None:
            return
        record, created = job.result
        if created and self.cluster is not None:
            self.cluster.conversation_committed(record, [], created=True)
        elif created:
            conv = self.engine.add_conversation(record)
            self.hub.publish(conv.members, self.engine.conversation_frame(conv))

    async def change_group(self, actor_id: str, conversation_id: str,
                           change: Callable[..., Any], *args: Any) -> ConversationInfo | None:
        """Run one of the store's group changes (membership, role, name); the conversation as
        the actor now sees it, or None when the actor left. A stranger, or a conversation that
        does not exist, is `forbidden` before anything is queued."""
        if self.cluster is not None:
            await self.know(conversation_id, actor_id)
        before = set(self.engine.conversation_for(actor_id, conversation_id).members)
        job = self.store.submit(change, conversation_id, actor_id, *args,
                                on_done=self._members_done)
        await job.wait()
        conv = self.engine.conversations[conversation_id]
        await self.introduce(conv, set(conv.members) - before)
        if actor_id not in conv.members:
            return None
        return await self.conversation_info(actor_id, conv)

    def _members_done(self, job: Job) -> None:
        """Everyone who was or is now a member gets the system messages and the new member
        list; those who stay get their group ticks if a removal moved them."""
        if job.error is not None:
            return
        events, record = job.result
        if not events:
            return
        if self.cluster is not None:
            # The same steps, with the system messages in seq order among other nodes'.
            self.cluster.conversation_committed(record, events, created=False)
            for message in events:
                self.metrics.messages.inc()
                self._log_group_change(message)
            return
        before = self.engine.conversations[record.conversation_id].members.keys()
        audience = set(before) | {m.user_id for m in record.members}
        updates = self.engine.replace_conversation(record)
        for message in events:
            self.metrics.messages.inc()
            self.engine.apply_message(message)
            self.hub.publish(audience, message)
            self._log_group_change(message)  # last: the state is right whatever a log does
        conv = self.engine.conversations[record.conversation_id]
        self.hub.publish(audience, self.engine.conversation_frame(conv))
        for viewer, status in updates:
            self.hub.publish_status(viewer, status)

    @staticmethod
    def _log_group_change(message: Message) -> None:
        try:
            event = json.loads(message.body)
        except ValueError:
            event = {}
        # Who and which role; a rename's new name is the members' words and stays out.
        details = {name: event[key] for key, name in (("user_id", "user"), ("role", "role"))
                   if key in event}
        log.info(_GROUP_EVENTS.get(event.get("event", ""), "group changed"), extra=fields(
            conversation=message.conversation_id, seq=message.seq, actor=message.sender_id,
            **details))

    async def introduce(self, conv: ConversationState, newcomers: set[str]) -> None:
        """Members who now share a conversation learn each other's presence at once, as their
        next catch-up would tell them. In a group only those online are announced: a group of
        256 would otherwise cost each member 255 frames for "offline" it can do without."""
        pairs = [(viewer, user) for viewer in conv.members for user in conv.members
                 if viewer != user and (viewer in newcomers or user in newcomers)]
        if conv.kind == "group":
            pairs = [(v, u) for v, u in pairs if self.presence.shown_online(u)]
        if not pairs:
            return
        viewers_of: dict[str, list[str]] = {}
        for viewer, user in pairs:
            viewers_of.setdefault(user, []).append(viewer)
        stored = await self.store.read(sql.users_info, sorted(viewers_of))
        last_seen = {user_id: user.last_seen for user_id, user in stored.items()}
        for user, viewers in viewers_of.items():
            self.hub.publish(viewers, self.presence.frame_for(user, last_seen))

    async def conversation_info(self, user_id: str, conv: ConversationState) -> ConversationInfo:
        return (await self._infos(user_id, [conv]))[0]

    async def list_conversations(self, user_id: str) -> list[ConversationInfo]:
        return await self._infos(user_id, self.engine.conversations_of(user_id))

    async def _infos(self, user_id: str, convs: list[ConversationState]
                     ) -> list[ConversationInfo]:
        last = await self.store.read(sql.last_messages, [
            (c.conversation_id, c.last_seq) for c in convs
            if c.last_seq > c.members[user_id].joined_seq])
        # Who the members are, so a client shows current names and avatars after any time
        # away (a `user_updated` it missed is not caught up).
        people = await self.store.read(
            sql.users_info, sorted({m for conv in convs for m in conv.members}))
        infos = []
        for conv in convs:
            status = self.engine.status_for(user_id, conv)
            members = []
            for member in conv.members.values():
                person = people.get(member.user_id)
                members.append(MemberInfo(
                    member.user_id, member.role, None if person is None else person.display_name,
                    None if person is None else person.avatar_id))
            infos.append(ConversationInfo(
                conversation_id=conv.conversation_id, kind=conv.kind, name=conv.name,
                members=members, last_seq=conv.last_seq,
                last_delivered_seq=status.last_delivered_seq,
                last_read_seq=status.last_read_seq, my_read_seq=status.my_read_seq,
                unread=self.engine.unread(user_id, conv),
                last_message=last.get(conv.conversation_id)))
        return infos

    async def history(self, user_id: str, conversation_id: str, *, before: int | None,
                      after: int | None, limit: int, folded: bool = False,
                      around: int | None = None) -> HistoryPage | FoldedHistoryPage:
        """A page of the log; `folded` gives the view with edits and reactions folded in
        (paging still counts the log's seqs, so a folded page may hold fewer messages).
        `around` (a search hit) gives the page centred on that seq instead."""
        if self.cluster is not None:
            await self.know(conversation_id, user_id)
        conv = self.engine.conversation_for(user_id, conversation_id)
        if not 1 <= limit <= HISTORY_MAX_LIMIT:
            raise ChatError(ErrorCode.INVALID, f"limit must be 1 to {HISTORY_MAX_LIMIT}")
        min_seq = conv.members[user_id].joined_seq
        if around is not None:
            if before is not None or after is not None:
                raise ChatError(ErrorCode.INVALID, "around goes without before and after")
            messages, has_more = await self.store.read(
                sql.history_around, conversation_id, around=around, limit=limit,
                min_seq=min_seq)
        else:
            messages, has_more = await self.store.read(
                sql.history, conversation_id, before=before, after=after, limit=limit,
                min_seq=min_seq)
        if not folded:
            return HistoryPage(messages, has_more)
        events = await self.store.read(sql.events_targeting, conversation_id,
                                       [m.seq for m in messages], FOLDED_KINDS)
        return FoldedHistoryPage(fold(messages, events), has_more)
