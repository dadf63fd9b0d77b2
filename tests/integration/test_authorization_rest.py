"""Authorization over REST: every route the node serves has a row here, and every outsider (a
stranger, a removed member, a logged-out token, a disabled account) is refused with the
protocol's error, changes nothing, and learns nothing about what exists.

A removed member is treated as the README says: they "can no longer send, mark or read the
group (`forbidden`)", history before their removal included, and no longer fetch its media.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

from chatnode.client import connect
from chatnode.web.app import build_app

from ..conftest import Node
from .authz_world import Actor, World, ask, assert_nothing_delivered, build_world, snapshot


@dataclass(frozen=True)
class Attempt:
    """One request against a target: path parameters besides the target's own, a body and a
    query."""

    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    query: dict[str, str] | None = None


Attempts = Callable[[World, Actor], list[Attempt]]


def just(attempt: Attempt) -> Attempts:
    return lambda world, actor: [attempt]


PLAIN = just(Attempt())


@dataclass(frozen=True)
class Public:
    """Served to anyone, with a reason."""

    reason: str


@dataclass(frozen=True)
class Own:
    """Acts only on the caller's own account or data: nothing of anyone else's to refuse or
    leak, so only the token is checked. `attempts` are what a dead token tries."""

    reason: str
    attempts: Attempts


@dataclass(frozen=True)
class Directory:
    """Looks a user up: any logged-in user may (to start a chat), so only the token counts."""

    reason: str
    attempts: Attempts


@dataclass(frozen=True)
class OnConversation:
    """Acts on one conversation ({cid}): its members only."""

    attempts: Attempts = PLAIN


@dataclass(frozen=True)
class OnMedia:
    """Reads one upload ({media_id}): its uploader and members of a conversation holding it."""

    attempts: Attempts = PLAIN


@dataclass(frozen=True)
class AdminOnly:
    """The node's admins only (invites, other people's accounts): anyone else is forbidden
    before anything is looked at."""

    attempts: Attempts


Row = Public | Own | Directory | OnConversation | OnMedia | AdminOnly

V1 = "/api/v1"
MATRIX: dict[tuple[str, str], Row] = {
    ("POST", f"{V1}/register"): Public(
        "how an account is made; refused unless registration = open"),
    ("POST", f"{V1}/login"): Public("how a token is had"),
    ("POST", f"{V1}/logout"): Own("revokes the caller's own token", PLAIN),
    ("GET", f"{V1}/me"): Own("the caller's own account", PLAIN),
    ("PATCH", f"{V1}/me"): Own("the caller's own display name and push preview setting",
                               just(Attempt(body={"push_preview": "none"}))),
    ("GET", f"{V1}/push/key"): Public("the node's VAPID public key: a browser needs it to"
                                      " subscribe, and it is public by design (RFC 8292)"),
    ("GET", f"{V1}/devices/me/push"): Own("the calling device's own push target", PLAIN),
    ("PUT", f"{V1}/devices/me/push"): Own(
        "sets the calling device's own push target",
        just(Attempt(body={"kind": "unifiedpush", "endpoint": "https://ntfy.example/x"}))),
    ("DELETE", f"{V1}/devices/me/push"): Own("removes the calling device's own push target",
                                             PLAIN),
    ("GET", f"{V1}/devices"): Own("the caller's own devices", PLAIN),
    ("DELETE", f"{V1}/devices/{{device_id}}"): Own(
        "logs out one of the caller's own devices; another user's is 404 as if it did not"
        " exist (test_devices.py)", just(Attempt({"device_id": "d_0123456789abcdef"}))),
    ("POST", f"{V1}/me/password"): Own(
        "the caller's own password, with the current one",
        just(Attempt(body={"current_password": "correct horse battery",
                           "new_password": "taken over", "log_out_others": True}))),
    ("PUT", f"{V1}/me/avatar"): Own("the caller's own avatar",
                                    just(Attempt(body=b"\x89PNG\r\n\x1a\n not really"))),
    ("DELETE", f"{V1}/me/avatar"): Own("removes the caller's own avatar", PLAIN),
    ("GET", f"{V1}/avatars/{{avatar_id}}"): Directory(
        "avatars are shown wherever names are, to anyone logged in",
        just(Attempt({"avatar_id": "m_0123456789abcdef"}))),
    ("GET", f"{V1}/users/by-id/{{user_id}}"): Directory(
        "names for the ids frames carry", lambda w, a: [Attempt({"user_id": w.alice.user_id})]),
    ("GET", f"{V1}/users/{{username}}"): Directory(
        "find someone to chat with", lambda w, a: [Attempt({"username": w.alice.name})]),
    ("GET", f"{V1}/conversations"): Own("the caller's own conversations", PLAIN),
    ("POST", f"{V1}/conversations"): Own(
        "a conversation the caller starts and is in",
        lambda w, a: [Attempt(body={"kind": "direct", "members": [w.alice.user_id]}),
                      Attempt(body={"kind": "group", "members": [w.bob.user_id]})]),
    ("GET", f"{V1}/conversations/{{cid}}"): OnConversation(),
    ("PATCH", f"{V1}/conversations/{{cid}}"): OnConversation(
        just(Attempt(body={"name": "taken over"}))),
    ("POST", f"{V1}/conversations/{{cid}}/members"): OnConversation(
        lambda w, a: [Attempt(body={"user_id": a.user_id})]),  # let myself in
    ("DELETE", f"{V1}/conversations/{{cid}}/members/{{uid}}"): OnConversation(
        lambda w, a: [Attempt({"uid": w.bob.user_id}),  # throw someone out
                      Attempt({"uid": a.user_id})]),  # leave (again)
    ("PATCH", f"{V1}/conversations/{{cid}}/members/{{uid}}"): OnConversation(
        lambda w, a: [Attempt({"uid": a.user_id}, {"role": "admin"}),
                      Attempt({"uid": w.alice.user_id}, {"role": "member"})]),
    ("GET", f"{V1}/conversations/{{cid}}/messages"): OnConversation(
        lambda w, a: [Attempt(), Attempt(query={"after": "0", "limit": "200"}),
                      Attempt(query={"fold": "true"}), Attempt(query={"around": "1"})]),
    ("POST", f"{V1}/conversations/{{cid}}/messages"): OnConversation(
        lambda w, a: [Attempt(body={"client_msg_id": "intrude", "body": "let me in"}),
                      Attempt(body={"client_msg_id": "react", "kind": "reaction",
                                    "body": "👎", "target": 1}),
                      Attempt(body={"client_msg_id": "reply", "body": "re", "reply_to": 1})]),
    ("GET", f"{V1}/search"): Own(
        "finds only what the caller may read: its conversations, after it joined"
        " (test_search.py pins strangers, removed and late members)",
        just(Attempt(query={"q": "hello"}))),
    ("POST", f"{V1}/invites"): AdminOnly(
        lambda w, a: [Attempt(body={}), Attempt(body={"uses": 1000, "admin": True})]),
    ("GET", f"{V1}/invites"): AdminOnly(PLAIN),
    ("DELETE", f"{V1}/invites/{{invite_id}}"): AdminOnly(
        lambda w, a: [Attempt({"invite_id": "i_0123456789abcdef"})]),
    ("GET", f"{V1}/users"): AdminOnly(PLAIN),
    # Alice's own token reads the snapshot: a reset that got through would log it out.
    ("POST", f"{V1}/users/by-id/{{user_id}}/password"): AdminOnly(
        lambda w, a: [Attempt({"user_id": w.alice.user_id}, {"new_password": "taken over"}),
                      Attempt({"user_id": a.user_id}, {"new_password": "taken over"})]),
    ("PATCH", f"{V1}/users/by-id/{{user_id}}"): AdminOnly(
        lambda w, a: [Attempt({"user_id": a.user_id}, {"role": "admin"}),
                      Attempt({"user_id": w.alice.user_id}, {"disabled": True})]),
    ("POST", f"{V1}/media"): Own("the caller's own upload",
                                 just(Attempt(body=b"\x89PNG not really"))),
    ("GET", f"{V1}/media/{{media_id}}"): OnMedia(),
    ("GET", f"{V1}/schema.json"): Public("the protocol's JSON Schema, for client authors"),
    ("GET", f"{V1}/openapi.json"): Public("the REST API's OpenAPI document, for client authors"),
    ("GET", "/healthz"): Public("for load balancers and supervisors; says only ok or not"),
    ("GET", "/metrics"): Public("Prometheus scrapes it; counts only, no names or ids"
                                " (restrict it at the proxy if that matters)"),
    ("GET", "/"): Public("the browser app's shell: a login form until a token is given"),
    ("GET", "/sw.js"): Public("the app shell's service worker"),
    ("GET", "/static/{path}"): Public("the app's own files, the same for everyone"),
    ("WS", "/ws"): Public("authenticated by its hello: test_authorization_frames.py"),
}


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the node's app serves, read from the app itself."""
    # Only the route table is read: no handler runs, so the app needs none of its services.
    app: Any = build_app(None, None, None, None,  # type: ignore[arg-type]
                         frame_bytes=1, upload_bytes=1, outbox_frames=1, body_timeout_s=1,
                         hello_timeout_s=1)
    while not isinstance(app, Starlette):  # through the middleware (access log and the like)
        app = app.app
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route):
            served.update((method, route.path) for method in route.methods or ()
                          if method != "HEAD")  # Starlette's automatic HEAD for each GET
        elif isinstance(route, Mount):
            served.add(("GET", f"{route.path}/{{path}}"))
        elif isinstance(route, WebSocketRoute):
            served.add(("WS", route.path))
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return served


