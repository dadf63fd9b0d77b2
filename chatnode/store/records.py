"""What the store hands back: plain typed records, no behaviour.

Messages are returned as `protocol.Message`: a log row and the `message` frame have exactly the
same fields, so one struct serves both and nothing is copied on the catch-up path.
"""

from __future__ import annotations

from msgspec import Struct


class UserRecord(Struct):
    user_id: str
    username: str
    display_name: str
    password_hash: str
    disabled: bool
    created_at: int
    last_seen: int | None
    avatar_id: str | None = None
    role: str = "user"  # node-wide: "admin" makes invites and disables users


class DeviceRecord(Struct):
    """A login as its owner sees it in their device list."""

    device_id: str
    name: str | None
    created_at: int
    last_seen: int | None


class DeviceAuth(Struct):
    """Who a token belongs to."""

    device_id: str
    user_id: str
    disabled: bool


class PushTargetRecord(Struct):
    """Where one device is woken: a Web Push subscription (with the browser's p256dh key and
    auth secret) or a UnifiedPush / ntfy endpoint."""

    device_id: str
    user_id: str
    kind: str
    endpoint: str
    p256dh: str | None
    auth: str | None


class MemberRecord(Struct):
    user_id: str
    role: str
    joined_seq: int
    last_delivered_seq: int
    last_read_seq: int


class ConversationRecord(Struct):
    conversation_id: str
    kind: str
    name: str | None
    last_seq: int
    last_activity: int
    members: list[MemberRecord]


class CatchupRange(Struct, array_like=True):
    """Messages (lo, hi] of one conversation: hi - lo rows, since seqs have no gaps."""

    conversation_id: str
    lo: int
    hi: int


class SearchRow(Struct):
    """A search hit as the store finds it: `cursor` orders hits (newest is largest) and pages
    them; `body` is the message's current text (after its latest edit)."""

    cursor: int
    conversation_id: str
    seq: int
    sender_id: str
    ts: int
    kind: str
    body: str
class InviteRecord(Struct):
    """An invite as listed: never its token, which only its creator ever saw."""

    invite_id: str
    max_uses: int
    uses: int
    makes_admin: bool
    created_by: str | None  # the creator's username; None when made with the admin CLI
    created_at: int
    expires_at: int
    revoked_at: int | None
