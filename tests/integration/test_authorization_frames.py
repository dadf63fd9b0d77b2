"""Authorization over the WebSocket: every client frame type has a row here, and every outsider
(a stranger, a removed member, a logged-out token, a disabled account) is refused with the
protocol's error, changes nothing, is sent nothing, and learns nothing about what exists.

The error frame for a conversation the outsider may not see equals the one for a conversation
that does not exist, but for `ref`, which echoes the client's own `client_msg_id` or type.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, get_args

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from chatnode.client import RestClient, Session, connect, ws_url
from chatnode.protocol import AnyClientFrame

from ..conftest import PASSWORD, Node, hello_refused
from .authz_world import Actor, World, ask, assert_nothing_delivered, build_world, snapshot

Frame = dict[str, Any]


@dataclass(frozen=True)
class Authenticates:
    """The frame that carries the token."""

    reason: str


@dataclass(frozen=True)
class NoTarget:
    """Names nothing of anyone's: only the session's own authentication applies."""

    reason: str
    sample: Frame


@dataclass(frozen=True)
class OnConversation:
    """Names one conversation: its members only. `frames` are the variants tried on one."""

    frames: Callable[[World, str], list[Frame]]


def _id(label: str) -> str:
    return f"{label}-{secrets.token_hex(4)}"


def _sends(world: World, cid: str) -> list[Frame]:
    """Every kind of send, each naming things that exist in the real conversations (seq 1, an
    upload sent there): none of it may change the answer."""
    send = {"type": "send", "conversation_id": cid}
    return [
        {**send, "client_msg_id": _id("text"), "body": "let me in"},
        {**send, "client_msg_id": _id("reply"), "body": "re", "reply_to": 1},
        {**send, "client_msg_id": _id("reaction"), "kind": "reaction", "body": "👎",
         "target": 1},
        {**send, "client_msg_id": _id("edit"), "kind": "edit", "body": "mine now", "target": 1},
        {**send, "client_msg_id": _id("delete"), "kind": "delete", "target": 1},
        {**send, "client_msg_id": _id("media"), "kind": "media",
         "media_id": world.group_media},
    ]


def _markers(kind: str) -> Callable[[World, str], list[Frame]]:
    # A seq past the end would be invalid_seq for a member: an outsider must not learn that.
    return lambda world, cid: [{"type": kind, "conversation_id": cid, "seq": seq}
                               for seq in (1, 2**40)]


MATRIX: dict[str, Authenticates | NoTarget | OnConversation] = {
    "hello": Authenticates("a dead token is refused (4001); a sync map naming conversations"
                           " the user is not in is ignored"),
    "send": OnConversation(_sends),
    "delivered": OnConversation(_markers("delivered")),
    "read": OnConversation(_markers("read")),
    "typing": OnConversation(lambda world, cid: [{"type": "typing", "conversation_id": cid}]),
    "ping": NoTarget("keep-alive, answered to whoever holds a session", {"type": "ping"}),
}


def client_frame_types() -> set[str]:
    return {frame.__struct_config__.tag for frame in get_args(AnyClientFrame)}


def rows_of(kind: type) -> list[str]:
    return [tag for tag, row in MATRIX.items() if isinstance(row, kind)]


def ref_of(frame: Frame) -> str:
    return frame.get("client_msg_id", frame["type"])


@pytest.fixture(scope="module")
def world(node: Node) -> World:
    return build_world(node)


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.url, timeout=30) as client:
        yield client


def concerning(frames: list[Frame], conversations: list[str]) -> list[Frame]:
    return [f for f in frames if f.get("conversation_id") in conversations]


async def refusal(session: Session, frame: Frame) -> Frame:
    """Send `frame` and return the error it gets; nothing else may come before it."""
    await session.send(frame)
    error, before = await session.until_type("error")
    assert [f for f in before if f["type"] != "presence"] == []
    return error


# --- the matrix is the whole protocol ---------------------------------------------------------

def test_every_client_frame_type_has_a_row_in_the_authorization_matrix() -> None:
    types = client_frame_types()
    assert types - MATRIX.keys() == set(), "a client frame without an authorization row"
    assert MATRIX.keys() - types == set(), "a row for a frame the protocol no longer has"


# --- a dead token: logged out, or of a disabled account ----------------------------------------

@pytest.mark.parametrize("who", ["logged_out", "disabled"])
async def test_a_dead_tokens_hello_is_refused_like_a_token_that_never_was(
        world: World, who: str) -> None:
    actor: Actor = getattr(world, who)
    never = await hello_refused(world.url, secrets.token_urlsafe(32))
    assert never[0]["code"] == "unauthenticated" and never[1] == 4001
    assert await hello_refused(world.url, actor.token) == never


async def test_no_frame_before_hello_is_acted_on(world: World, http: httpx.AsyncClient) -> None:
    """Whatever comes first instead of hello is refused (unauthenticated, 4001) and ignored,
    even when it names a real conversation."""
    samples = [row.sample for row in MATRIX.values() if isinstance(row, NoTarget)]
    for tag in rows_of(OnConversation):
        samples += MATRIX[tag].frames(world, world.group)  # type: ignore[union-attr]
    assert {f["type"] for f in samples} == client_frame_types() - {"hello"}
    before = await snapshot(http, world)
    async with connect(world.url, world.bob.token) as (watcher, _):
        for frame in samples:
            async with open_websocket_url(ws_url(world.url)) as ws:
                await ws.send_message(json.dumps(frame))
                error = json.loads(await ws.get_message())
                assert (error["type"], error["code"]) == ("error", "unauthenticated"), frame
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 4001
        await assert_nothing_delivered(watcher, about=[])
    assert await snapshot(http, world) == before


async def test_a_session_logged_out_elsewhere_is_closed_with_4001_and_stays_out(
        world: World) -> None:
    async with RestClient(world.url) as device:
        await device.login(world.bob.name, PASSWORD, "to be logged out")
        assert device.token is not None
        async with connect(world.url, device.token) as (session, _):
            async with RestClient(world.url, device.token) as elsewhere:
                await elsewhere.request("POST", "/api/v1/logout")
            with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                while True:
                    await session.ws.get_message()
            assert closed.value.reason.code == 4001
        frame, code = await hello_refused(world.url, device.token)
        assert (frame["code"], code) == ("unauthenticated", 4001)


# --- a stranger and a removed member ------------------------------------------------------------

@pytest.mark.parametrize("who", ["stranger", "removed"])
async def test_outsiders_frames_are_refused_as_for_a_conversation_that_does_not_exist(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    actor: Actor = getattr(world, who)
    hidden = world.conversations_hidden_from(actor)
    before = await snapshot(http, world)
    async with connect(world.url, world.bob.token) as (watcher, _), \
            connect(world.url, actor.token) as (session, _):
        for cid in hidden:
            for tag in rows_of(OnConversation):
                row = MATRIX[tag]
                assert isinstance(row, OnConversation)
                for real, unknown in zip(row.frames(world, cid),
                                         row.frames(world, world.unknown_conversation),
                                         strict=True):
                    error = await refusal(session, real)
                    nowhere = await refusal(session, unknown)
                    assert (error["code"], error["ref"]) == ("forbidden", ref_of(real)), real
                    assert nowhere["ref"] == ref_of(unknown)
                    assert {**error, "ref": None} == {**nowhere, "ref": None}, real
        await assert_nothing_delivered(watcher, about=[actor.user_id])
        await assert_nothing_delivered(session, about=[])
    assert await snapshot(http, world) == before


@pytest.mark.parametrize("who", ["stranger", "removed"])
async def test_a_hello_syncing_others_conversations_catches_up_on_nothing_of_them(
        world: World, who: str) -> None:
    actor: Actor = getattr(world, who)
    hidden = world.conversations_hidden_from(actor)
    async with connect(world.url, actor.token) as (_, plain):
        pass
    sync = {cid: 0 for cid in [*hidden, world.unknown_conversation]}
    async with connect(world.url, actor.token, sync=sync) as (_, frames):
        assert concerning(frames, [*hidden, world.unknown_conversation]) == []
        assert frames[-1] == plain[-1]  # synced: the same counts as without the sync map


async def test_outsiders_live_sessions_get_nothing_of_what_happens_in_others_conversations(
        world: World, http: httpx.AsyncClient) -> None:
    """After her removal the removed member is told nothing more of the group: no message,
    rename, marker or typing; the stranger is told nothing of either conversation."""
    async with connect(world.url, world.alice.token) as (alice, _), \
            connect(world.url, world.bob.token) as (bob, _), \
            connect(world.url, world.removed.token) as (removed, _), \
            connect(world.url, world.stranger.token) as (stranger, _):
        for cid in (world.direct, world.group):
            sent = (await ask(http, world.alice.token, "POST",
                              f"/api/v1/conversations/{cid}/messages",
                              {"client_msg_id": _id("news"), "body": "news"})).json()
            message, _ = await bob.until_type("message")  # published: outsiders' turn was now
            assert message["seq"] == sent["seq"]
            await bob.read(cid, sent["seq"])  # the reader's own sessions hear of it
            await bob.until(lambda f: f["type"] == "status_update"
                            and f["conversation_id"] == cid)  # noqa: B023
            await bob.send({"type": "typing", "conversation_id": cid})
            await alice.until(lambda f: f["type"] == "typing"
                              and f["conversation_id"] == cid)  # noqa: B023
        renamed = await ask(http, world.alice.token, "PATCH",
                            f"/api/v1/conversations/{world.group}", {"name": "club, renamed"})
        assert renamed.status_code == 200
        await bob.until(lambda f: f["type"] == "conversation" and f["name"] == "club, renamed")
        await assert_nothing_delivered(removed, about=[])
        await assert_nothing_delivered(stranger, about=[])
