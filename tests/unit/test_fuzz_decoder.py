"""Fuzzing the client-frame decoder the session loop uses (`decode_client_frame`): whatever
arrives, the answer is a typed frame that keeps the protocol's declared limits, or a ChatError
with the code PROTOCOL.md gives for it. Nothing else may come out: any other exception would
end a session instead of answering it."""

from __future__ import annotations

import json
import re
from typing import Any

import msgpack
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatnode.protocol import (
    AnyClientFrame,
    ChatError,
    ClientFrame,
    Codec,
    ErrorCode,
    Pong,
    decode_client_frame,
)
from chatnode.protocol import encode as encode_server_frame

from ..fuzz_profile import fuzz_settings
from ..hostile import encode, maps, near_valid_frames, spliced, values

CODECS: list[Codec] = ["json", "msgpack"]
FUZZ = fuzz_settings(150)


def outcome(data: bytes | str, codec: Codec) -> AnyClientFrame | ChatError:
    """The decoder's answer; any exception other than ChatError fails the test as it is."""
    try:
        return decode_client_frame(data, codec)
    except ChatError as exc:
        return exc


def conforms(value: Any, type_: mi.Type) -> bool:
    """Whether `value` keeps what the struct metadata declares for its field."""
    match type_:
        case mi.NoneType():
            return value is None
        case mi.StrType():
            return (isinstance(value, str)
                    and (type_.min_length is None or len(value) >= type_.min_length)
                    and (type_.max_length is None or len(value) <= type_.max_length)
                    and (type_.pattern is None or re.search(type_.pattern, value) is not None))
        case mi.IntType():
            return (isinstance(value, int) and not isinstance(value, bool)
                    and (type_.ge is None or value >= type_.ge)
                    and (type_.le is None or value <= type_.le)
                    and (type_.gt is None or value > type_.gt)
                    and (type_.lt is None or value < type_.lt))
        case mi.LiteralType():
            return value in type_.values
        case mi.UnionType():
            return any(conforms(value, t) for t in type_.types)
        case mi.DictType():
            return (isinstance(value, dict)
                    and (type_.min_length is None or len(value) >= type_.min_length)
                    and (type_.max_length is None or len(value) <= type_.max_length)
                    and all(conforms(k, type_.key_type) and conforms(v, type_.value_type)
                            for k, v in value.items()))
    raise AssertionError(f"a client frame field of a type this check does not know: {type_}")


def reference_view(data: bytes, codec: Codec) -> Any:
    """What an independent decoder reads from `data`, or None when it cannot."""
    try:
        if codec == "json":
            return json.loads(data)
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, RecursionError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError):
        return None


def check_frame(frame: ClientFrame, raw: Any) -> None:
    """A typed frame keeps every declared constraint, holds what was sent, and can go back out
    on either codec (a ping id comes back in a pong, a body in a message)."""
    info = mi.type_info(type(frame))
    assert isinstance(info, mi.StructType)
    for f in info.fields:
        value = getattr(frame, f.name)
        assert conforms(value, f.type), f"{type(frame).__name__}.{f.name} = {value!r}"
        if isinstance(raw, dict) and f.encode_name in raw:
            assert value == raw[f.encode_name]
    if isinstance(raw, dict):
        assert raw["type"] == info.tag
    for codec in CODECS:
        (msgspec.json if codec == "json" else msgspec.msgpack).encode(frame)


def check_refusal(error: ChatError, allowed: set[str]) -> None:
    assert error.code in allowed, f"{error.code}: {error.message}"
    assert error.message
    for codec in CODECS:  # the refusal itself goes out on the session's codec
        encode_server_frame(error.frame(), codec)


def check(data: bytes | str, codec: Codec, value: Any = None, *, known: bool = False) -> None:
    """`known` means `value` is what `data` encodes: a map may be taken or refused as invalid,
    anything else is a bad_frame; arbitrary input may be any of the three."""
    result = outcome(data, codec)
    if isinstance(result, ChatError):
        if not known or spliced(value):
            allowed = {ErrorCode.BAD_FRAME, ErrorCode.INVALID}
        elif isinstance(value, dict):
            allowed = {ErrorCode.INVALID}
        else:
            allowed = {ErrorCode.BAD_FRAME}
        check_refusal(result, allowed)
        return
    assert not known or isinstance(value, dict)
    raw = reference_view(data.encode() if isinstance(data, str) else data, codec)
    check_frame(result, raw)


# --- (a) arbitrary bytes and text ---------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_exception(codec: Codec, data: bytes) -> None:
    check(data, codec)