def rows_of(kind: type) -> list[tuple[str, str]]:
    return [key for key, row in MATRIX.items() if isinstance(row, kind)]


@pytest.fixture(scope="module")
def world(node: Node) -> World:
    return build_world(node)


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.url, timeout=30) as client:
        yield client


def attempts(world: World, actor: Actor, key: tuple[str, str], target: dict[str, str]
             ) -> Iterator[tuple[str, str, Attempt]]:
    """(method, path, attempt) of every attempt of a row against `target` (the path
    parameters naming the conversation or the media)."""
    method, template = key
    row = MATRIX[key]
    assert not isinstance(row, Public)
    for attempt in row.attempts(world, actor):
        yield method, template.format(**target, **attempt.params), attempt


# --- the matrix is the whole API ----------------------------------------------------------------

def test_every_served_route_has_a_row_in_the_authorization_matrix() -> None:
    served = served_routes()
    assert served - MATRIX.keys() == set(), "a route without an authorization row"
    assert MATRIX.keys() - served == set(), "a row for a route the node no longer serves"


# --- a dead token: logged out, or of a disabled account ----------------------------------------

@pytest.mark.parametrize("who", ["logged_out", "disabled"])
async def test_a_dead_token_is_unauthenticated_on_every_route_and_changes_nothing(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    actor: Actor = getattr(world, who)
    real = {"cid": world.group, "media_id": world.group_media}
    unknown = {"cid": world.unknown_conversation, "media_id": world.unknown_media}
    before = await snapshot(http, world)
    async with connect(world.url, world.bob.token) as (watcher, _):
        for key in [k for k, row in MATRIX.items() if not isinstance(row, Public)]:
            for (method, path, attempt), (_, unknown_path, _) in zip(
                    attempts(world, actor, key, real), attempts(world, actor, key, unknown),
                    strict=True):
                answer = await ask(http, actor.token, method, path, attempt.body, attempt.query)
                assert answer.status_code == 401, (key, answer.text)
                assert answer.json()["error"]["code"] == "unauthenticated"
                elsewhere = await ask(http, actor.token, method, unknown_path, attempt.body,
                                      attempt.query)
                assert (elsewhere.status_code, elsewhere.content) == (401, answer.content)
        await assert_nothing_delivered(watcher, about=[actor.user_id])
    assert await snapshot(http, world) == before


# --- someone who is not an admin of the node ---------------------------------------------------

@pytest.mark.parametrize("who", ["bob", "stranger"])
async def test_non_admins_are_forbidden_on_every_admin_route_and_change_nothing(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    actor: Actor = getattr(world, who)
    before = await snapshot(http, world)
    me = (await ask(http, actor.token, "GET", f"{V1}/me")).json()
    for key in rows_of(AdminOnly):
        for method, path, attempt in attempts(world, actor, key, {}):
            answer = await ask(http, actor.token, method, path, attempt.body, attempt.query)
            assert answer.status_code == 403, (key, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"
    assert (await ask(http, actor.token, "GET", f"{V1}/me")).json() == me
    assert me["role"] == "user"
    assert await snapshot(http, world) == before


# --- a stranger and a removed member ------------------------------------------------------------

@pytest.mark.parametrize("who", ["stranger", "removed"])
async def test_outsiders_are_forbidden_on_every_conversation_route_as_if_it_did_not_exist(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    actor: Actor = getattr(world, who)
    before = await snapshot(http, world)
    async with connect(world.url, world.bob.token) as (watcher, _):
        for cid in world.conversations_hidden_from(actor):
            for key in rows_of(OnConversation):
                for (method, path, attempt), (_, unknown_path, _) in zip(
                        attempts(world, actor, key, {"cid": cid}),
                        attempts(world, actor, key, {"cid": world.unknown_conversation}),
                        strict=True):
                    answer = await ask(http, actor.token, method, path, attempt.body,
                                       attempt.query)
                    assert answer.status_code == 403, (key, attempt, answer.text)
                    assert answer.json()["error"]["code"] == "forbidden"
                    nowhere = await ask(http, actor.token, method, unknown_path, attempt.body,
                                        attempt.query)
                    assert (nowhere.status_code, nowhere.content) == (403, answer.content), key
        await assert_nothing_delivered(watcher, about=[actor.user_id])
    assert await snapshot(http, world) == before


@pytest.mark.parametrize("who", ["stranger", "removed"])
async def test_outsiders_get_not_found_for_others_media_as_for_media_that_does_not_exist(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    actor: Actor = getattr(world, who)
    (key,) = rows_of(OnMedia)
    nowhere = await ask(http, actor.token, "GET", key[1].format(media_id=world.unknown_media))
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    for media_id in (world.direct_media, world.group_media):
        answer = await ask(http, actor.token, "GET", key[1].format(media_id=media_id))
        assert (answer.status_code, answer.content) == (404, nowhere.content)
    # The members still get the bytes: the refusal is about who asks.
    member = await ask(http, world.bob.token, "GET", key[1].format(media_id=world.group_media))
    assert member.status_code == 200


@pytest.mark.parametrize("who", ["stranger", "removed"])
async def test_sending_others_media_is_refused_as_for_media_that_does_not_exist(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    """In a conversation the outsider may write to, naming someone else's upload gets the
    answer an unknown media_id gets."""
    actor: Actor = getattr(world, who)
    own = (await ask(http, actor.token, "POST", f"{V1}/conversations",
                     {"kind": "group", "members": []})).json()["conversation_id"]
    path = f"{V1}/conversations/{own}/messages"
    answers = [await ask(http, actor.token, "POST", path, {
        "client_msg_id": f"steal-{media_id}", "kind": "media", "media_id": media_id})
        for media_id in (world.unknown_media, world.direct_media, world.group_media)]
    assert answers[0].status_code == 400 and answers[0].json()["error"]["code"] == "invalid"
    assert {(a.status_code, a.content) for a in answers} == {
        (answers[0].status_code, answers[0].content)}
    log = (await ask(http, actor.token, "GET", f"{path}")).json()["messages"]
    assert log == []


@pytest.mark.parametrize("who", ["stranger", "removed"])
async def test_outsiders_own_views_hold_nothing_of_others_conversations(
        world: World, http: httpx.AsyncClient, who: str) -> None:
    actor: Actor = getattr(world, who)
    listed = (await ask(http, actor.token, "GET", f"{V1}/conversations")).json()
    hidden = set(world.conversations_hidden_from(actor))
    assert hidden and not hidden & {c["conversation_id"] for c in listed["conversations"]}
    me = (await ask(http, actor.token, "GET", f"{V1}/me")).json()
    assert me["user_id"] == actor.user_id
