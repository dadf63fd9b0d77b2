"""The REST API: every route that exists, its answers and its errors."""

import uuid

import httpx
import pytest

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, User, new_user, of_type


def assert_error(status: int, body: dict, want_status: int, want_code: str) -> None:
    assert status == want_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == want_code and body["error"]["message"]


async def test_register_login_me_logout(node: Node) -> None:
    rest = RestClient(node.url)
    name = f"reg{uuid.uuid4().hex[:8]}"
    status, auth = await rest.call("POST", "/api/v1/register",
                                   {"username": name, "password": PASSWORD,
                                    "display_name": "Reggie"})
    assert status == 201 and set(auth) == {"user_id", "token", "device_id"}
    rest.token = auth["token"]
    assert await rest.request("GET", "/api/v1/me") == {
        "user_id": auth["user_id"], "username": name, "display_name": "Reggie"}
    status, body = await rest.call("POST", "/api/v1/register",
                                   {"username": name, "password": PASSWORD})
    assert_error(status, body, 409, "conflict")

    other = RestClient(node.url)
    login = await other.login(name, PASSWORD, "laptop")
    assert login["user_id"] == auth["user_id"] and login["device_id"] != auth["device_id"]
    status, body = await other.call("POST", "/api/v1/login",
                                    {"username": name, "password": "wrong password"})
    assert_error(status, body, 401, "unauthenticated")
    status, body = await other.call("POST", "/api/v1/login",
                                    {"username": "nobody-here", "password": "wrong password"})
    assert_error(status, body, 401, "unauthenticated")

    async with connect(node.url, login["token"]) as (session, _):
        status, _ = await other.call("POST", "/api/v1/logout")
        assert status == 200
        with pytest.raises(Exception):  # noqa: B017 - closed with 4001, then nothing
            await session.recv(timeout=5)
        assert session.ws.closed.code == 4001
    status, body = await other.call("GET", "/api/v1/me")
    assert_error(status, body, 401, "unauthenticated")
    # the first device is untouched by the second one's logout
    assert (await rest.request("GET", "/api/v1/me"))["user_id"] == auth["user_id"]
    await rest.aclose()
    await other.aclose()


async def test_registration_is_closed_by_default(own_node: Node) -> None:
    own_node.env.pop("CHATNODE_REGISTRATION")
    node = own_node.start()
    async with RestClient(node.url) as rest:
        status, body = await rest.call("POST", "/api/v1/register",
                                       {"username": "someone", "password": PASSWORD})
    assert_error(status, body, 403, "registration_closed")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/register", {"username": "has space", "password": PASSWORD}, "username"),
    ("/api/v1/register", {"username": "shortpw", "password": "short"}, "password"),
    ("/api/v1/login", {"username": "x"}, "password"),
    ("/api/v1/conversations", {"kind": "triple", "members": []}, "kind"),
    ("/api/v1/conversations", {"kind": "group", "members": "u_1"}, "members"),
])
async def test_invalid_bodies_name_the_field(node: Node, alice: User, path: str, body: dict,
                                             field: str) -> None:
    status, answer = await alice.rest.call("POST", path, body)
    assert_error(status, answer, 400, "invalid")
    assert field in answer["error"]["message"]


async def test_undecodable_and_oversized_bodies(node: Node, alice: User) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        headers = {"Authorization": f"Bearer {alice.token}"}
        response = await http.post("/api/v1/conversations", content=b"{not json",
                                   headers=headers)
        assert_error(response.status_code, response.json(), 400, "bad_frame")
        response = await http.post("/api/v1/conversations", content=b"x" * 70_000,
                                   headers=headers)
        assert_error(response.status_code, response.json(), 413, "too_large")
        response = await http.get("/api/v1/no/such/route")
        assert_error(response.status_code, response.json(), 404, "not_found")


async def test_unauthenticated_requests(node: Node) -> None:
    for token in (None, "garbage"):
        async with RestClient(node.url, token) as rest:
            for method, path in [("GET", "/api/v1/me"), ("GET", "/api/v1/conversations"),
                                 ("GET", "/api/v1/users/anyone"),
                                 ("POST", "/api/v1/conversations")]:
                status, body = await rest.call(method, path, {} if method == "POST" else None)
                assert_error(status, body, 401, "unauthenticated")


async def test_users_lookup(node: Node, alice: User, bob: User) -> None:
    assert await alice.rest.user(bob.username) == {
        "user_id": bob.user_id, "username": bob.username, "display_name": bob.username}
    assert (await alice.rest.user(bob.username.upper()))["user_id"] == bob.user_id
    status, body = await alice.rest.call("GET", "/api/v1/users/nobody-at-all")
    assert_error(status, body, 404, "not_found")


async def test_direct_conversation_is_one_per_pair(node: Node, alice: User, bob: User) -> None:
    status, first = await alice.rest.call("POST", "/api/v1/conversations",
                                          {"kind": "direct", "members": [bob.user_id]})
    assert status == 201 and first["kind"] == "direct" and first["last_seq"] == 0
    assert {m["user_id"] for m in first["members"]} == {alice.user_id, bob.user_id}
    status, again = await bob.rest.call("POST", "/api/v1/conversations",
                                        {"kind": "direct", "members": [alice.user_id]})
    assert status == 200 and again["conversation_id"] == first["conversation_id"]
    for members, code in [([alice.user_id], "invalid"), ([], "invalid"),
                          ([bob.user_id, "u_other"], "invalid"),
                          (["u_doesnotexist"], "not_found")]:
        status, body = await alice.rest.call("POST", "/api/v1/conversations",
                                             {"kind": "direct", "members": members})
        assert body["error"]["code"] == code