@FUZZ
@given(text=st.text(alphabet=st.characters(codec=None), max_size=200)
       | st.text(alphabet='{}[]":,0123456789.-eE \\ud800typesqinglc', max_size=60))
def test_arbitrary_text_never_escapes_as_another_exception(text: str) -> None:
    # Text frames are JSON; characters include lone surrogates, which no UTF-8 text frame
    # carries but the decoder must still refuse politely.
    check(text, "json")


# --- (b) arbitrary values -----------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(value=values | maps)
def test_arbitrary_values_are_a_frame_or_refused(codec: Codec, value: Any) -> None:
    check(encode(value, codec), codec, value, known=True)


# --- (c) near-valid frames ----------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
@FUZZ
@given(frame=near_valid_frames())
def test_near_valid_frames_are_a_frame_or_refused(codec: Codec, frame: dict[Any, Any]) -> None:
    check(encode(frame, codec), codec, frame, known=True)


# --- what the fuzzer found, as plain examples ---------------------------------------------

def test_a_msgpack_string_that_is_not_utf8_is_a_bad_frame() -> None:
    # {"type": "ping", "id": <str of the bytes of a UTF-16 surrogate>}: msgspec raised
    # UnicodeDecodeError, which ended the session instead of answering it.
    data = b"\x82\xa4type\xa4ping\xa2id\xa3\xed\xa0\x80"
    error = outcome(data, "msgpack")
    assert isinstance(error, ChatError) and error.code == ErrorCode.BAD_FRAME
    assert "UTF-8" in error.message


@pytest.mark.parametrize("codec", CODECS)
def test_an_invalid_frame_with_a_bad_string_elsewhere_is_still_invalid(codec: Codec) -> None:
    # The typed decoder skips the unknown field and refuses the seq; looking for the `ref`
    # then read the whole map and raised UnicodeDecodeError.
    data = (b'{"type":"read","conversation_id":"c1","seq":-1,"x":"\x80"}' if codec == "json"
            else b"\x84\xa4type\xa4read\xafconversation_id\xa2c1\xa3seq\xff\xa1x\xa1\x80")
    error = outcome(data, codec)
    assert isinstance(error, ChatError) and error.code == ErrorCode.INVALID
    assert "$.seq" in error.message


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("invalid_first", [False, True])
def test_deep_nesting_is_refused_not_a_recursion_error(codec: Codec,
                                                       invalid_first: bool) -> None:
    # 3,000 levels fit in a 6 KiB frame and went past the interpreter's recursion limit,
    # in the typed decoder (nesting first) or in the search for `ref` (an invalid field first).
    depth = 3000
    deep = b"[" * depth + b"]" * depth if codec == "json" else b"\x91" * depth + b"\xc0"
    if codec == "json":
        head = b'{"type":"read","seq":-1,"x":' if invalid_first else b'{"type":"ping","x":'
        data = head + deep + b"}"
    else:
        head = b"\x83\xa4type\xa4read\xa3seq\xff" if invalid_first else b"\x82\xa4type\xa4ping"
        data = head + b"\xa1x" + deep
    error = outcome(data, codec)
    assert isinstance(error, ChatError)
    assert error.code == (ErrorCode.INVALID if invalid_first else ErrorCode.BAD_FRAME)


def test_a_rest_body_nested_too_deeply_is_a_bad_frame() -> None:
    from chatnode.protocol import LoginRequest, decode_body

    with pytest.raises(ChatError) as refused:
        decode_body(b'{"x":' + b"[" * 3000 + b"]" * 3000 + b"}", LoginRequest)
    assert refused.value.code == ErrorCode.BAD_FRAME


def test_a_text_frame_with_a_lone_surrogate_is_a_bad_frame() -> None:
    error = outcome('{"type": "ping", "id": "\ud800"}', "json")
    assert isinstance(error, ChatError) and error.code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("codec", CODECS)
def test_a_ping_id_past_int64_is_invalid(codec: Codec) -> None:
    # Accepted from JSON, its pong could not be encoded on a MessagePack session
    # (OverflowError in the session loop).
    for too_big in (2**63, 10**30):
        data = (b'{"type":"ping","id":%d}' % too_big if codec == "json"
                else msgpack.packb({"type": "ping", "id": min(too_big, 2**64 - 1)}))
        error = outcome(data, codec)
        assert isinstance(error, ChatError) and error.code == ErrorCode.INVALID
        assert "$.id" in error.message
    largest = decode_client_frame(encode({"type": "ping", "id": 2**63 - 1}, codec), codec)
    assert encode_server_frame(Pong(id=largest.id), "msgpack")  # type: ignore[union-attr]
