"""The wire codecs: what a client may send, how it is refused, and that frames we encode are
read by independent decoders (the standard json module and the reference msgpack package)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from chatnode.protocol import (
    AnyServerFrame,
    ChatError,
    Codec,
    ConversationFrame,
    Delivered,
    Error,
    ErrorCode,
    Hello,
    MemberInfo,
    Message,
    Ping,
    Pong,
    Presence,
    Read,
    Send,
    Sent,
    StatusUpdate,
    Synced,
    Typing,
    TypingEvent,
    Welcome,
    decode_client_frame,
    encode,
    json_schema,
)

CODECS: list[Codec] = ["json", "msgpack"]


def pack(value: Any, codec: Codec) -> bytes:
    """Client-side encoding with libraries that know nothing of chatnode."""
    if codec == "json":
        return json.dumps(value).encode()
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes, codec: Codec) -> Any:
    if codec == "json":
        return json.loads(data)
    return msgpack.unpackb(data, raw=False)


def refusal(data: bytes | str, codec: Codec) -> ChatError:
    with pytest.raises(ChatError) as exc:
        decode_client_frame(data, codec)
    return exc.value


# --- decoding what clients send ---------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_every_client_frame_decodes_to_its_typed_struct(codec: Codec) -> None:
    cases = [
        ({"type": "hello", "token": "tok", "sync": {"c1": 4, "c2": 0}, "client": "cli/1"},
         Hello(token="tok", sync={"c1": 4, "c2": 0}, client="cli/1")),
        ({"type": "hello", "token": "tok"}, Hello(token="tok")),
        ({"type": "send", "conversation_id": "c1", "client_msg_id": "m1", "body": "hi"},
         Send(conversation_id="c1", client_msg_id="m1", body="hi", kind="text")),
        ({"type": "send", "conversation_id": "c1", "client_msg_id": "m2", "body": "re",
          "reply_to": 3},
         Send(conversation_id="c1", client_msg_id="m2", body="re", reply_to=3)),
        ({"type": "delivered", "conversation_id": "c1", "seq": 7},
         Delivered(conversation_id="c1", seq=7)),
        ({"type": "read", "conversation_id": "c1", "seq": 0}, Read(conversation_id="c1", seq=0)),
        ({"type": "typing", "conversation_id": "c1"}, Typing(conversation_id="c1")),
        ({"type": "ping", "id": "p1"}, Ping(id="p1")),
        ({"type": "ping", "id": 12}, Ping(id=12)),
        ({"type": "ping"}, Ping()),
    ]
    for raw, expected in cases:
        frame = decode_client_frame(pack(raw, codec), codec)
        assert type(frame) is type(expected)
        assert frame == expected


def test_json_frames_decode_from_text_as_well_as_bytes() -> None:
    text = '{"type": "read", "conversation_id": "c1", "seq": 2}'
    assert decode_client_frame(text, "json") == Read(conversation_id="c1", seq=2)
    assert decode_client_frame(text.encode(), "json") == Read(conversation_id="c1", seq=2)


@pytest.mark.parametrize("codec", CODECS)
def test_unknown_extra_fields_are_ignored(codec: Codec) -> None:
    raw = {"type": "read", "conversation_id": "c1", "seq": 2, "from_the_future": [1, 2]}
    assert decode_client_frame(pack(raw, codec), codec) == Read(conversation_id="c1", seq=2)


# --- bad_frame: not decodable, not a map ------------------------------------------------------

@pytest.mark.parametrize(("data", "codec"), [
    (b"{not json", "json"),
    (b"", "json"),
    ("\u00ff{", "json"),
    (b"\xc1", "msgpack"),             # an opcode MessagePack never uses
    (msgpack.packb({"type": "ping"})[:-2], "msgpack"),   # truncated
    (b"", "msgpack"),
])
def test_undecodable_input_is_a_bad_frame(data: bytes | str, codec: Codec) -> None:
    assert refusal(data, codec).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("value", [[{"type": "ping"}], "ping", 42, None])
def test_a_frame_that_is_not_a_map_is_a_bad_frame(codec: Codec, value: Any) -> None:
    assert refusal(pack(value, codec), codec).code == ErrorCode.BAD_FRAME


# --- invalid: the message names the field -----------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "send", "client_msg_id": "m1", "body": "x"}, "conversation_id"),
    ({"type": "read", "conversation_id": "c1"}, "seq"),
    ({"type": "hello"}, "token"),
    ({"conversation_id": "c1", "seq": 1}, "type"),
])
def test_a_missing_field_is_invalid_and_named(codec: Codec, raw: dict[str, Any],
                                              field: str) -> None:
    error = refusal(pack(raw, codec), codec)
    assert error.code == ErrorCode.INVALID
    assert f"`{field}`" in error.message


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "read", "conversation_id": "c1", "seq": "5"}, "seq"),
    ({"type": "delivered", "conversation_id": 17, "seq": 5}, "conversation_id"),
    ({"type": "send", "conversation_id": "c1", "client_msg_id": "m1", "body": 3}, "body"),
    ({"type": "hello", "token": "t", "sync": ["c1", 3]}, "sync"),
    ({"type": "hello", "token": "t", "sync": {"c1": "3"}}, "sync"),
    ({"type": "send", "conversation_id": "c1", "client_msg_id": "m1", "body": "x",
      "kind": "shout"}, "kind"),
    ({"type": 5}, "type"),
])
def test_a_field_of_the_wrong_type_is_invalid_and_named(codec: Codec, raw: dict[str, Any],
                                                        field: str) -> None:
    error = refusal(pack(raw, codec), codec)
    assert error.code == ErrorCode.INVALID
    assert f"$.{field}" in error.message


@pytest.mark.parametrize("codec", CODECS)
def test_an_unknown_type_is_invalid_and_named(codec: Codec) -> None:
    error = refusal(pack({"type": "shout", "conversation_id": "c1"}, codec), codec)
    assert error.code == ErrorCode.INVALID
    assert "$.type" in error.message
    assert "shout" in error.message


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "read", "conversation_id": "c1", "seq": -1}, "seq"),
    ({"type": "delivered", "conversation_id": "c1", "seq": -5}, "seq"),
    ({"type": "send", "conversation_id": "c1", "client_msg_id": "m1", "body": "x",
      "reply_to": -3}, "reply_to"),
    ({"type": "read", "conversation_id": "", "seq": 1}, "conversation_id"),
    ({"type": "read", "conversation_id": "c1", "seq": 2**53 + 1}, "seq"),
])
def test_an_out_of_range_value_is_invalid_and_named(codec: Codec, raw: dict[str, Any],
                                                    field: str) -> None:
    error = refusal(pack(raw, codec), codec)
    assert error.code == ErrorCode.INVALID
    assert f"$.{field}" in error.message


@pytest.mark.parametrize("codec", CODECS)
def test_an_invalid_send_echoes_its_client_msg_id(codec: Codec) -> None:
    raw = {"type": "send", "conversation_id": "c1", "client_msg_id": "m-42", "body": "x",
           "reply_to": -1}
    error = refusal(pack(raw, codec), codec)
    assert error.code == ErrorCode.INVALID
    assert error.ref == "m-42"
    assert error.frame().ref == "m-42"


@pytest.mark.parametrize("codec", CODECS)
def test_an_invalid_frame_without_client_msg_id_echoes_its_type(codec: Codec) -> None:
    error = refusal(pack({"type": "read", "conversation_id": "c1", "seq": -1}, codec), codec)
    assert error.ref == "read"


# --- encoding what the server sends -----------------------------------------------------------

SERVER_FRAMES: list[tuple[AnyServerFrame, dict[str, Any]]] = [
    (Welcome("u1", "d1", 1_700_000_000_000, 30),
     {"type": "welcome", "user_id": "u1", "device_id": "d1", "server_time": 1_700_000_000_000,
      "heartbeat_s": 30}),
    (Message("c1", 3, "u1", "m1", "text", "héllo ✓✓", 1_700_000_000_001, reply_to=2),
     {"type": "message", "conversation_id": "c1", "seq": 3, "sender_id": "u1",
      "client_msg_id": "m1", "kind": "text", "body": "héllo ✓✓", "ts": 1_700_000_000_001,
      "reply_to": 2}),
    (Sent("c1", "m1", 3, 5), {"type": "sent", "conversation_id": "c1", "client_msg_id": "m1",
                              "seq": 3, "ts": 5}),
    (StatusUpdate("c1", 9, 7, 0, 9),
     {"type": "status_update", "conversation_id": "c1", "last_seq": 9,
      "last_delivered_seq": 7, "last_read_seq": 0, "my_read_seq": 9}),
    (Synced(2, 0), {"type": "synced", "conversations": 2, "messages": 0}),
    (ConversationFrame("c1", "direct", None, [MemberInfo("u1", "member")], 0),
     {"type": "conversation", "conversation_id": "c1", "kind": "direct", "name": None,
      "members": [{"user_id": "u1", "role": "member"}], "last_seq": 0}),
    (Presence("u2", False, None),
     {"type": "presence", "user_id": "u2", "online": False, "last_seen": None}),
    (TypingEvent("c1", "u2", True),
     {"type": "typing", "conversation_id": "c1", "user_id": "u2", "typing": True}),
    (Error("invalid_seq", "past last_seq", ref="read"),
     {"type": "error", "code": "invalid_seq", "message": "past last_seq", "ref": "read"}),
    (Pong("p1"), {"type": "pong", "id": "p1"}),
    (Pong(), {"type": "pong"}),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("frame", "expected"), SERVER_FRAMES,
                         ids=[f.__class__.__name__ for f, _ in SERVER_FRAMES])
def test_reference_decoders_read_our_frames(codec: Codec, frame: AnyServerFrame,
                                            expected: dict[str, Any]) -> None:
    assert unpack(encode(frame, codec), codec) == expected


def test_msgpack_frames_are_maps_with_string_keys_and_values() -> None:
    data = encode(Message("c1", 1, "u1", "m1", "text", "hi", 5), "msgpack")
    assert data[0] & 0xF0 == 0x80, "not a MessagePack fixmap"
    # raw=True shows the wire types: str, never bin, for keys and text values
    decoded = msgpack.unpackb(data, raw=True)
    assert decoded[b"type"] == b"message" and decoded[b"body"] == b"hi"
    assert msgpack.unpackb(data, raw=False)["type"] == "message"


@pytest.mark.parametrize("codec", CODECS)
def test_optional_server_fields_are_absent_when_none(codec: Codec) -> None:
    decoded = unpack(encode(Message("c1", 1, "u1", "m1", "text", "hi", 5), codec), codec)
    for absent in ("media_id", "reply_to", "target"):
        assert absent not in decoded
    error = unpack(encode(Error("invalid", "bad"), codec), codec)
    assert "ref" not in error and "retry_after_ms" not in error
    with_media = unpack(encode(Message("c1", 2, "u1", "m2", "media", "", 5, media_id="x1"),
                               codec), codec)
    assert with_media["media_id"] == "x1"


@pytest.mark.parametrize("codec", CODECS)
def test_required_nullable_fields_are_present_when_none(codec: Codec) -> None:
    """`name` of a direct conversation and `last_seen` of a user never seen are part of the
    frame's shape: clients find them, as null."""
    presence = unpack(encode(Presence("u2", True, None), codec), codec)
    assert "last_seen" in presence and presence["last_seen"] is None
    conv = unpack(encode(ConversationFrame("c1", "direct", None, [], 0), codec), codec)
    assert "name" in conv and conv["name"] is None


