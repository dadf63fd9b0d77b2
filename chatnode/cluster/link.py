"""How a node takes part in a cluster: what it tells the others and how it takes in what they
tell it.

Whatever this node commits it applies as a single node does and also publishes as a fact; a
fact from another node is applied through the same path (engine, then hub), minus the `sent`
that only the origin session gets. Messages of both kinds pass through the sequencer, so every
connection sees each conversation in seq order, with no gap and no duplicate, whichever node
committed what. When facts may have been lost (this node's subscription broke, or another node
said Resync), the node rereads the store and sends its sessions what they missed: the log is
the truth, the bus only makes it fast.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

import trio
from prometheus_client import Counter, Gauge

from ..engine import ConversationState
from ..hub import CLOSE_UNAUTHENTICATED, Session
from ..logs import fields
from ..presence import TYPING_FORWARD_EVERY_S, TYPING_TIMEOUT_S
from ..protocol import Message, TypingEvent, UserUpdated
from ..store import ConversationRecord, MemberRecord, now_ms
from ..store import sqlite as sql
from .bus import RedisBus
from .facts import (
    AnyFact,
    ConversationChanged,
    DeviceRevoked,
    MarkersMoved,
    MessageCommitted,
    NodePresence,
    PresenceChanged,
    ProfileChanged,
    PushTargetAdded,
    Resync,
    TypingChanged,
    UserDisabled,
)
from .sequencer import GAP_DEADLINE_S, Sequencer

if TYPE_CHECKING:
    from ..service import ChatService

log = logging.getLogger("chatnode.cluster")


class Delivery(NamedTuple):
    """Who gets a message when the sequencer lets it through."""

    exclude: Session | None  # the session that sent it (it got `sent`)
    audience: frozenset[str] | None  # a group change: members before and after it


class ClusterLink:
    def __init__(self, bus: RedisBus, service: ChatService) -> None:
        self.bus = bus
        self.service = service
        self.engine = service.engine
        self.hub = service.hub
        self.store = service.store
        self.sequencer = Sequencer(self._deliver)
        # Users online on other nodes, by node; this node's own, as announced to them.
        self.remote_online: dict[str, set[str]] = {}
        self.local_online: set[str] = set()
        # The last_seq of the newest conversation record taken in: an older one that arrives
        # late (facts from two nodes crossing) must not undo a newer membership.
        self._record_seq: dict[str, int] = {}
        self._gap_armed: set[str] = set()
        # Facts about conversations being loaded from the store, replayed once they are known.
        self._learning: dict[str, list[AnyFact]] = {}
        self._resync = trio.Event()
        self._nursery: trio.Nursery | None = None
        registry = service.metrics.registry
        Gauge("chatnode_bus_up", "1 while this node is subscribed to the bus and can publish",
              registry=registry).set_function(lambda: float(bus.healthy))
        Gauge("chatnode_bus_facts_dropped", "Facts this node could not publish since it started"
              " (Redis down or too slow); each outage ends in a resync",
              registry=registry).set_function(lambda: float(bus.dropped))
        self.gap_reads = Counter("chatnode_bus_gap_reads_total", "Messages the bus had not"
                                 " brought within the deadline, read from the store instead",
                                 registry=registry)
        self.resyncs = Counter("chatnode_bus_resyncs_total", "Times this node reread the shared"
                               " state after facts may have been lost", registry=registry)
        bus.on_fact = self.take
        bus.on_reconnect = self._bus_back
        bus.online_here = lambda: list(self.local_online)
        self.hub.elsewhere = self

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Subscribed and with the cluster's presence loaded before the node serves."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.bus.run)
            try:
                await self._load_presence()
            except Exception as exc:  # the poll loads it later
                log.warning("cluster presence not loaded", extra=fields(error=repr(exc)))
            nursery.start_soon(self._poll_presence)
            nursery.start_soon(self._resync_loop)
            task_status.started()

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "the cluster link is not running"
        return self._nursery

    # --- what this node committed ---------------------------------------------------------

    def message_committed(self, message: Message, origin: Session | None) -> None:
        self._line(message.conversation_id)
        self.bus.publish(MessageCommitted(self.bus.node_id, message))
        self._offer(message, Delivery(origin, None))

    def markers_moved(self, conversation_id: str, user_id: str, delivered: int,
                      read: int) -> None:
        self.bus.publish(MarkersMoved(self.bus.node_id, conversation_id, user_id, delivered,
                                      read))

    def conversation_committed(self, record: ConversationRecord, events: list[Message],
                               created: bool) -> None:
        self.bus.publish(ConversationChanged(self.bus.node_id, record, events, created))
        self._conversation(record, events, created, introduce=False)

    def typing(self, user_id: str, conversation_id: str, typing: bool) -> None:
        self.bus.publish(TypingChanged(self.bus.node_id, conversation_id, user_id, typing))

    def presence_changed(self, user_id: str, online: bool, ts: int) -> None:
        """This node's first session of the user opened, or its last one closed (after the
        grace that hides a flap)."""
        if online:
            self.local_online.add(user_id)
        else:
            self.local_online.discard(user_id)
        self.bus.presence(user_id, online)
        self.bus.publish(PresenceChanged(self.bus.node_id, user_id, online, ts))

    def push_target_added(self, user_id: str) -> None:
        self.bus.publish(PushTargetAdded(self.bus.node_id, user_id))

    # Account news (hub.AccountNewsElsewhere): the user's sessions on other nodes.

    def device_revoked(self, device_id: str) -> None:
        self.bus.publish(DeviceRevoked(self.bus.node_id, device_id))

    def user_disabled(self, user_id: str) -> None:
        self.bus.publish(UserDisabled(self.bus.node_id, user_id))

    def user_updated(self, frame: UserUpdated) -> None:
        self.bus.publish(ProfileChanged(self.bus.node_id, frame))

    def online_elsewhere(self, user_id: str) -> bool:
        return any(user_id in users for users in self.remote_online.values())

    # --- what other nodes committed -----------------------------------------------------

    def take(self, fact: AnyFact) -> None:
        match fact:
            case MessageCommitted(message=message):
                if self._known(message.conversation_id, fact, message.seq - 1):
                    self._line(message.conversation_id)
                    self._offer(message, None)
            case MarkersMoved():
                if self._known(fact.conversation_id, fact, None):
                    self._apply_markers(fact.conversation_id, fact.user_id, fact.delivered,
                                        fact.read)
            case ConversationChanged():
                self._conversation(fact.record, fact.events, fact.created, introduce=True)
            case TypingChanged():
                self._remote_typing(fact.conversation_id, fact.user_id, fact.typing)
            case PresenceChanged():
                self._remote_presence(fact.origin, fact.user_id, fact.online, fact.last_seen)
            case NodePresence():
                self._replace_remote_online({**self.remote_online,
                                             fact.origin: set(fact.users)})
            case PushTargetAdded():
                if self.service.push is not None:
                    self.service.push.users_with_targets.add(fact.user_id)
            case DeviceRevoked():
                self.hub.revoke_device_here(fact.device_id)
            case UserDisabled():
                self.hub.close_user(fact.user_id, CLOSE_UNAUTHENTICATED)
            case ProfileChanged(frame=frame):
                self.hub.publish({frame.user_id} | self.engine.peers_of(frame.user_id), frame)
            case Resync():
                self.resync_soon()

    def _remote_typing(self, conversation_id: str, user_id: str, typing: bool) -> None:
        """Shown to this node's members; cleared here too if the typer's node never says
        `false` (it died): the typer's node forwards `true` again while they type."""
        conv = self.engine.conversations.get(conversation_id)
        if conv is None:
            return
        timers = self.service.presence.timers
        key = ("remote typing", user_id, conversation_id)
        if typing:
            # The typer's node forwards `true` at least this often while they type.
            timers.call_later(TYPING_TIMEOUT_S + TYPING_FORWARD_EVERY_S, key,
                              lambda: self._remote_typing(conversation_id, user_id, False))
        else:
            timers.cancel(key)
        others = [m for m in conv.members if m != user_id]
        self.hub.publish(others, TypingEvent(conversation_id, user_id, typing))

    def _known(self, conversation_id: str, fact: AnyFact, start: int | None) -> bool:
        """Whether the engine knows the conversation; if not, it is loaded from the store
        (its creation may still be on the bus, or lost) and the fact taken in after."""
        if conversation_id in self.engine.conversations:
            return True
        waiting = self._learning.get(conversation_id)
        if waiting is not None:
            waiting.append(fact)
            return False
        self._learning[conversation_id] = [fact]
        self.nursery.start_soon(self._learn_then_replay, conversation_id, start)
        return False

    async def _learn_then_replay(self, conversation_id: str, start: int | None) -> None:
        try:
            await self.learn(conversation_id, start)
        finally:
            for fact in self._learning.pop(conversation_id, []):
                if conversation_id in self.engine.conversations:
                    self.take(fact)

    async def learn(self, conversation_id: str, start: int | None = None) -> bool:
        """Load a conversation this node does not know from the store. Its messages up to
        `start` (default: all it has) are history; later ones are delivered live."""
        if conversation_id in self.engine.conversations:
            return True
        record = await self.store.read(sql.conversation_by_id, conversation_id)
        if record is None:
            return False
        if conversation_id not in self.engine.conversations:
            self._conversation(record, [], False, introduce=True, start=start)
        return True

    async def catch_up(self, conversation_id: str) -> None:
        """Take in whatever the store has of this conversation beyond what this node took in
        (a device names a seq, or a membership, this node has not heard of yet)."""
        record = await self.store.read(sql.conversation_by_id, conversation_id)
        if record is None:
            return
        self._line(conversation_id)
        conv = self.engine.conversations.get(conversation_id)
        if conv is not None and not _same_shape(conv, record):
            self._conversation(record, [], False, introduce=True)
        behind = self.sequencer.behind(conversation_id, record.last_seq)
        if behind is not None:
            async for chunk in self.store.stream_ranges([behind]):
                self.sequencer.fill(chunk)

    async def catch_up_user(self, user_id: str) -> None:
        """Before a device of the user is planned its catch-up: take in whatever the log has
        of the user's conversations beyond what this node took in. The plan is made from the
        engine, which the bus may still be bringing up to date; without this a device
        connecting here just after a burst on another node would be planned from an older
        last_seq (too much "recent history", and live frames below its own sync map)."""
        last_seqs: dict[str, int] = await self.store.read(sql.last_seqs_of, user_id)
        ranges = []
        for cid, last_seq in last_seqs.items():
            conv = self.engine.conversations.get(cid)
            if conv is None:
                await self.learn(cid)
            elif user_id not in conv.members:
                await self.catch_up(cid)
            else:
                self._line(cid)
                behind = self.sequencer.behind(cid, last_seq)
                if behind is not None:
                    ranges.append(behind)
        async for chunk in self.store.stream_ranges(ranges):
            self.sequencer.fill(chunk)

    # --- messages in order ------------------------------------------------------------------

    def _line(self, conversation_id: str) -> None:
        """Start the conversation's sequence at what the engine has taken in, the first time
        it is needed (lazily: a node may know many conversations that never speak)."""
        if not self.sequencer.knows(conversation_id):
            conv = self.engine.conversations.get(conversation_id)
            self.sequencer.start(conversation_id, conv.last_seq if conv is not None else 0)

    def _offer(self, message: Message, delivery: Delivery | None) -> None:
        cid = message.conversation_id
        opened = self.sequencer.offer(message, delivery, trio.current_time())
        if opened and cid not in self._gap_armed:
            self._gap_armed.add(cid)
            self.nursery.start_soon(self._fill_gap, cid)

    async def _fill_gap(self, conversation_id: str) -> None:
        """Once the conversation's gap is GAP_DEADLINE_S old, read what is still missing from
        the store. A busy conversation closes and opens gaps all the time (two nodes' sends
        cross on the bus): each missing seq is given the full deadline, measured from when it
        was first known to be missing (Sequencer.gap_since), so a gap the bus is about to
        fill, or the rest of one it has partly filled, is never read from the store early."""
        try:
            while (gap := self.sequencer.gap(conversation_id)) is not None:
                age = trio.current_time() - self.sequencer.gap_since(conversation_id)
                if age < GAP_DEADLINE_S:
                    await trio.sleep(GAP_DEADLINE_S - age)
                    continue
                try:
                    async for chunk in self.store.stream_ranges([gap]):
                        self.gap_reads.inc(len(chunk))
                        self.sequencer.fill(chunk)
                except Exception as exc:  # the store is down: try again after a while
                    log.warning("gap fill failed", extra=fields(
                        conversation=conversation_id, error=repr(exc)))
                if self.sequencer.gap(conversation_id) == gap:
                    await trio.sleep(GAP_DEADLINE_S)
        finally:
            self._gap_armed.discard(conversation_id)

    def _deliver(self, message: Message, delivery: Delivery | None) -> None:
        """The sequencer let the message through: the engine takes it in, the hub fans out."""
        if message.conversation_id not in self.engine.conversations:
            return
        recipients = self.engine.apply_message(message)
        if delivery is None:
            self.hub.publish(recipients, message)
        else:
            self.hub.publish(delivery.audience or recipients, message, exclude=delivery.exclude)

    # --- markers and conversations ----------------------------------------------------------

    def _apply_markers(self, conversation_id: str, user_id: str, delivered: int,
                       read: int) -> None:
        for viewer, status in self.engine.apply_markers(conversation_id, user_id, delivered,
                                                        read):
            self.hub.publish_status(viewer, status)
        push = self.service.push
        if read and push is not None:
            push.read_moved(user_id, conversation_id)

    def _conversation(self, record: ConversationRecord, events: list[Message], created: bool,
                      *, introduce: bool, start: int | None = None) -> None:
        cid = record.conversation_id
        conv = self.engine.conversations.get(cid)
        if conv is not None:
            self._line(cid)
        if record.last_seq < self._record_seq.get(cid, -1):
            for message in events:  # a newer record is in; its messages still count
                self._offer(message, None)
            return
        self._record_seq[cid] = record.last_seq
        before = set(conv.members) if conv is not None else set()
        merged = _merged(record, conv)
        if conv is None:
            self.engine.add_conversation(merged)
            if start is None:
                start = events[0].seq - 1 if events else merged.last_seq
            self.sequencer.start(cid, min(start, merged.last_seq))
            updates = []
        else:
            updates = self.engine.replace_conversation(merged)
        after = {m.user_id for m in merged.members}
        audience = frozenset(before | after)
        for message in events:
            self._offer(message, Delivery(None, audience))
        conv = self.engine.conversations[cid]
        self.hub.publish(audience, self.engine.conversation_frame(conv))
        for viewer, status in updates:
            self.hub.publish_status(viewer, status)
        newcomers = after - before
        if introduce and newcomers:
            self.nursery.start_soon(self.service.introduce, conv, newcomers)

    # --- presence ---------------------------------------------------------------------------

    def _remote_presence(self, node_id: str, user_id: str, online: bool,
                         last_seen: int) -> None:
        presence = self.service.presence
        was = presence.shown_online(user_id)
        users = self.remote_online.setdefault(node_id, set())
        if online:
            users.add(user_id)
        else:
            users.discard(user_id)
            presence.last_seen[user_id] = max(presence.last_seen.get(user_id, 0), last_seen)
        presence.changed_elsewhere(user_id, was, last_seen)

    def _replace_remote_online(self, found: dict[str, set[str]]) -> None:
        presence = self.service.presence
        old = self.remote_online
        touched = set().union(*old.values(), *found.values())
        was = {user_id: presence.shown_online(user_id) for user_id in touched}
        self.remote_online = found
        seen = now_ms()
        for user_id in touched:
            if was[user_id] and not presence.shown_online(user_id):
                # Gone with its node, which never said when: now is the honest last seen.
                presence.last_seen[user_id] = seen
                presence.save_last_seen(user_id, seen)
            presence.changed_elsewhere(user_id, was[user_id], seen)

    async def _load_presence(self) -> None:
        self._replace_remote_online(await self.bus.read_presence())

    async def _poll_presence(self) -> None:
        """Nodes that stopped refreshing their presence (killed, cut off) are gone, and so
        are their users, within presence_ttl_s and one poll."""
        while True:
            await trio.sleep(self.bus.refresh_every_s)
            if not self.remote_online:
                continue
            try:
                alive = await self.bus.alive(list(self.remote_online))
            except Exception:  # the bus is down: its return brings a full resync
                continue
            if alive != self.remote_online.keys():
                self._replace_remote_online(
                    {node: users for node, users in self.remote_online.items()
                     if node in alive})

    # --- made whole after lost facts --------------------------------------------------------

    def resync_soon(self) -> None:
        self._resync.set()

    def _bus_back(self) -> None:
        """This node's subscription came back: reread what it may have missed, and tell the
        others who is online here (a restarted Redis forgot this node's presence hash; it is
        written again before the news, so a node that reads hashes after it sees it)."""
        self.resync_soon()
        self.bus.refresh_presence()
        self.bus.publish(NodePresence(self.bus.node_id, sorted(self.local_online)))

    async def _resync_loop(self) -> None:
        while True:
            await self._resync.wait()
            self._resync = trio.Event()  # a request while this runs is one more round
            try:
                await self.resync()
            except Exception as exc:
                log.warning("resync failed, trying again", extra=fields(error=repr(exc)))
                await trio.sleep(1)
                self._resync.set()

    async def resync(self) -> None:
        """Reread the shared state and send this node's sessions what they missed: new or
        changed conversations, markers, messages past what was applied, and presence."""
        started = trio.current_time()
        self.resyncs.inc()
        records: list[ConversationRecord] = await self.store.read(sql.all_conversations)
        ranges = []
        for record in records:
            cid = record.conversation_id
            conv = self.engine.conversations.get(cid)
            if conv is None:
                history = self.engine.history_on_new_device
                self._conversation(record, [], False, introduce=True,
                                   start=max(0, record.last_seq - history))
            else:
                self._line(cid)
                if not _same_shape(conv, record):
                    self._conversation(record, [], False, introduce=True)
                for member in record.members:
                    self._apply_markers(cid, member.user_id, member.last_delivered_seq,
                                        member.last_read_seq)
            behind = self.sequencer.behind(cid, record.last_seq)
            if behind is not None:
                ranges.append(behind)
        async for chunk in self.store.stream_ranges(ranges):
            self.sequencer.fill(chunk)
        push = self.service.push
        if push is not None:
            push.users_with_targets |= await self.store.read(sql.users_with_push_targets)
        await self._load_presence()
        log.info("resynced from the store", extra=fields(
            conversations=len(records), behind=len(ranges),
            seconds=round(trio.current_time() - started, 3)))


def _same_shape(conv: ConversationState, record: ConversationRecord) -> bool:
    """Same name and the same members in the same roles."""
    return conv.name == record.name and \
        {u: m.role for u, m in conv.members.items()} == \
        {m.user_id: m.role for m in record.members}


def _merged(record: ConversationRecord, conv: ConversationState | None) -> ConversationRecord:
    """The record, with what this node already took in that is newer (markers and last_seq
    only move forward; a marker fact may have overtaken this record on the bus)."""
    if conv is None:
        return record
    members = []
    for m in record.members:
        old = conv.members.get(m.user_id)
        if old is not None and old.joined_seq == m.joined_seq:
            m = MemberRecord(m.user_id, m.role, m.joined_seq,
                             max(m.last_delivered_seq, old.delivered),
                             max(m.last_read_seq, old.read))
        members.append(m)
    return ConversationRecord(record.conversation_id, record.kind, record.name,
                              max(record.last_seq, conv.last_seq),
                              max(record.last_activity, conv.last_activity), members)

