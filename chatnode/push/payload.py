"""What a notification says, as the user's `push_preview` allows.

Push services and lock screens see it (an ntfy topic is plain text to its server), so the user
chooses: the message itself (`full`), only who wrote (`sender`), or only that something came
(`none`). The conversation id is always there, so a tap opens the right conversation; it is a
random id and says nothing by itself.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..protocol import Message

PREVIEW_CHARS = 120
NODE_TITLE = "chatnode"


def preview_of(message: Message) -> str:
    if message.kind == "media":
        text = message.body.strip() or "Media"
        return f"📎 {text}"[:PREVIEW_CHARS]
    text = " ".join(message.body.split())
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def message_notification(message: Message, unread: int, preview: str, sender: str,
                         conversation_name: str | None) -> bytes:
    """The JSON of one (coalesced) notification: `message` is the latest of the burst."""
    new = "New message" if unread <= 1 else f"{unread} new messages"
    payload: dict[str, Any] = {"type": "message", "conversation_id": message.conversation_id,
                               "seq": message.seq, "unread": unread}
    if preview == "none":
        payload.update(title=NODE_TITLE, body=new)
        return msgspec.json.encode(payload)
    title = sender if conversation_name is None else f"{sender} in {conversation_name}"
    payload.update(title=title, sender_id=message.sender_id, sender=sender,
                   conversation_name=conversation_name)
    if preview == "sender":
        payload["body"] = new
    else:
        payload["body"] = payload["preview"] = preview_of(message)
    return msgspec.json.encode(payload)


def clear_notification(conversation_id: str) -> bytes:
    """Sent when the user has read the conversation elsewhere: close what is shown for it."""
    return msgspec.json.encode({"type": "clear", "conversation_id": conversation_id})
