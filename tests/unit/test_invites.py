"""Invites without a node: the expiry durations the CLI and REST take, and what state an invite
is in."""

from __future__ import annotations

import pytest

from chatnode.invites import invite_link, invite_refusal, invite_state, parse_duration
from chatnode.store.records import InviteRecord


@pytest.mark.parametrize(("text", "ms"), [("30m", 1_800_000), ("12h", 43_200_000),
                                          ("7d", 604_800_000), ("45s", 45_000),
                                          (" 1D ", 86_400_000), ("365d", 365 * 86_400_000)])
def test_durations_are_a_number_and_a_unit(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["7", "d", "0m", "366d", "-1d", "1.5h", "7 d", "1w", ""])
def test_anything_else_is_refused_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="30m, 12h or 7d"):
        parse_duration(text)


def invite(**changes: object) -> InviteRecord:
    fields: dict[str, object] = {
        "invite_id": "i_1", "max_uses": 2, "uses": 0, "makes_admin": False, "created_by": None,
        "created_at": 0, "expires_at": 1000, "revoked_at": None, **changes}
    return InviteRecord(**fields)  # type: ignore[arg-type]


def test_an_invite_is_revoked_before_used_before_expired() -> None:
    assert invite_state(invite(), 999) == "active"
    assert invite_state(invite(), 1000) == "expired"
    assert invite_state(invite(uses=2), 999) == "used"
    assert invite_state(invite(uses=2, revoked_at=5), 2000) == "revoked"
    assert "expired" in invite_refusal(invite(), 1000)
    assert "not valid" in invite_refusal(None, 0)


def test_the_link_puts_the_token_after_the_hash_whatever_the_base_ends_with() -> None:
    for base in ("https://chat.example.org", "https://chat.example.org/"):
        assert invite_link(base, "tok") == "https://chat.example.org/#invite=tok"
