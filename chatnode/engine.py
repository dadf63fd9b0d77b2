"""The delivery rules: who may send, who receives, what markers mean, what a device missed.

Like h11, this is a plain object with no I/O: it holds the committed state of every
conversation (membership, last_seq, the two markers of each member) and answers questions and
applies committed facts, returning what must be said to whom. The caller does the storing and
the sending. Every method runs in the trio thread, so no locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from .lowest import Lowest, MarkerIndex
from .protocol import (
    ChatError,
    ConversationFrame,
    ErrorCode,
    MemberInfo,
    Message,
    Send,
    StatusUpdate,
)
from .store import CatchupRange, ConversationRecord

SUPPORTED_KINDS = frozenset({"text", "media", "reaction", "edit", "delete"})
TARGETED_KINDS = frozenset({"reaction", "edit", "delete"})
MAX_REACTION_CHARS = 16


@dataclass(slots=True)
class MemberState:
    user_id: str
    role: str
    joined_seq: int
    delivered: int
    read: int


@dataclass(slots=True)
class ConversationState:
    conversation_id: str
    kind: str
    name: str | None
    last_seq: int
    last_activity: int
    members: dict[str, MemberState] = field(default_factory=dict)
    delivered_index: MarkerIndex = field(default_factory=MarkerIndex)
    read_index: MarkerIndex = field(default_factory=MarkerIndex)

    def set_markers(self, member: MemberState, delivered: int, read: int) -> None:
        """The one way a member's markers change, so the indexes always agree with them."""
        member.delivered, member.read = delivered, read
        self.delivered_index.set(member.user_id, delivered)
        self.read_index.set(member.user_id, read)

    def lowest(self) -> tuple[Lowest, Lowest]:
        """The lowest delivered and read markers of the members."""
        return self.delivered_index.lowest(), self.read_index.lowest()


@dataclass(slots=True)
class CatchupPlan:
    """What a connecting device is sent: message ranges, then one status per conversation.

    `upto` is each conversation's last_seq at the moment the plan was made (or the device's
    own last seq, if higher); live frames held during the catch-up are released only above
    it, so nothing is sent twice."""

    ranges: list[CatchupRange]
    statuses: list[StatusUpdate]
    upto: dict[str, int]


