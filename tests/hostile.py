"""Hypothesis strategies for hostile client input: any value, and the protocol's own client
frames with their fields replaced, dropped or joined by others. Encoded with msgspec (JSON) and
the independent `msgpack` package, plus what no encoder writes on its own (invalid UTF-8, lone
surrogates, nesting deeper than any decoder recurses), spliced into the encoded bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import msgspec
from hypothesis import strategies as st

from chatnode.protocol import Codec

CLIENT_FRAME_TYPES = ("hello", "send", "delivered", "read", "typing", "ping")
MSGPACK_INT_RANGE = (-(2**63), 2**64 - 1)

BOUNDARY_INTS = (0, -1, 1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                 -(2**63), -(2**63) - 1, 10**30, -(10**30))
BOUNDARY_STRS = ("", " ", "\n\t", "\x00", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 256,
                 "x" * 257, "y" * 10_000, "y" * 10_001, "é" * 20_000, "👍", "\u202e\u0301",
                 "hello", "send", "null", "NaN")


@dataclass(frozen=True)
class Raw:
    """Bytes spliced into an encoded frame where this value stands, one form per codec."""

    name: str
    json: bytes = field(repr=False)
    msgpack: bytes = field(repr=False)


def _msgpack_str_header(size: int) -> bytes:
    return bytes([0xA0 | size]) if size < 32 else b"\xd9" + bytes([size])


LONE_SURROGATE = Raw("lone surrogate", b'"a\\ud800b"',
                     _msgpack_str_header(5) + b"a\xed\xa0\x80b")
invalid_utf8 = st.binary(min_size=1, max_size=40).map(
    lambda b: Raw(f"invalid utf-8 {b!r}",
                  b'"' + b.replace(b'"', b"\xff").replace(b"\\", b"\xfe") + b'"',
                  _msgpack_str_header(len(b)) + b))
deep_nesting = st.integers(200, 3000).map(
    lambda n: Raw(f"nested {n} deep", b"[" * n + b"]" * n, b"\x91" * n + b"\xc0"))

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(BOUNDARY_INTS),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(BOUNDARY_STRS), st.binary(max_size=40),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    st.just(LONE_SURROGATE), invalid_utf8, deep_nesting,
)
# JSON writes every key as a string; MessagePack keeps the others as they are.
keys = st.one_of(st.text(max_size=12), st.sampled_from(("type", "seq", "conversation_id",
                                                        "client_msg_id", "body", "id")),
                 st.integers(-3, 3), st.none(), st.binary(max_size=4))
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
# A map at the top, as a frame is: most hostile input is a map with something wrong inside.
maps = st.dictionaries(keys, values, max_size=6)


def mostly(usual: st.SearchStrategy[Any], unusual: st.SearchStrategy[Any]
           ) -> st.SearchStrategy[Any]:
    """`usual` three times in four: plausible frames should mostly pass, to reach the rules."""
    return st.integers(0, 3).flatmap(lambda i: unusual if i == 0 else usual)


@dataclass
class World:
    """What a fuzzed frame may refer to: by default made-up ids; the session fuzzer fills in
    real conversations (the user's and others'), a real token and the seqs that exist."""

    conversation_ids: st.SearchStrategy[Any] = field(
        default_factory=lambda: st.text(min_size=1, max_size=70))
    tokens: st.SearchStrategy[Any] = field(default_factory=lambda: st.text(max_size=300))
    seqs: st.SearchStrategy[Any] = field(
        default_factory=lambda: st.one_of(st.sampled_from(BOUNDARY_INTS), st.integers(0, 10)))
    client_msg_ids: st.SearchStrategy[Any] = field(
        default_factory=lambda: st.one_of(st.sampled_from(("m1", "m2", "m3")),
                                          st.text(min_size=1, max_size=130)))

    frame_types: tuple[str, ...] = CLIENT_FRAME_TYPES

    def fields(self, frame_type: str) -> dict[str, st.SearchStrategy[Any]]:
        """The fields of `frame_type`, each with a strategy for plausible values."""
        ids = st.text(min_size=1, max_size=70)
        per_type: dict[str, dict[str, st.SearchStrategy[Any]]] = {
            "hello": {"token": self.tokens,
                      "sync": st.dictionaries(self.conversation_ids | ids, self.seqs,
                                              max_size=4) | st.none(),
                      "client": st.text(max_size=130) | st.none()},
            "send": {"conversation_id": self.conversation_ids, "client_msg_id": self.client_msg_ids,
                     "body": mostly(st.sampled_from(("hi", "👍", "edited")),
                                    st.text(max_size=30) | st.sampled_from(BOUNDARY_STRS)),
                     "kind": mostly(st.just("text"), st.sampled_from(
                         ("media", "reaction", "edit", "delete", "system", ""))),
                     "media_id": mostly(st.none(), ids), "reply_to": mostly(st.none(), self.seqs),
                     "target": mostly(st.none(), self.seqs)},
            "delivered": {"conversation_id": self.conversation_ids, "seq": self.seqs},
            "read": {"conversation_id": self.conversation_ids, "seq": self.seqs},
            "typing": {"conversation_id": self.conversation_ids},
            "ping": {"id": st.sampled_from(BOUNDARY_INTS) | st.text(max_size=130) | st.integers()
                     | st.none()},
        }
        return per_type[frame_type]


@st.composite
def near_valid_frames(draw: st.DrawFn, world: World | None = None,
                      plausible_only: bool = False) -> dict[Any, Any]:
    """A client frame of the protocol, each field kept, replaced by a value of any type, or
    dropped; sometimes with extra fields or another `type`; in any key order. With
    `plausible_only`, every field is plausible: such frames mostly pass, to reach the rules."""
    world = world or World()
    frame_type = draw(st.sampled_from(world.frame_types))
    # How hostile this frame is: all plausible, a field or so off, or anything goes.
    fates = ("plausible",) if plausible_only else draw(st.sampled_from((
        ("plausible",), ("plausible",) * 5 + ("hostile", "gone"),
        ("plausible", "hostile", "gone"))))
    frame: dict[Any, Any] = {}
    for name, plausible in world.fields(frame_type).items():
        fate = draw(st.sampled_from(fates))
        if fate == "plausible":
            frame[name] = draw(plausible)
        elif fate == "hostile":
            frame[name] = draw(values)
    if len(fates) > 1:
        frame.update(draw(st.dictionaries(st.text(max_size=10), values, max_size=2)))
    fate = draw(st.sampled_from(("kept",) * 6 + ("another", "hostile", "gone")
                                if len(fates) > 1 else ("kept",)))
    if fate == "kept":
        frame["type"] = frame_type
    elif fate == "another":
        frame["type"] = draw(st.sampled_from((*CLIENT_FRAME_TYPES, "welcome", "pong", "")))
    elif fate == "hostile":
        frame["type"] = draw(values)
    order = draw(st.permutations(list(frame)))
    return {key: frame[key] for key in order}


def encode(value: Any, codec: Codec) -> bytes:
    """`value` as a client would put it on the wire, with every Raw spliced in."""
    raws: dict[str, Raw] = {}

    def prepare(v: Any) -> Any:
        if isinstance(v, Raw):
            placeholder = f"\x01raw{len(raws)}\x01"
            raws[placeholder] = v
            return placeholder
        if isinstance(v, dict):
            return {json_key(prepare(k)): prepare(x) for k, x in v.items()}
        if isinstance(v, list):
            return [prepare(x) for x in v]
        if codec == "json" and isinstance(v, msgpack.ExtType):
            return v.data
        if codec == "msgpack" and isinstance(v, int) and not isinstance(v, bool):
            return min(max(v, MSGPACK_INT_RANGE[0]), MSGPACK_INT_RANGE[1])
        return v

    def json_key(k: Any) -> Any:
        return k if codec == "msgpack" or isinstance(k, str) else str(k)

    prepared = prepare(value)
    if codec == "json":
        data = msgspec.json.encode(prepared)
    else:
        data = msgpack.packb(prepared, use_bin_type=True)
    for placeholder, raw in raws.items():
        encoded = msgspec.json.encode(placeholder) if codec == "json" else msgpack.packb(
            placeholder, use_bin_type=True)
        data = data.replace(encoded, raw.json if codec == "json" else raw.msgpack)
    return data


def spliced(value: Any) -> bool:
    """Whether `value` holds a Raw: bytes no decoder should take as a frame."""
    if isinstance(value, Raw):
        return True
    if isinstance(value, dict):
        return any(spliced(k) or spliced(v) for k, v in value.items())
    if isinstance(value, list):
        return any(spliced(v) for v in value)
    return False
