"""The lowest value of one marker across a conversation's members, kept as markers move.

A group's ticks are a minimum: ✓✓ once every *other* member has the message. Recomputing that
minimum over 256 members at each `delivered` costs O(members) per acknowledgement, so
O(members²) per message once everyone has acknowledged it: under a busy group the profile
showed a fifth of the node's time there. This index keeps the members grouped by value, so a
move is O(1) and the lowest values are a min() over the distinct values, which are few: members
who keep up share the same few seqs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lowest:
    """The lowest value, the member holding it when only one does, and the lowest value of the
    others in that case: enough to answer "minimum over everyone but V" for every V in O(1)."""

    first: int | None
    holder: str | None
    second: int | None

    def excluding(self, user_id: str) -> int:
        """Minimum over every member but `user_id`; 0 when nobody else is there (no one else
        has anything, so the honest tick is "sent")."""
        value = self.second if user_id == self.holder else self.first
        return 0 if value is None else value


class MarkerIndex:
    """Which members stand at which value of one marker."""

    __slots__ = ("_members_at", "_value_of")

    def __init__(self) -> None:
        self._members_at: dict[int, set[str]] = {}
        self._value_of: dict[str, int] = {}

    def set(self, user_id: str, value: int) -> None:
        old = self._value_of.get(user_id)
        if old == value:
            return
        if old is not None:
            members = self._members_at[old]
            members.discard(user_id)
            if not members:
                del self._members_at[old]
        self._value_of[user_id] = value
        self._members_at.setdefault(value, set()).add(user_id)

    def lowest(self) -> Lowest:
        if not self._members_at:
            return Lowest(None, None, None)
        first = min(self._members_at)
        at_first = self._members_at[first]
        if len(at_first) > 1:
            return Lowest(first, None, first)
        (holder,) = at_first
        second = min((value for value in self._members_at if value != first), default=None)
        return Lowest(first, holder, second)
