"""Fuzzing the session loop over real sockets: authenticated sessions on both subprotocols get
sequences of hostile frames (garbage, wrong types, hostile values, other people's and unknown
conversations, wrong and huge seqs, repeated client_msg_ids, the other codec's frames, a second
hello, frames over the size limits). Every answer is a frame of the protocol, every refusal an
`error` with one of its codes (never `internal`), and the session goes on unless the node
documents a close for that input (a frame over the hard limit: 1009, README "Validation").
Afterwards the node is alive, logged no traceback, and two users still chat."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, Session, connect
from chatnode.protocol import AnyServerFrame, Codec, ErrorCode

from ..conftest import Node, User, new_user
from ..fuzz_profile import fuzz_settings
from ..hostile import (
    BOUNDARY_INTS,
    CLIENT_FRAME_TYPES,
    World,
    encode,
    maps,
    mostly,
    near_valid_frames,
    values,
)

CODECS: list[Codec] = ["json", "msgpack"]
FUZZ = fuzz_settings(25)

FRAME_BYTES = 65_536  # the node's default [limits] frame_bytes
HARD_FRAME_BYTES = 16 * FRAME_BYTES  # past this the HTTP server drops the connection
CLOSE_MESSAGE_TOO_BIG = 1009
ERROR_CODES = {v for k, v in vars(ErrorCode).items() if k.isupper()}
# What the node's stderr must never hold: each is how an unhandled failure shows.
BAD_LOG = ("Traceback", "unhandled", "internal error", "write failed", "Error in ASGI")


@dataclass
class FuzzWorld:
    """A node of its own (its stderr captured) and what the fuzzed frames refer to."""

    node: Node
    stderr_path: Path
    fuzzer_token: str
    peer_token: str
    peer_id: str
    direct_id: str  # the fuzzer and the peer
    group_id: str  # the fuzzer, the peer
    foreign_id: str  # two strangers: the fuzzer is not a member
    answers: Counter[str] = field(default_factory=Counter)
    latest_seq: dict[str, int] = field(default_factory=dict)

    def world(self) -> World:
        conversations = [self.direct_id, self.group_id, self.foreign_id, "c_doesnotexist"]
        return World(
            conversation_ids=mostly(st.sampled_from([self.direct_id, self.group_id])
                                    | st.sampled_from(conversations),
                                    st.text(min_size=1, max_size=70)),
            tokens=st.sampled_from([self.fuzzer_token, self.peer_token]) | st.text(max_size=300),
            seqs=mostly(st.integers(0, 6), st.sampled_from(BOUNDARY_INTS)),
            client_msg_ids=mostly(st.sampled_from(("dup-1", "dup-2")) | st.uuids().map(str),
                                  st.text(min_size=1, max_size=130)),
            # Sends and markers are where the rules are: more of them.
            frame_types=("send", "send", "delivered", "read", *CLIENT_FRAME_TYPES))


async def _populate(node: Node) -> dict[str, str]:
    fuzzer, peer = await new_user(node, "fuzzer"), await new_user(node, "peer")
    one, two = await new_user(node, "stranger"), await new_user(node, "stranger")
    direct = (await fuzzer.rest.direct(peer.user_id))["conversation_id"]
    group = (await fuzzer.rest.group("fuzz", [peer.user_id]))["conversation_id"]
    foreign = (await one.rest.direct(two.user_id))["conversation_id"]
    for body in ("one", "two", "three"):  # seqs that exist, to point markers and targets at
        await peer.rest.send(direct, body)
        await one.rest.send(foreign, body)
    for user in (fuzzer, peer, one, two):
        await user.rest.aclose()
    return {"fuzzer_token": fuzzer.token, "peer_token": peer.token, "peer_id": peer.user_id,
            "direct_id": direct, "group_id": group, "foreign_id": foreign}


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorld]:
    root = tmp_path_factory.mktemp("fuzz")
    node = Node(root / "data", log_file=root / "stderr.log").start()
    try:
        yield FuzzWorld(node, root / "stderr.log", **trio.run(_populate, node))
    finally:
        if node.process is not None and node.process.poll() is None:
            node.stop()


# --- what a client sends ------------------------------------------------------------------

def as_message(data: bytes, codec: Codec) -> str | bytes:
    """JSON goes as a text frame when it is UTF-8 (a binary JSON frame otherwise), MessagePack
    as a binary frame."""
    if codec == "json":
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data
    return data


@dataclass(frozen=True)
class Ack:
    """A `delivered` or `read` up to the latest seq the session has seen in a conversation
    (plus `beyond`): the seqs that move markers are only known while the session runs."""

    read: bool
    beyond: int


Step = str | bytes | Ack


@st.composite
def session_steps(draw: st.DrawFn, world: World, codec: Codec) -> Step:
    other: Codec = "msgpack" if codec == "json" else "json"
    kind = draw(st.sampled_from(("plausible",) * 10 + ("frame",) * 10 + ("value",) * 3 + (
        "ack", "ack", "other codec", "other codec", "garbage", "garbage", "too large",
        "hard limit")))
    if kind == "ack":
        return Ack(draw(st.booleans()), draw(st.sampled_from((0, 0, 0, -1, 1))))
    if kind == "plausible":
        frame = draw(near_valid_frames(world, plausible_only=True))
        return as_message(encode(frame, codec), codec)
    if kind == "frame":
        return as_message(encode(draw(near_valid_frames(world)), codec), codec)
    if kind == "value":
        return as_message(encode(draw(values | maps), codec), codec)
    if kind == "other codec":
        return as_message(encode(draw(near_valid_frames(world)), other), other)
    if kind == "garbage":
        return draw(st.binary(max_size=200) | st.text(max_size=200))
    if kind == "too large":
        frame = {"type": "send", "conversation_id": "c", "client_msg_id": "big",
                 "body": "z" * FRAME_BYTES}
        return as_message(encode(frame, codec), codec)
    return b"\x00" * (HARD_FRAME_BYTES + 1)


def size(message: Step) -> int:
    if isinstance(message, Ack):
        return 0
    return len(message.encode() if isinstance(message, str) else message)


# --- what the node answers ----------------------------------------------------------------

def check_answer(fuzz: FuzzWorld, data: str | bytes, codec: Codec) -> dict[str, Any]:
    """A frame the protocol defines, on the session's codec; a refusal has a protocol code.
    The latest seq of each conversation it names is kept for the Ack steps."""
    assert isinstance(data, str if codec == "json" else bytes), "the node answered in the " \
        "other codec"
    raw = json.loads(data) if codec == "json" else msgpack.unpackb(data, raw=False)
    msgspec.convert(raw, AnyServerFrame)  # every field of the right type, no unknown type
    if raw["type"] == "error":
        assert raw["code"] in ERROR_CODES, raw
        assert raw["code"] != ErrorCode.INTERNAL, raw
        fuzz.answers[raw["code"]] += 1
    else:
        fuzz.answers[raw["type"]] += 1
    seq = raw.get("last_seq", raw.get("seq"))
    if isinstance(seq, int) and "conversation_id" in raw:
        latest = fuzz.latest_seq.get(raw["conversation_id"], 0)
        fuzz.latest_seq[raw["conversation_id"]] = max(latest, seq)
    return raw


async def until_answer(fuzz: FuzzWorld, session: Session, wanted: dict[str, Any]) -> None:
    """Read, checking every frame, until one holds all of `wanted`."""
    with trio.fail_after(20):
        while True:
            frame = check_answer(fuzz, await session.ws.get_message(), session.codec)
            if all(frame.get(k) == v for k, v in wanted.items()):
                return


async def play(fuzz: FuzzWorld, codec: Codec, steps: list[Step]) -> None:
    """Send the steps on one session, reconnecting only after a documented close."""
    async with RestClient(fuzz.node.url, fuzz.peer_token) as peer:
        await peer.send(fuzz.direct_id, "news")  # something for the fuzzer's markers to move to
    while steps:
        async with connect(fuzz.node.url, fuzz.fuzzer_token, codec=codec) as (session, frames):
            for frame in frames:
                check_answer(fuzz, msgspec.json.encode(frame).decode() if codec == "json"
                             else msgspec.msgpack.encode(frame), codec)
            while steps:
                message = steps.pop(0)
                if size(message) > HARD_FRAME_BYTES:
                    with pytest.raises(ConnectionClosed) as closed, trio.fail_after(20):
                        await session.ws.send_message(message)
                        while True:
                            check_answer(fuzz, await session.ws.get_message(), codec)
                    assert closed.value.reason.code == CLOSE_MESSAGE_TOO_BIG
                    break
                if isinstance(message, Ack):
                    seq = fuzz.latest_seq.get(fuzz.direct_id, 0) + message.beyond
                    await (session.read if message.read else session.delivered)(
                        fuzz.direct_id, seq)
                else:
                    await session.ws.send_message(message)
                # A ping after each frame: its pong means the node read the frame and answered
                # what it answers at once, and that the session is still open.
                ping_id = f"barrier-{uuid.uuid4()}"
                await session.send({"type": "ping", "id": ping_id})
                await until_answer(fuzz, session, {"type": "pong", "id": ping_id})
            else:
                # Sends commit in arrival order: once this one is `sent`, every earlier
                # send has had its answer.
                last = f"drain-{uuid.uuid4()}"
                await session.send_text(fuzz.direct_id, "drain", last)
                await until_answer(fuzz, session, {"type": "sent", "client_msg_id": last})


def assert_node_healthy(fuzz: FuzzWorld) -> None:
    assert fuzz.node.process is not None and fuzz.node.process.poll() is None, "node died"
    log = fuzz.stderr_path.read_text()
    bad = [line for line in log.splitlines() if any(b.lower() in line.lower() for b in BAD_LOG)]
    assert not bad, log

    async def two_users_chat() -> None:
        async with connect(fuzz.node.url, fuzz.fuzzer_token) as (me, _), \
                connect(fuzz.node.url, fuzz.peer_token, codec="msgpack") as (peer, _):
            client_msg_id = await me.send_text(fuzz.direct_id, "still chatting after the fuzz")
            await me.until(lambda f: f["type"] == "sent" and f["client_msg_id"] == client_msg_id)
            message, _ = await peer.until(lambda f: f["type"] == "message"
                                          and f["client_msg_id"] == client_msg_id)
            assert message["body"] == "still chatting after the fuzz"

    trio.run(two_users_chat)


@pytest.mark.parametrize("codec", CODECS)
def test_fuzzed_frames_get_protocol_answers_and_the_session_goes_on(
        fuzz_world: FuzzWorld, codec: Codec) -> None:
    world = fuzz_world.world()
    fuzz_world.answers.clear()

    @FUZZ
    @given(steps=st.lists(session_steps(world, codec), min_size=1, max_size=8))
    def fuzz_session(steps: list[Step]) -> None:
        trio.run(play, fuzz_world, codec, steps)

    fuzz_session()
    assert_node_healthy(fuzz_world)
    print(f"\n{codec}: answers by type and error code: {dict(fuzz_world.answers)}")


# --- what the fuzzer found, as plain examples ---------------------------------------------

FOUND = [
    # a MessagePack str whose bytes are not UTF-8: UnicodeDecodeError in the decoder
    (b"\x82\xa4type\xa4ping\xa2id\xa3\xed\xa0\x80", "bad_frame"),
    # nesting past the recursion limit, in a 6 KiB frame: RecursionError
    (b"\x82\xa4type\xa4ping\xa1x" + b"\x91" * 3000 + b"\xc0", "bad_frame"),
    ('{"type": "ping", "x": ' + "[" * 3000 + "]" * 3000 + "}", "bad_frame"),
    # an invalid frame with a bad string elsewhere: UnicodeDecodeError looking for its ref
    (b"\x84\xa4type\xa4read\xafconversation_id\xa2c1\xa3seq\xff\xa1x\xa1\x80", "invalid"),
    # a JSON text frame on a MessagePack session whose ping id no MessagePack pong can carry
    ('{"type": "ping", "id": 100000000000000000000000000000}', "invalid"),
]


@pytest.mark.parametrize(("frame", "code"), FOUND)
async def test_frames_that_ended_a_session_are_refused_and_it_goes_on(
        node: Node, alice: User, frame: str | bytes, code: str) -> None:
    async with connect(node.url, alice.token, codec="msgpack") as (session, _):
        await session.ws.send_message(frame)
        error, _ = await session.until_type("error")
        assert error["code"] == code
        await session.send({"type": "ping", "id": "after"})
        pong, _ = await session.until_type("pong")
        assert pong["id"] == "after"