class Engine:
    def __init__(self, conversations: Iterable[ConversationRecord], *, body_chars: int,
                 history_on_new_device: int) -> None:
        self.body_chars = body_chars
        self.history_on_new_device = history_on_new_device
        self.conversations: dict[str, ConversationState] = {}
        self.by_user: dict[str, set[str]] = {}
        for record in conversations:
            self.add_conversation(record)

    # --- membership ---------------------------------------------------------------------------

    def add_conversation(self, record: ConversationRecord) -> ConversationState:
        conv = ConversationState(record.conversation_id, record.kind, record.name,
                                 record.last_seq, record.last_activity)
        for m in record.members:
            member = conv.members[m.user_id] = MemberState(m.user_id, m.role, m.joined_seq, 0, 0)
            conv.set_markers(member, m.last_delivered_seq, m.last_read_seq)
            self.by_user.setdefault(m.user_id, set()).add(conv.conversation_id)
        self.conversations[conv.conversation_id] = conv
        return conv

    def conversation_for(self, user_id: str, conversation_id: str,
                         ref: str | None = None) -> ConversationState:
        """The conversation, if `user_id` is a member. A stranger gets `forbidden` whether or
        not it exists, so the answer tells them nothing."""
        conv = self.conversations.get(conversation_id)
        if conv is None or user_id not in conv.members:
            raise ChatError(ErrorCode.FORBIDDEN, "not a member of this conversation", ref=ref)
        return conv

    def conversations_of(self, user_id: str) -> list[ConversationState]:
        """The user's conversations, most recent activity first."""
        convs = [self.conversations[c] for c in self.by_user.get(user_id, ())]
        convs.sort(key=lambda c: (c.last_activity, c.conversation_id), reverse=True)
        return convs

    def peers_of(self, user_id: str) -> set[str]:
        """Everyone who shares a conversation with the user (the user excluded)."""
        peers: set[str] = set()
        for conversation_id in self.by_user.get(user_id, ()):
            peers.update(self.conversations[conversation_id].members)
        peers.discard(user_id)
        return peers

    @staticmethod
    def conversation_frame(conv: ConversationState) -> ConversationFrame:
        return ConversationFrame(
            conversation_id=conv.conversation_id, kind=conv.kind, name=conv.name,
            members=[MemberInfo(m.user_id, m.role) for m in conv.members.values()],
            last_seq=conv.last_seq,
        )

    # --- sending ------------------------------------------------------------------------------

    def check_send(self, user_id: str, frame: Send) -> ConversationState:
        """Refuse a send that must not be stored; changes nothing.

        What needs the log itself (that an edited or deleted target is the sender's own) is
        checked by the store in the same transaction as the append."""
        ref = frame.client_msg_id
        conv = self.conversation_for(user_id, frame.conversation_id, ref)

        def refuse(message: str) -> ChatError:
            return ChatError(ErrorCode.INVALID, message, ref=ref)

        if frame.kind not in SUPPORTED_KINDS:
            raise refuse(f"kind {frame.kind!r} is not supported yet")
        if len(frame.body) > self.body_chars:
            raise ChatError(ErrorCode.TOO_LARGE,
                            f"body is longer than {self.body_chars} characters", ref=ref)
        if (frame.kind == "media") != (frame.media_id is not None):
            raise refuse("media_id is required for kind media, and only for it")
        needs_target = frame.kind in TARGETED_KINDS
        if needs_target != (frame.target is not None):
            raise refuse("target is required for reaction, edit and delete, and only for them")
        if frame.target is not None and not 1 <= frame.target <= conv.last_seq:
            raise refuse("target names no message of this conversation")
        if frame.kind in ("text", "edit") and not frame.body.strip():
            raise refuse("body must not be empty")
        if frame.kind == "reaction" and len(frame.body) > MAX_REACTION_CHARS:
            raise refuse(f"a reaction is at most {MAX_REACTION_CHARS} characters")
        if frame.reply_to is not None:
            if frame.kind not in ("text", "media"):
                raise refuse("reply_to belongs to kinds text and media")
            if not 1 <= frame.reply_to <= conv.last_seq:
                raise refuse("reply_to names no message of this conversation")
        return conv

    def apply_message(self, message: Message) -> list[str]:
        """Take in a committed message; return the members to deliver it to.

        The sender's markers move up to it (whoever writes has the conversation open); that
        move is carried by the next status_update, not one of its own."""
        conv = self.conversations[message.conversation_id]
        conv.last_seq = max(conv.last_seq, message.seq)
        conv.last_activity = max(conv.last_activity, message.ts)
        sender = conv.members.get(message.sender_id)
        if sender is not None:
            conv.set_markers(sender, max(sender.delivered, message.seq),
                             max(sender.read, message.seq))
        return list(conv.members)

    # --- markers ------------------------------------------------------------------------------

    def check_marker(self, user_id: str, conversation_id: str, seq: int,
                     read: bool) -> bool:
        """Whether a `delivered`/`read` up to `seq` would move anything. A seq past last_seq
        is refused; one at or below the current marker is a harmless no-op."""
        conv = self.conversation_for(user_id, conversation_id, "read" if read else "delivered")
        if seq > conv.last_seq:
            raise ChatError(ErrorCode.INVALID_SEQ,
                            f"seq {seq} is past the conversation's last_seq {conv.last_seq}",
                            ref="read" if read else "delivered")
        me = conv.members[user_id]
        return seq > (me.read if read else me.delivered)

    def apply_markers(self, conversation_id: str, user_id: str, delivered: int,
                      read: int) -> list[tuple[str, StatusUpdate]]:
        """Take in committed markers; return the status_update each affected member now sees.

        Affected: the user themselves when their read marker moved (their other devices' unread
        counts), and every other member whose minimum-over-others moved. O(1) unless a lowest
        marker moved (see lowest.py); then one pass over the members, who all see it move."""
        conv = self.conversations.get(conversation_id)
        me = conv.members.get(user_id) if conv is not None else None
        if conv is None or me is None:
            return []
        new_delivered = max(me.delivered, delivered, read)
        new_read = max(me.read, read)
        if (new_delivered, new_read) == (me.delivered, me.read):
            return []
        before = conv.lowest()
        read_moved = new_read != me.read
        conv.set_markers(me, new_delivered, new_read)
        return self._changed_views(conv, before, user_id if read_moved else None,
                                   conv.members.keys())

    def _changed_views(self, conv: ConversationState, before: tuple[Lowest, Lowest],
                       mover: str | None, viewers: Set[str]) -> list[tuple[str, StatusUpdate]]:
        """The status_update of each viewer whose minimum-over-others moved since `before`,
        and of `mover` whatever happened."""
        delivered_before, read_before = before
        delivered_after, read_after = after = conv.lowest()
        if (delivered_before.first, read_before.first) == (delivered_after.first,
                                                           read_after.first):
            # Every viewer but a sole holder of a lowest value sees that lowest value, and it
            # did not move: only those holders and the mover can see anything new.
            candidates = {mover, *(lowest.holder for lowest in before + after)}
            viewers = viewers & candidates
        updates = []
        for v in viewers:
            viewer = conv.members.get(v)
            if viewer is None:
                continue
            seen_delivered = delivered_after.excluding(v)
            seen_read = read_after.excluding(v)
            if (v == mover
                    or seen_delivered != delivered_before.excluding(v)
                    or seen_read != read_before.excluding(v)):
                updates.append((v, StatusUpdate(conv.conversation_id, conv.last_seq,
                                                seen_delivered, seen_read, viewer.read)))
        return updates

    def replace_conversation(self, record: ConversationRecord) -> list[tuple[str, StatusUpdate]]:
        """Take in a committed membership change; return the status_update of each member who
        stays and whose group ticks moved (a removed member no longer counts)."""
        old = self.conversations.get(record.conversation_id)
        if old is None:
            self.add_conversation(record)
            return []
        before = old.lowest()
        remaining = {m.user_id for m in record.members}
        for user_id in old.members.keys() - remaining:
            self.by_user.get(user_id, set()).discard(record.conversation_id)
        conv = self.add_conversation(record)
        return self._changed_views(conv, before, None, old.members.keys() & remaining)

    def status_for(self, user_id: str, conv: ConversationState) -> StatusUpdate:
        delivered, read = conv.lowest()
        return StatusUpdate(conv.conversation_id, conv.last_seq, delivered.excluding(user_id),
                            read.excluding(user_id), conv.members[user_id].read)

    # --- catch-up -----------------------------------------------------------------------------

    def catchup_plan(self, user_id: str, sync: dict[str, int] | None) -> CatchupPlan:
        """What a device connecting now is missing, in order of latest activity.

        Without `sync`: everything after the user's own last_delivered_seq (the server's
        pending-deliveries view). With `sync`: everything after the client's own last seq for
        the conversations it lists, and the latest `history_on_new_device` of the others.
        Conversations the client lists but is not a member of are ignored: it learns nothing."""
        ranges: list[CatchupRange] = []
        statuses: list[StatusUpdate] = []
        upto: dict[str, int] = {}
        for conv in self.conversations_of(user_id):
            me = conv.members[user_id]
            if sync is None:
                lo = me.delivered
            elif conv.conversation_id in sync:
                lo = sync[conv.conversation_id]
            else:
                lo = conv.last_seq - self.history_on_new_device
            lo = max(lo, me.joined_seq)
            if conv.last_seq > lo:
                ranges.append(CatchupRange(conv.conversation_id, lo, conv.last_seq))
            statuses.append(self.status_for(user_id, conv))
            # In a cluster, this node may not have taken in a message the device already got
            # from another node (its fact is still on the bus): when it comes, it is held and
            # must not be released to the device a second time.
            synced = sync.get(conv.conversation_id, 0) if sync is not None else 0
            upto[conv.conversation_id] = max(conv.last_seq, synced)
        return CatchupPlan(ranges, statuses, upto)

    def unread(self, user_id: str, conv: ConversationState) -> int:
        return max(0, conv.last_seq - max(conv.members[user_id].read,
                                          conv.members[user_id].joined_seq))