def test_rate_limited_error_carries_retry_after_ms() -> None:
    error = ChatError(ErrorCode.RATE_LIMITED, "slow down", ref="m1", retry_after_ms=250)
    assert error.http_status == 429
    assert json.loads(encode(error.frame(), "json")) == {
        "type": "error", "code": "rate_limited", "message": "slow down", "ref": "m1",
        "retry_after_ms": 250}


# --- json schema ------------------------------------------------------------------------------

def test_json_schema_describes_every_frame_type() -> None:
    schema = json_schema()
    assert isinstance(schema, dict)
    text = json.dumps(schema)  # plain JSON, publishable as is
    client_types = ["hello", "send", "delivered", "read", "typing", "ping"]
    server_types = ["welcome", "message", "sent", "status_update", "synced", "conversation",
                    "presence", "typing", "error", "pong"]
    tags = set()
    for definition in schema["$defs"].values():
        tag = definition.get("properties", {}).get("type", {}).get("enum")
        if tag:
            tags.update(tag)
    for frame_type in client_types + server_types:
        assert frame_type in tags, f"{frame_type} missing from the schema"
        assert f'"{frame_type}"' in text
    assert "client_frame" in schema["properties"] and "server_frame" in schema["properties"]


def test_json_schema_accepts_what_the_decoder_accepts() -> None:
    """The exported constraints are the decoder's: seq has minimum 0, ids are non-empty."""
    defs = json_schema()["$defs"]
    seq = defs["Read"]["properties"]["seq"]
    assert seq["minimum"] == 0
    assert defs["Send"]["properties"]["conversation_id"]["minLength"] == 1
    assert set(defs["Send"]["required"]) == {"type", "conversation_id", "client_msg_id"}



def test_json_schema_describes_the_rest_bodies_too() -> None:
    from chatnode.protocol import json_schema

    definitions = json_schema()["$defs"]
    for name in ("RegisterRequest", "LoginRequest", "CreateConversationRequest",
                 "SendRequest", "ConversationInfo", "HistoryPage", "ErrorResponse"):
        assert name in definitions
