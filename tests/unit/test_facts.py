"""chatnode.cluster.facts: every fact crosses the bus as MessagePack and comes back equal;
anything else is refused by the one decode."""

from __future__ import annotations

import msgpack
import msgspec
import pytest

from chatnode.cluster.facts import (
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
    decode_fact,
    decode_message,
    encode_batch,
    encode_fact,
)
from chatnode.protocol import Message, UserUpdated
from chatnode.store import ConversationRecord, MemberRecord

MESSAGE = Message("c1", 7, "u1", "m7", "text", "héllo", 1_795_000_000_000, reply_to=3)
RECORD = ConversationRecord("c1", "group", "Team", 8, 1_795_000_000_001,
                            [MemberRecord("u1", "admin", 0, 8, 8),
                             MemberRecord("u2", "member", 8, 0, 0)])
FACTS: list[AnyFact] = [
    MessageCommitted("n1", MESSAGE),
    MarkersMoved("n1", "c1", "u2", 7, 5),
    ConversationChanged("n1", RECORD, [Message("c1", 8, "u1", "s8", "system", "{}", 1)]),
    ConversationChanged("n2", RECORD, [], created=True),
    TypingChanged("n1", "c1", "u1", True),
    PresenceChanged("n2", "u2", False, 1_795_000_000_002),
    NodePresence("n2", ["u1", "u2"]),
    PushTargetAdded("n2", "u2"),
    DeviceRevoked("n1", "d1"),
    UserDisabled("n2", "u2"),
    ProfileChanged("n1", UserUpdated("u1", "ann", "Ann Ö", "m9")),
    Resync("n3"),
]


@pytest.mark.parametrize("fact", FACTS, ids=lambda f: type(f).__name__)
def test_every_fact_round_trips_through_messagepack(fact: AnyFact) -> None:
    data = encode_fact(fact)
    assert decode_fact(data) == fact
    # A plain MessagePack map that names its kind and origin, for anyone reading the bus.
    raw = msgpack.unpackb(data)
    assert raw["origin"] == fact.origin and isinstance(raw["fact"], str)


@pytest.mark.parametrize("data", [b"", b"\x01", msgpack.packb({"fact": "nope", "origin": "n"}),
                                  msgpack.packb({"fact": "markers", "origin": "n"}),
                                  msgpack.packb([1, 2, 3])])
def test_anything_that_is_not_a_fact_is_refused(data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_fact(data)


def test_facts_published_together_come_back_in_order_and_a_lone_fact_still_reads() -> None:
    together = encode_batch([encode_fact(fact) for fact in FACTS])
    assert decode_message(together) == FACTS
    assert decode_message(encode_fact(FACTS[0])) == [FACTS[0]]
    with pytest.raises(msgspec.DecodeError):
        decode_message(msgpack.packb([{"fact": "nope", "origin": "n"}]))
