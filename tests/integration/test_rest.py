"""Every REST route of PROTOCOL.md that exists, against a real node: answers and error bodies."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, User, hello_refused, new_device, new_user, of_type


def assert_error(status: int, body: Any, want_status: int, want_code: str,
                 names: str | None = None) -> None:
    """The protocol's error body, exactly: {"error": {"code", "message"}} and the status."""
    assert status == want_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == want_code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if names is not None:
        assert names in body["error"]["message"], body


async def raw(node: Node, method: str, path: str, content: bytes | None = None,
              token: str | None = None, headers: dict[str, str] | None = None
              ) -> httpx.Response:
    """A request with a body sent as given (not JSON-encoded by the client)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        return await http.request(method, path, content=content, headers=all_headers)


def messages_path(cid: str) -> str:
    return f"/api/v1/conversations/{cid}/messages"


async def direct(a: User, b: User) -> str:
    return (await a.rest.direct(b.user_id))["conversation_id"]


# --- register, login, logout, me, users -------------------------------------------------------

async def test_register_answers_201_with_a_working_token(node: Node) -> None:
    name = f"Reg{uuid.uuid4().hex[:8]}"
    async with RestClient(node.url) as rest:
        status, auth = await rest.call("POST", "/api/v1/register", {
            "username": name, "password": PASSWORD, "display_name": "Reggie R"})
        assert status == 201
        assert set(auth) == {"user_id", "token", "device_id"}
        assert all(isinstance(v, str) and v for v in auth.values())
        rest.token = auth["token"]
        assert await rest.request("GET", "/api/v1/me") == {
            "user_id": auth["user_id"], "username": name.lower(), "display_name": "Reggie R",
            "push_preview": "full", "role": "user"}


async def test_display_name_defaults_to_the_username(node: Node, alice: User) -> None:
    me = await alice.rest.request("GET", "/api/v1/me")
    assert me == {"user_id": alice.user_id, "username": alice.username,
                  "display_name": alice.username, "push_preview": "full", "role": "user"}


async def test_registration_is_closed_unless_configured_open(own_node: Node) -> None:
    own_node.env.pop("CHATNODE_REGISTRATION")
    node = own_node.start()
    async with RestClient(node.url) as rest:
        status, body = await rest.call("POST", "/api/v1/register",
                                       {"username": "someone", "password": PASSWORD})
        assert_error(status, body, 403, "registration_closed")
        # nothing was created: logging in as that user fails like any unknown user
        status, body = await rest.call("POST", "/api/v1/login",
                                       {"username": "someone", "password": PASSWORD})
        assert_error(status, body, 401, "unauthenticated")


async def test_explicitly_closed_registration_is_refused(own_node: Node) -> None:
    own_node.env["CHATNODE_REGISTRATION"] = "closed"
    node = own_node.start()
    async with RestClient(node.url) as rest:
        status, body = await rest.call("POST", "/api/v1/register",
                                       {"username": "someone", "password": PASSWORD})
    assert_error(status, body, 403, "registration_closed")


async def test_a_taken_username_is_a_conflict_whatever_its_case(node: Node,
                                                               alice: User) -> None:
    async with RestClient(node.url) as rest:
        for name in (alice.username, alice.username.upper()):
            status, body = await rest.call("POST", "/api/v1/register",
                                           {"username": name, "password": PASSWORD})
            assert_error(status, body, 409, "conflict")
    # the original account is untouched
    assert (await alice.rest.request("GET", "/api/v1/me"))["user_id"] == alice.user_id


async def test_every_login_is_a_new_device_with_its_own_token(node: Node, alice: User) -> None:
    async with RestClient(node.url) as one, RestClient(node.url) as two:
        first = await one.login(alice.username, PASSWORD, "phone")
        second = await two.login(alice.username.upper(), PASSWORD)
        assert first["user_id"] == second["user_id"] == alice.user_id
        assert len({first["device_id"], second["device_id"], alice.device_id}) == 3
        assert len({first["token"], second["token"], alice.token}) == 3
        for rest in (one, two):
            assert (await rest.request("GET", "/api/v1/me"))["user_id"] == alice.user_id
        async with connect(node.url, second["token"]) as (_, frames):
            assert frames[0]["device_id"] == second["device_id"]


async def test_wrong_password_and_unknown_user_get_the_same_401(node: Node,
                                                               alice: User) -> None:
    async with RestClient(node.url) as rest:
        status, wrong = await rest.call("POST", "/api/v1/login", {
            "username": alice.username, "password": "not the password"})
        assert_error(status, wrong, 401, "unauthenticated")
        status, unknown = await rest.call("POST", "/api/v1/login", {
            "username": f"nobody{uuid.uuid4().hex[:8]}", "password": "not the password"})
        assert_error(status, unknown, 401, "unauthenticated")
    assert wrong == unknown  # the answer does not tell whether the account exists


async def test_logout_revokes_only_that_token(node: Node, alice: User) -> None:
    other = await new_device(node, alice)
    status, body = await other.rest.call("POST", "/api/v1/logout")
    assert status == 200 and body == {}
    status, body = await other.rest.call("GET", "/api/v1/me")
    assert_error(status, body, 401, "unauthenticated")
    status, body = await other.rest.call("POST", "/api/v1/logout")  # twice: still revoked
    assert_error(status, body, 401, "unauthenticated")
    # the user's other device goes on working
    assert (await alice.rest.request("GET", "/api/v1/me"))["user_id"] == alice.user_id
    await other.rest.aclose()


async def test_a_logged_out_token_gets_unauthenticated_and_4001_on_hello(node: Node,
                                                                       alice: User) -> None:
    other = await new_device(node, alice)
    await other.rest.request("POST", "/api/v1/logout")
    frame, code = await hello_refused(node.url, other.token)
    assert frame["type"] == "error" and frame["code"] == "unauthenticated"
    assert code == 4001
    await other.rest.aclose()


async def test_logout_closes_that_devices_sessions_with_4001_and_no_other(
        node: Node, alice: User) -> None:
    other = await new_device(node, alice)
    async with connect(node.url, other.token) as (gone, _), \
            connect(node.url, alice.token) as (stays, _):
        await other.rest.request("POST", "/api/v1/logout")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await gone.recv(timeout=10)
        assert closed.value.reason.code == 4001
        await stays.send({"type": "ping", "id": "still-here"})
        pong, _ = await stays.until_type("pong")
        assert pong["id"] == "still-here"
    await other.rest.aclose()


async def test_a_bad_token_gets_unauthenticated_and_4001_on_hello(node: Node) -> None:
    frame, code = await hello_refused(node.url, "not-a-token")
    assert (frame["type"], frame["code"], code) == ("error", "unauthenticated", 4001)


PROTECTED = [
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/users/anyone"),
    ("GET", "/api/v1/conversations"),
    ("POST", "/api/v1/conversations"),
    ("GET", "/api/v1/conversations/c_0000000000000000"),
    ("GET", "/api/v1/conversations/c_0000000000000000/messages"),
    ("POST", "/api/v1/conversations/c_0000000000000000/messages"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Bearer", "Basic abc"])
async def test_protected_routes_refuse_a_missing_or_bad_token(
        node: Node, method: str, path: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    content = b'{"kind": "direct", "members": ["u_x"], "client_msg_id": "x", "body": "hi"}'
    response = await raw(node, method, path, content if method == "POST" else None,
                         headers=headers)
    assert_error(response.status_code, response.json(), 401, "unauthenticated")


async def test_user_lookup_by_name_ignores_case(node: Node, alice: User, bob: User) -> None:
    expected = {"user_id": bob.user_id, "username": bob.username, "display_name": bob.username}
    assert await alice.rest.user(bob.username) == expected
    assert await alice.rest.user(bob.username.upper()) == expected


async def test_an_unknown_user_is_not_found(node: Node, alice: User) -> None:
    status, body = await alice.rest.call("GET", f"/api/v1/users/nobody{uuid.uuid4().hex[:8]}")
    assert_error(status, body, 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/no/such/route"),
    ("GET", "/nowhere"),
    ("POST", "/api/v2/login"),
])
async def test_an_unknown_route_is_not_found(node: Node, alice: User, method: str,
                                             path: str) -> None:
    response = await raw(node, method, path, b"{}" if method == "POST" else None,
                         token=alice.token)
    assert_error(response.status_code, response.json(), 404, "not_found")


# --- bodies: invalid, bad_frame, too_large ----------------------------------------------------

INVALID_BODIES = [
    ("/api/v1/register", {"password": PASSWORD}, "username"),
    ("/api/v1/register", {"username": "has space", "password": PASSWORD}, "username"),
    ("/api/v1/register", {"username": "x" * 33, "password": PASSWORD}, "username"),
    ("/api/v1/register", {"username": "shortpw", "password": "short"}, "password"),
    ("/api/v1/register", {"username": "typed", "password": PASSWORD, "display_name": 7},
     "display_name"),
    ("/api/v1/login", {"username": "someone"}, "password"),
    ("/api/v1/login", {"username": 12, "password": PASSWORD}, "username"),
    ("/api/v1/conversations", {"members": []}, "kind"),
    ("/api/v1/conversations", {"kind": "triple", "members": []}, "kind"),
    ("/api/v1/conversations", {"kind": "group", "members": "u_1"}, "members"),
    ("/api/v1/conversations", {"kind": "group", "members": [], "name": ""}, "name"),
    ("MESSAGES", {"body": "no id"}, "client_msg_id"),
    ("MESSAGES", {"client_msg_id": "", "body": "empty id"}, "client_msg_id"),
    ("MESSAGES", {"client_msg_id": "x", "body": 42}, "body"),
    ("MESSAGES", {"client_msg_id": "x", "body": "hi", "kind": "bogus"}, "kind"),
    ("MESSAGES", {"client_msg_id": "x", "body": "hi", "reply_to": -1}, "reply_to"),
]


@pytest.mark.parametrize(("path", "body", "field"), INVALID_BODIES)
async def test_an_invalid_body_is_400_invalid_naming_the_field(
        node: Node, alice: User, bob: User, path: str, body: dict[str, Any],
        field: str) -> None:
    if path == "MESSAGES":
        path = messages_path(await direct(alice, bob))
    status, answer = await alice.rest.call("POST", path, body)
    assert_error(status, answer, 400, "invalid", names=field)


async def test_a_refused_send_stores_nothing(node: Node, alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    refused = [
        ({"client_msg_id": "blank", "body": "   "}, "body"),
        ({"client_msg_id": "edit", "body": "x", "kind": "edit"}, "target"),
        ({"client_msg_id": "reply", "body": "x", "reply_to": 1}, "reply_to"),
    ]
    for body, field in refused:
        status, answer = await alice.rest.call("POST", messages_path(cid), body)
        assert_error(status, answer, 400, "invalid", names=field)
    assert (await bob.rest.history(cid))["messages"] == []
    # the refused client_msg_ids are still free: a good send with one of them is new (201)
    status, sent = await alice.rest.call("POST", messages_path(cid),
                                         {"client_msg_id": "reply", "body": "fine"})
    assert status == 201 and sent["seq"] == 1


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b'{"username": "a",',
                                     b"[1, 2]", b'"a string"', b"null"])
@pytest.mark.parametrize("path", ["/api/v1/register", "/api/v1/login", "/api/v1/conversations",
                                  "MESSAGES"])
async def test_a_body_that_is_not_a_json_object_is_bad_frame(
        node: Node, alice: User, bob: User, path: str, content: bytes) -> None:
    if path == "MESSAGES":
        path = messages_path(await direct(alice, bob))
    response = await raw(node, "POST", path, content, token=alice.token)
    assert_error(response.status_code, response.json(), 400, "bad_frame")


@pytest.mark.parametrize("path", ["/api/v1/register", "/api/v1/login", "/api/v1/conversations",
                                  "MESSAGES"])
async def test_a_body_over_64_kib_is_too_large(node: Node, alice: User, bob: User,
                                               path: str) -> None:
    cid = await direct(alice, bob)
    if path == "MESSAGES":
        path = messages_path(cid)
    # valid JSON, just too big: the size is refused before anything is decoded
    content = json.dumps({"client_msg_id": "big", "body": "x" * (64 * 1024),
                          "username": "big", "password": PASSWORD}).encode()
    assert len(content) > 64 * 1024
    response = await raw(node, "POST", path, content, token=alice.token)
    assert_error(response.status_code, response.json(), 413, "too_large")
    assert (await bob.rest.history(cid))["messages"] == []


async def test_a_body_of_exactly_64_kib_is_not_too_large(node: Node, alice: User,
                                                         bob: User) -> None:
    cid = await direct(alice, bob)
    prefix = b'{"client_msg_id": "edge", "body": "hi", "pad": "'
    content = prefix + b"x" * (64 * 1024 - len(prefix) - 2) + b'"}'
    assert len(content) == 64 * 1024
    response = await raw(node, "POST", messages_path(cid), content, token=alice.token)
    assert response.status_code == 201, response.text


async def test_a_message_body_over_10000_characters_is_too_large(node: Node, alice: User,
                                                                 bob: User) -> None:
    cid = await direct(alice, bob)
    status, body = await alice.rest.call("POST", messages_path(cid),
                                         {"client_msg_id": "long", "body": "x" * 10_001})
    assert_error(status, body, 413, "too_large")
    assert (await bob.rest.history(cid))["messages"] == []


async def test_a_message_body_of_10000_characters_is_accepted(node: Node, alice: User,
                                                              bob: User) -> None:
    cid = await direct(alice, bob)
    # characters, not bytes: 10,000 two-byte characters are 20,000 bytes of UTF-8
    for client_msg_id, text in [("ascii", "x" * 10_000), ("accents", "é" * 10_000)]:
        status, sent = await alice.rest.call("POST", messages_path(cid),
                                             {"client_msg_id": client_msg_id, "body": text})
        assert status == 201, sent
    bodies = [m["body"] for m in (await bob.rest.history(cid))["messages"]]
    assert bodies == ["x" * 10_000, "é" * 10_000]


# --- conversations ----------------------------------------------------------------------------

async def test_a_direct_conversation_is_one_per_pair_in_either_direction(
        node: Node, alice: User, bob: User) -> None:
    body = {"kind": "direct", "members": [bob.user_id]}
    status, first = await alice.rest.call("POST", "/api/v1/conversations", body)
    assert status == 201
    assert first["kind"] == "direct" and first["name"] is None
    assert (first["last_seq"], first["unread"], first["last_message"]) == (0, 0, None)
    assert sorted((m["user_id"], m["role"]) for m in first["members"]) == sorted(
        [(alice.user_id, "member"), (bob.user_id, "member")])
    status, again = await alice.rest.call("POST", "/api/v1/conversations", body)
    assert status == 200 and again["conversation_id"] == first["conversation_id"]
    status, reverse = await bob.rest.call("POST", "/api/v1/conversations",
                                          {"kind": "direct", "members": [alice.user_id]})
    assert status == 200 and reverse["conversation_id"] == first["conversation_id"]
    assert [c["conversation_id"] for c in await alice.rest.conversations()] == [
        first["conversation_id"]]


@pytest.mark.parametrize("members", [[], ["SELF"], ["BOB", "CAROL"]])
async def test_a_direct_conversation_needs_exactly_one_other_member(
        node: Node, alice: User, bob: User, members: list[str]) -> None:
    carol = await new_user(node, "carol")
    ids = {"SELF": alice.user_id, "BOB": bob.user_id, "CAROL": carol.user_id}
    status, body = await alice.rest.call("POST", "/api/v1/conversations", {
        "kind": "direct", "members": [ids[m] for m in members]})
    assert_error(status, body, 400, "invalid", names="members")
    assert await alice.rest.conversations() == []
    await carol.rest.aclose()


async def test_a_conversation_with_an_unknown_user_is_not_found(node: Node, alice: User,
                                                                bob: User) -> None:
    for kind in ("direct", "group"):
        members = ["u_doesnotexist"] if kind == "direct" else [bob.user_id, "u_doesnotexist"]
        status, body = await alice.rest.call("POST", "/api/v1/conversations",
                                             {"kind": kind, "members": members, "name": "g"})
        assert_error(status, body, 404, "not_found", names="u_doesnotexist")
    assert await alice.rest.conversations() == []
    assert await bob.rest.conversations() == []


async def test_the_group_creator_is_its_admin(node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    status, group = await alice.rest.call("POST", "/api/v1/conversations", {
        "kind": "group", "name": "Book club",
        # the creator listed too, and a member twice: each is a member once
        "members": [bob.user_id, carol.user_id, alice.user_id, bob.user_id]})
    assert status == 201
    assert group["kind"] == "group" and group["name"] == "Book club"
    roles = {m["user_id"]: m["role"] for m in group["members"]}
    assert roles == {alice.user_id: "admin", bob.user_id: "member", carol.user_id: "member"}
    assert len(group["members"]) == 3
    # a second group with the same people is a new conversation, unlike a direct one
    status, second = await alice.rest.call("POST", "/api/v1/conversations", {
        "kind": "group", "name": "Book club", "members": [bob.user_id, carol.user_id]})
    assert status == 201 and second["conversation_id"] != group["conversation_id"]
    seen_by_carol = await carol.rest.request(
        "GET", f"/api/v1/conversations/{group['conversation_id']}")
    assert {m["user_id"]: m["role"] for m in seen_by_carol["members"]} == roles
    await carol.rest.aclose()


async def test_get_conversation_answers_as_the_list_does(node: Node, alice: User,
                                                         bob: User) -> None:
    cid = await direct(alice, bob)
    await alice.rest.send(cid, "one")
    (listed,) = await bob.rest.conversations()
    got = await bob.rest.request("GET", f"/api/v1/conversations/{cid}")
    assert got == listed
    assert set(got) == {"conversation_id", "kind", "name", "members", "last_seq",
                        "last_delivered_seq", "last_read_seq", "my_read_seq", "unread",
                        "last_message"}


async def test_the_list_shows_unread_markers_and_last_message(node: Node, alice: User,
                                                              bob: User) -> None:
    cid = await direct(alice, bob)
    for i in range(1, 5):
        await alice.rest.send(cid, f"m{i}")
    async with connect(node.url, bob.token) as (b, _):
        await b.delivered(cid, 3)
        await b.read(cid, 2)
        await b.until(lambda f: f["type"] == "status_update" and f["my_read_seq"] == 2)
    # alice wrote everything: none of it is unread for her, and she sees bob's markers
    (mine,) = await alice.rest.conversations()
    assert (mine["last_seq"], mine["last_delivered_seq"], mine["last_read_seq"]) == (4, 3, 2)
    assert (mine["my_read_seq"], mine["unread"]) == (4, 0)
    last = mine["last_message"]
    assert (last["type"], last["seq"], last["body"], last["sender_id"]) == (
        "message", 4, "m4", alice.user_id)
    # bob read two of four; he sees alice's markers at the end of what she wrote
    (theirs,) = await bob.rest.conversations()
    assert (theirs["my_read_seq"], theirs["unread"]) == (2, 2)
    assert (theirs["last_delivered_seq"], theirs["last_read_seq"]) == (4, 4)
    assert theirs["last_message"] == last


async def test_the_list_is_in_order_of_latest_activity(node: Node, alice: User,
                                                       bob: User) -> None:
    carol = await new_user(node, "carol")
    with_bob = await direct(alice, bob)
    await trio.sleep(0.01)  # activity is in milliseconds: keep the three apart
    with_carol = await direct(alice, carol)
    await trio.sleep(0.01)
    group = (await alice.rest.group("g", [bob.user_id, carol.user_id]))["conversation_id"]
    order = [c["conversation_id"] for c in await alice.rest.conversations()]
    assert order == [group, with_carol, with_bob]
    await trio.sleep(0.01)
    await bob.rest.send(with_bob, "news")
    order = [c["conversation_id"] for c in await alice.rest.conversations()]
    assert order == [with_bob, group, with_carol]
    await carol.rest.aclose()


async def test_group_markers_are_the_minimum_over_the_others(node: Node, alice: User,
                                                             bob: User) -> None:
    carol = await new_user(node, "carol")
    cid = (await alice.rest.group("g", [bob.user_id, carol.user_id]))["conversation_id"]
    for i in range(3):
        await alice.rest.send(cid, f"m{i}")
    async with connect(node.url, bob.token) as (b, _):
        await b.read(cid, 3)
        await b.until_type("status_update")
    (seen_by_alice,) = await alice.rest.conversations()
    assert (seen_by_alice["last_delivered_seq"], seen_by_alice["last_read_seq"]) == (0, 0)
    (seen_by_bob,) = await bob.rest.conversations()
    assert (seen_by_bob["last_read_seq"], seen_by_bob["my_read_seq"]) == (0, 3)
    assert seen_by_bob["unread"] == 0
    (seen_by_carol,) = await carol.rest.conversations()
    assert (seen_by_carol["last_read_seq"], seen_by_carol["unread"]) == (3, 3)
    await carol.rest.aclose()


# --- strangers --------------------------------------------------------------------------------

async def test_a_stranger_is_forbidden_and_learns_nothing(node: Node, alice: User,
                                                          bob: User) -> None:
    stranger = await new_user(node, "stranger")
    cid = await direct(alice, bob)
    await alice.rest.send(cid, "private")

    async def answers(target: str) -> list[tuple[int, Any]]:
        return [
            await stranger.rest.call("GET", f"/api/v1/conversations/{target}"),
            await stranger.rest.call("GET", messages_path(target)),
            await stranger.rest.call("GET", messages_path(target), params={"limit": 500}),
            await stranger.rest.call("POST", messages_path(target),
                                     {"client_msg_id": "intrude", "body": "let me in"}),
        ]

    existing = await answers(cid)
    for status, body in existing:
        assert_error(status, body, 403, "forbidden")
    assert existing == await answers("c_doesnotexist")
    assert [m["body"] for m in (await bob.rest.history(cid))["messages"]] == ["private"]
    assert await stranger.rest.conversations() == []
    await stranger.rest.aclose()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/api/v1/conversations/{cid}", {"name": "mine now"}),
    ("POST", "/api/v1/conversations/{cid}/members", {"user_id": "{me}"}),
    ("PATCH", "/api/v1/conversations/{cid}/members/{me}", {"role": "admin"}),
    ("DELETE", "/api/v1/conversations/{cid}/members/{me}", None),
])
async def test_group_changes_to_a_conversation_that_does_not_exist_are_forbidden(
        node: Node, alice: User, method: str, path: str, body: dict[str, str] | None) -> None:
    """As for any stranger (these were a 500: the engine was asked before anyone checked)."""
    def fill(text: str) -> str:
        return text.format(cid="c_doesnotexist", me=alice.user_id)

    status, answer = await alice.rest.call(
        method, fill(path), {k: fill(v) for k, v in body.items()} if body else None)
    assert_error(status, answer, 403, "forbidden")
    assert await alice.rest.conversations() == []


async def test_a_method_a_route_lacks_is_405_with_every_method_it_has_in_allow(
        node: Node, alice: User) -> None:
    """The path has a GET and a POST route: Allow names both (it lacked the header, and
    Starlette's own would name only the first route's methods)."""
    response = await raw(node, "DELETE", "/api/v1/conversations", token=alice.token)
    assert_error(response.status_code, response.json(), 405, "invalid")
    assert response.headers["allow"] == "GET, HEAD, POST"


# --- history ----------------------------------------------------------------------------------

async def test_history_pages_ascending_with_has_more(node: Node, alice: User,
                                                     bob: User) -> None:
    cid = await direct(alice, bob)
    for i in range(1, 8):
        await alice.rest.send(cid, f"m{i}")

    async def page(**params: int) -> tuple[list[int], bool]:
        answer = await bob.rest.history(cid, **params)
        assert set(answer) == {"messages", "has_more"}
        return [m["seq"] for m in answer["messages"]], answer["has_more"]

    assert await page() == ([1, 2, 3, 4, 5, 6, 7], False)
    assert await page(limit=3) == ([5, 6, 7], True)
    assert await page(before=5, limit=3) == ([2, 3, 4], True)
    assert await page(before=3, limit=3) == ([1, 2], False)
    assert await page(after=2, limit=3) == ([3, 4, 5], True)
    assert await page(after=5, limit=3) == ([6, 7], False)
    assert await page(after=1, before=5) == ([2, 3, 4], False)
    assert await page(after=7) == ([], False)
    assert await page(before=1) == ([], False)
    assert await page(limit=200) == ([1, 2, 3, 4, 5, 6, 7], False)


async def test_history_walks_back_to_the_start_without_gaps(node: Node, alice: User,
                                                            bob: User) -> None:
    cid = await direct(alice, bob)
    for i in range(1, 13):
        sender = alice if i % 3 else bob
        await sender.rest.send(cid, f"m{i}", client_msg_id=f"walk-{i}")
    seen: list[dict[str, Any]] = []
    params: dict[str, int] = {"limit": 5}
    while True:
        answer = await alice.rest.history(cid, **params)
        seen = answer["messages"] + seen
        if not answer["has_more"]:
            break
        params = {"limit": 5, "before": answer["messages"][0]["seq"]}
    assert [m["seq"] for m in seen] == list(range(1, 13))
    assert [m["body"] for m in seen] == [f"m{i}" for i in range(1, 13)]
    first = seen[0]
    assert first["type"] == "message" and first["conversation_id"] == cid
    assert (first["sender_id"], first["client_msg_id"], first["kind"]) == (
        alice.user_id, "walk-1", "text")
    assert seen[2]["sender_id"] == bob.user_id
    assert all(isinstance(m["ts"], int) for m in seen)
    assert [m["ts"] for m in seen] == sorted(m["ts"] for m in seen)


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 201}, "limit"),
    ({"limit": 0}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"before": -1}, "before"),
    ({"after": "x"}, "after"),
    # past the protocol's largest seq; past 2**63 these were a 500 (SQLite's integer overflow)
    ({"before": 2**53 + 1}, "before"),
    ({"after": 10**20}, "after"),
    ({"before": 10**20}, "before"),
])
async def test_history_refuses_bad_paging_naming_the_parameter(
        node: Node, alice: User, bob: User, params: dict[str, Any], field: str) -> None:
    cid = await direct(alice, bob)
    status, body = await bob.rest.call("GET", messages_path(cid), params=params)
    assert_error(status, body, 400, "invalid", names=field)


# --- send -------------------------------------------------------------------------------------

async def test_rest_send_answers_201_as_sent(node: Node, alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    status, sent = await alice.rest.call("POST", messages_path(cid),
                                         {"client_msg_id": "cm-1", "body": "hello"})
    assert status == 201
    assert sent == {"type": "sent", "conversation_id": cid, "client_msg_id": "cm-1",
                    "seq": 1, "ts": sent["ts"]}
    assert isinstance(sent["ts"], int)
    (stored,) = (await bob.rest.history(cid))["messages"]
    assert (stored["seq"], stored["ts"], stored["body"]) == (1, sent["ts"], "hello")


async def test_rest_send_is_idempotent_per_client_msg_id(node: Node, alice: User,
                                                         bob: User) -> None:
    cid = await direct(alice, bob)
    body = {"client_msg_id": "retry-me", "body": "once"}
    status, first = await alice.rest.call("POST", messages_path(cid), body)
    assert status == 201
    status, again = await alice.rest.call("POST", messages_path(cid), body)
    assert status == 200 and again == first
    # a retry with a changed body still answers with the original, and changes nothing
    status, changed = await alice.rest.call("POST", messages_path(cid),
                                            {"client_msg_id": "retry-me", "body": "twice"})
    assert status == 200 and changed == first
    status, other = await alice.rest.call("POST", messages_path(cid),
                                          {"client_msg_id": "another", "body": "next"})
    assert status == 201 and other["seq"] == first["seq"] + 1
    history = (await bob.rest.history(cid))["messages"]
    assert [(m["seq"], m["body"]) for m in history] == [(1, "once"), (2, "next")]
    (conv,) = await bob.rest.conversations()
    assert (conv["last_seq"], conv["unread"]) == (2, 2)


async def test_a_client_msg_id_is_per_user(node: Node, alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    status, from_alice = await alice.rest.call("POST", messages_path(cid),
                                               {"client_msg_id": "same", "body": "a"})
    assert status == 201
    status, from_bob = await bob.rest.call("POST", messages_path(cid),
                                           {"client_msg_id": "same", "body": "b"})
    assert status == 201 and from_bob["seq"] == from_alice["seq"] + 1


async def test_rest_send_reaches_every_session_including_the_senders(
        node: Node, alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    laptop = await new_device(node, alice)
    async with connect(node.url, alice.token) as (a1, _), \
            connect(node.url, alice.token) as (a2, _), \
            connect(node.url, laptop.token) as (a3, _), \
            connect(node.url, bob.token) as (b, _):
        status, sent = await alice.rest.call("POST", messages_path(cid),
                                             {"client_msg_id": "to-all", "body": "from a bot"})
        assert status == 201
        status, _ = await alice.rest.call("POST", messages_path(cid),
                                          {"client_msg_id": "to-all", "body": "from a bot"})
        assert status == 200
        for session in (a1, a2, a3, b):
            message, before = await session.until_type("message")
            assert message == {
                "type": "message", "conversation_id": cid, "seq": sent["seq"],
                "sender_id": alice.user_id, "client_msg_id": "to-all", "kind": "text",
                "body": "from a bot", "ts": sent["ts"]}
            assert of_type(before, "sent") == []  # no session sent it: nobody gets `sent`
            # the retry made no second message on any session
            await session.send({"type": "ping", "id": "after"})
            _, between = await session.until_type("pong")
            assert of_type(between, "message") == []
    await laptop.rest.aclose()


async def test_rest_send_moves_the_senders_own_markers(node: Node, alice: User,
                                                       bob: User) -> None:
    cid = await direct(alice, bob)
    await bob.rest.send(cid, "hi alice")
    await alice.rest.send(cid, "hi bob")
    (mine,) = await alice.rest.conversations()
    # writing at seq 2 read and delivered everything up to it, for the writer
    assert (mine["last_seq"], mine["my_read_seq"], mine["unread"]) == (2, 2, 0)
    (theirs,) = await bob.rest.conversations()
    assert (theirs["last_delivered_seq"], theirs["last_read_seq"]) == (2, 2)
    assert (theirs["my_read_seq"], theirs["unread"]) == (1, 1)
    # so a new session of each has only the other's message pending
    async with connect(node.url, alice.token) as (_, frames):
        assert of_type(frames, "message") == []
    async with connect(node.url, bob.token) as (_, frames):
        assert [m["body"] for m in of_type(frames, "message")] == ["hi bob"]


# --- operations -------------------------------------------------------------------------------

async def test_healthz_is_200_when_the_store_takes_writes(node: Node) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in /metrics"
    return float(match.group(1))


async def test_metrics_count_sessions_and_committed_messages(own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = await direct(alice, bob)
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE chatnode_sessions gauge" in response.text
        assert metric(response.text, "chatnode_sessions") == 0
        assert metric(response.text, "chatnode_messages_committed_total") == 0
        async with connect(node.url, bob.token):
            body = {"client_msg_id": "counted", "body": "one"}
            await alice.rest.call("POST", messages_path(cid), body)
            await alice.rest.call("POST", messages_path(cid), body)  # a retry is not counted
            text = (await http.get("/metrics")).text
        assert metric(text, "chatnode_sessions") == 1
        assert metric(text, "chatnode_messages_committed_total") == 1
        assert metric(text, "chatnode_catchup_seconds_count") == 1
        with trio.fail_after(10):  # the background checkpoint copies the WAL within a second
            while metric(text, "chatnode_wal_checkpoints_total") == 0:
                await trio.sleep(0.2)
                text = (await http.get("/metrics")).text
        assert metric(text, "chatnode_wal_bytes") > 0
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_metrics_count_error_answers_by_code_over_rest_and_websocket(
        own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = await direct(alice, bob)
    stranger = await new_user(node, "mallory")
    status, _ = await stranger.rest.call("GET", messages_path(cid))
    assert status == 403
    async with connect(node.url, stranger.token) as (m, _):
        await m.send_text(cid, "let me in")
        await m.until_type("error")
        await m.send({"type": "no such frame"})
        await m.until_type("error")
    async with httpx.AsyncClient(base_url=node.url) as http:
        text = (await http.get("/metrics")).text
        assert (await http.get("/api/v1/nowhere")).status_code == 404
        after = (await http.get("/metrics")).text
    assert metric(text, 'chatnode_errors_total{code="forbidden"}') == 2  # REST and a frame
    assert metric(text, 'chatnode_errors_total{code="invalid"}') == 1
    assert metric(after, 'chatnode_errors_total{code="not_found"}') == 1
    for user in (alice, bob, stranger):
        await user.rest.aclose()


async def test_schema_json_describes_the_frames(node: Node) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        response = await http.get("/api/v1/schema.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    schema = response.json()
    assert schema["$schema"].startswith("https://json-schema.org/")
    tags = {d["properties"]["type"]["enum"][0] for d in schema["$defs"].values()
            if "type" in d.get("properties", {})}
    assert {"hello", "send", "delivered", "read", "typing", "ping"} <= tags
    assert {"welcome", "message", "sent", "status_update", "synced", "conversation",
            "presence", "error", "pong"} <= tags
    send = next(d for d in schema["$defs"].values()
                if d.get("properties", {}).get("type", {}).get("enum") == ["send"])
    assert {"conversation_id", "client_msg_id"} <= set(send["required"])
