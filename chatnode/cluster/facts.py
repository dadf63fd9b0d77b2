"""The facts nodes tell each other on the bus: what one node committed (or saw), as it is.

A fact is a statement about the shared store or about a node's sessions, never a command: each
node takes it in through the same path as its own commits. Every fact names the node it came
from (a node hears its own publications too and ignores them). MessagePack on the wire: the
log's own structs cross as they are, and one decode validates the whole fact.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct

from ..protocol import Message, UserUpdated
from ..store import ConversationRecord


class Fact(Struct, tag_field="fact"):
    origin: str


class MessageCommitted(Fact, tag="message"):
    message: Message


class MarkersMoved(Fact, tag="markers"):
    """A member's markers after a commit; cumulative, so late or repeated is harmless."""

    conversation_id: str
    user_id: str
    delivered: int
    read: int


class ConversationChanged(Fact, tag="conversation"):
    """A conversation as committed after a create, membership, role or name change, with the
    system messages that change appended to the log (none for a create)."""

    record: ConversationRecord
    events: list[Message]
    created: bool = False


class TypingChanged(Fact, tag="typing"):
    conversation_id: str
    user_id: str
    typing: bool


class PresenceChanged(Fact, tag="presence"):
    """A user's first session on the origin node opened, or their last one there closed (after
    the grace that hides a flap). Whether they are online anywhere is each node's sum."""

    user_id: str
    online: bool
    last_seen: int


class NodePresence(Fact, tag="node_presence"):
    """Every user online on the origin node, after its bus came back: the others may have
    read its presence hash while Redis was empty, or missed its presence facts."""

    users: list[str]


class PushTargetAdded(Fact, tag="push_target"):
    """A device of the user registered a push target: any node's commit may now wake them."""

    user_id: str


class DeviceRevoked(Fact, tag="device_revoked"):
    """A device was logged out: its sessions on every node close with 4001."""

    device_id: str


class UserDisabled(Fact, tag="user_disabled"):
    """An admin disabled an account: its sessions on every node close with 4001."""

    user_id: str


class ProfileChanged(Fact, tag="profile"):
    """A user's display name or avatar changed, as its `user_updated` frame: each node sends it
    to the user's sessions and their peers' there."""

    frame: UserUpdated


class Resync(Fact, tag="resync"):
    """The origin dropped facts (its bus was down or its queue full): every node makes its
    sessions whole from the store, as after its own reconnection."""


AnyFact = MessageCommitted | MarkersMoved | ConversationChanged | TypingChanged \
    | PresenceChanged | NodePresence | PushTargetAdded | DeviceRevoked | UserDisabled \
    | ProfileChanged | Resync

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyFact)
# What one bus message carries: a fact, or a list of them that one node published together.
_message_decoder = msgspec.msgpack.Decoder(AnyFact | list[AnyFact])


def encode_fact(fact: AnyFact) -> bytes:
    return _encoder.encode(fact)


def decode_fact(data: bytes) -> AnyFact:
    """Raises msgspec.DecodeError (a ValueError) for anything that is not a fact."""
    return _decoder.decode(data)


def encode_batch(encoded: list[bytes]) -> bytes:
    """Facts already encoded, as one bus message (a MessagePack array of them, not encoded
    again): one Redis command for whatever a node has queued, as one commit for whatever its
    writer has."""
    return _encoder.encode([msgspec.Raw(fact) for fact in encoded])


def decode_message(data: bytes) -> list[AnyFact]:
    """The facts of one bus message, in the order they were published; raises
    msgspec.DecodeError (a ValueError) for anything else."""
    decoded = _message_decoder.decode(data)
    return decoded if isinstance(decoded, list) else [decoded]