async def test_group_creator_is_admin_and_members_see_it_live(node: Node, alice: User,
                                                             bob: User) -> None:
    async with connect(node.url, bob.token) as (b, _):
        group = await alice.rest.group("club", [bob.user_id])
        roles = {m["user_id"]: m["role"] for m in group["members"]}
        assert roles == {alice.user_id: "admin", bob.user_id: "member"}
        live, _ = await b.until_type("conversation")
        assert live["conversation_id"] == group["conversation_id"]
        assert live["name"] == "club" and live["kind"] == "group"


async def test_group_size_limit(own_node: Node) -> None:
    own_node.env["CHATNODE_LIMITS_GROUP_MEMBERS"] = "3"
    node = own_node.start()
    users = [await new_user(node) for _ in range(4)]
    status, body = await users[0].rest.call("POST", "/api/v1/conversations", {
        "kind": "group", "members": [u.user_id for u in users[1:]]})
    assert_error(status, body, 413, "too_large")
    status, _ = await users[0].rest.call("POST", "/api/v1/conversations", {
        "kind": "group", "members": [u.user_id for u in users[1:3]]})
    assert status == 201
    for u in users:
        await u.rest.aclose()


async def test_list_and_get_show_markers_unread_and_last_message(node: Node, alice: User,
                                                                 bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(4):
        await alice.rest.send(cid, f"m{i}")
    async with connect(node.url, bob.token) as (b, _):
        await b.delivered(cid, 3)
        await b.read(cid, 2)
        await b.until_type("status_update")
    (mine,) = await alice.rest.conversations()
    assert (mine["last_seq"], mine["last_delivered_seq"], mine["last_read_seq"]) == (4, 3, 2)
    assert (mine["my_read_seq"], mine["unread"]) == (4, 0)
    assert mine["last_message"]["body"] == "m3" and mine["last_message"]["seq"] == 4
    theirs = await bob.rest.request("GET", f"/api/v1/conversations/{cid}")
    assert (theirs["my_read_seq"], theirs["unread"]) == (2, 2)
    assert (theirs["last_delivered_seq"], theirs["last_read_seq"]) == (4, 4)


async def test_history_pages(node: Node, alice: User, bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(1, 8):
        await alice.rest.send(cid, f"m{i}")

    async def seqs(**params: int) -> tuple[list[int], bool]:
        page = await bob.rest.history(cid, **params)
        return [m["seq"] for m in page["messages"]], page["has_more"]

    assert await seqs() == ([1, 2, 3, 4, 5, 6, 7], False)
    assert await seqs(limit=3) == ([5, 6, 7], True)
    assert await seqs(before=5, limit=3) == ([2, 3, 4], True)
    assert await seqs(before=3, limit=3) == ([1, 2], False)
    assert await seqs(after=2, limit=3) == ([3, 4, 5], True)
    assert await seqs(after=5, limit=3) == ([6, 7], False)
    assert await seqs(after=1, before=4) == ([2, 3], False)
    for params in ({"limit": 201}, {"limit": 0}, {"before": -1}):
        status, body = await bob.rest.call(
            "GET", f"/api/v1/conversations/{cid}/messages", params=params)
        assert_error(status, body, 400, "invalid")
    status, body = await bob.rest.call(
        "GET", f"/api/v1/conversations/{cid}/messages", params={"after": "x"})
    assert_error(status, body, 400, "invalid")
    assert "after" in body["error"]["message"]


async def test_strangers_are_forbidden_and_learn_nothing(node: Node, alice: User,
                                                         bob: User) -> None:
    stranger = await new_user(node, "stranger")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    answers = []
    for target in (cid, "c_doesnotexist"):
        for method, path, body in [
            ("GET", f"/api/v1/conversations/{target}", None),
            ("GET", f"/api/v1/conversations/{target}/messages", None),
            ("POST", f"/api/v1/conversations/{target}/messages",
             {"client_msg_id": "x", "body": "intrude"}),
        ]:
            status, answer = await stranger.rest.call(method, path, body)
            assert_error(status, answer, 403, "forbidden")
            answers.append(answer)
    assert answers[:3] == answers[3:]  # an existing conversation answers like a missing one
    assert (await alice.rest.history(cid))["messages"] == []
    await stranger.rest.aclose()


async def test_rest_send_is_idempotent_and_reaches_every_session(node: Node, alice: User,
                                                                 bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (a, _), connect(node.url, bob.token) as (b, _):
        body = {"client_msg_id": "bot-1", "body": "from a script"}
        status, first = await alice.rest.call(
            "POST", f"/api/v1/conversations/{cid}/messages", body)
        assert status == 201 and first["type"] == "sent" and first["seq"] == 1
        status, again = await alice.rest.call(
            "POST", f"/api/v1/conversations/{cid}/messages", body)
        assert status == 200 and again == first
        # no session sent it, so the sender's own sessions get the message too
        for session in (a, b):
            message, _ = await session.until_type("message")
            assert message["client_msg_id"] == "bot-1" and message["seq"] == 1
        status, too_long = await alice.rest.call(
            "POST", f"/api/v1/conversations/{cid}/messages",
            {"client_msg_id": "bot-2", "body": "x" * 10_001})
        assert_error(status, too_long, 413, "too_large")
        await a.send({"type": "ping"})
        _, before = await a.until_type("pong")
        assert of_type(before, "message") == []  # the retry made no second message


async def test_health_metrics_and_schema(node: Node, alice: User) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        for name in ("chatnode_sessions", "chatnode_messages_committed_total",
                     "chatnode_commit_batch_size_bucket", "chatnode_catchup_seconds_bucket"):
            assert name in metrics.text
        schema = (await http.get("/api/v1/schema.json")).json()
        assert {"Hello", "Send", "Message", "StatusUpdate", "Synced"} <= set(schema["$defs"])
