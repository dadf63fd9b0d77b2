"""Invites: how people get in on a node with `registration = "invite"` (the default).

An admin makes an invite (`chatnode invite create`, or the browser app) and hands its link to
one person or a few; opening the link registers them. The token has 256 bits of randomness, is
shown once and stored only as its SHA-256 (like device tokens), so a copy of the database lets
nobody in. Nothing here does I/O: the store keeps invites, this module says what they mean.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Literal

from .protocol import InviteInfo

if TYPE_CHECKING:  # the store imports this module; only the type goes the other way
    from .store.records import InviteRecord

InviteState = Literal["active", "used", "expired", "revoked"]

DEFAULT_EXPIRY = "7d"
MAX_EXPIRY_S = 365 * 86_400
MAX_USES = 1000
_DURATION = re.compile(r"(\d{1,7})([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> int:
    """`30m`, `12h`, `7d` (or `45s`) in milliseconds; ValueError says what is accepted."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = int(match[1]) * _UNIT_S[match[2]] if match else 0
    if not 0 < seconds <= MAX_EXPIRY_S:
        raise ValueError(f"expiry {text!r} is not a duration like 30m, 12h or 7d"
                         f" (at least 1s, at most {MAX_EXPIRY_S // 86_400}d)")
    return seconds * 1000


def new_invite_token() -> str:
    return secrets.token_urlsafe(32)


def invite_link(base_url: str, token: str) -> str:
    """The link the browser app opens as an invitation (the token never reaches a server log:
    browsers do not send what follows the #)."""
    return f"{base_url.rstrip('/')}/#invite={token}"


def invite_state(invite: InviteRecord, now_ms: int) -> InviteState:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.uses >= invite.max_uses:
        return "used"
    if invite.expires_at <= now_ms:
        return "expired"
    return "active"


_REFUSALS: dict[InviteState, str] = {
    "revoked": "this invite was revoked: ask an admin for a new one",
    "used": "this invite has already been used: ask an admin for a new one",
    "expired": "this invite has expired: ask an admin for a new one",
}


def invite_refusal(invite: InviteRecord | None, now_ms: int) -> str:
    """Why an invite cannot be used, in words for the person holding it."""
    if invite is None:
        return "this invite is not valid: check the link, or ask an admin for a new one"
    return _REFUSALS.get(invite_state(invite, now_ms), "this invite cannot be used")


def invite_info(invite: InviteRecord, now_ms: int) -> InviteInfo:
    """An invite as admins see it listed (REST and CLI alike)."""
    return InviteInfo(invite.invite_id, invite_state(invite, now_ms), invite.max_uses,
                      max(0, invite.max_uses - invite.uses), invite.makes_admin,
                      invite.created_by, invite.created_at, invite.expires_at)
