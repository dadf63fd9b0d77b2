"""History with edits and reactions folded onto the messages they target.

The log stays append-only; this is only a view of it for clients that would rather not fold
events themselves: each text or media message carries its latest edit and the current
reactions, and the reaction and edit events themselves are left out of the page (deletes
are kept: they already blanked their target).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from .protocol import FoldedMessage, Message

FOLDED_KINDS = ("edit", "reaction")


def fold(page: Iterable[Message], events: Iterable[Message]) -> list[FoldedMessage]:
    """`events`: every edit and reaction targeting a message of `page`, in seq order."""
    latest_edit: dict[int, str] = {}
    reactions: dict[int, dict[str, str]] = {}  # target -> user -> emoji
    for event in events:
        assert event.target is not None
        if event.kind == "edit":
            latest_edit[event.target] = event.body
        else:
            by_user = reactions.setdefault(event.target, {})
            if event.body:
                by_user[event.sender_id] = event.body
            else:  # an empty reaction takes the user's reaction back
                by_user.pop(event.sender_id, None)
    folded = []
    for m in page:
        if m.kind in FOLDED_KINDS:
            continue
        grouped: dict[str, list[str]] = {}
        for user_id, emoji in sorted(reactions.get(m.seq, {}).items()):
            grouped.setdefault(emoji, []).append(user_id)
        fields = msgspec.structs.asdict(m) | {"body": latest_edit.get(m.seq, m.body)}
        folded.append(FoldedMessage(**fields, edited=m.seq in latest_edit, reactions=grouped))
    return folded
