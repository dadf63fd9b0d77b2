"""Group membership: admins add and remove, anyone leaves, the log records every change."""

import json

from chatnode.client import connect

from ..conftest import Node, User, new_user, of_type


async def test_members_added_and_removed_with_system_messages_and_ticks(
        node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    dave = await new_user(node, "dave")
    cid = (await alice.rest.group("club", [bob.user_id, carol.user_id]))["conversation_id"]
    members_path = f"/api/v1/conversations/{cid}/members"
    await alice.rest.send(cid, "before dave")  # seq 1

    status, body = await bob.rest.call("POST", members_path, {"user_id": dave.user_id})
    assert (status, body["error"]["code"]) == (403, "forbidden")  # not an admin
    async with connect(node.url, bob.token) as (b, _):
        info = await alice.rest.request("POST", members_path, {"user_id": dave.user_id})
        assert {m["user_id"] for m in info["members"]} == {
            alice.user_id, bob.user_id, carol.user_id, dave.user_id}
        added, _ = await b.until_type("message")
        assert (added["seq"], added["kind"]) == (2, "system")
        assert json.loads(added["body"]) == {"event": "member_added", "user_id": dave.user_id}
        live, _ = await b.until_type("conversation")
        assert len(live["members"]) == 4 and live["last_seq"] == 2
    status, body = await alice.rest.call("POST", members_path, {"user_id": dave.user_id})
    assert (status, body["error"]["code"]) == (409, "conflict")

    # dave's log starts at his own member_added: he never sees "before dave"
    async with connect(node.url, dave.token) as (_, frames):
        assert [m["seq"] for m in of_type(frames, "message")] == [2]
    history = await dave.rest.history(cid)
    assert [m["seq"] for m in history["messages"]] == [2]
    await alice.rest.send(cid, "hello all")  # seq 3

    # bob, carol, dave have read everything except carol; alice's blue tick waits for carol
    for user in (bob, dave):
        async with connect(node.url, user.token) as (s, _):
            await s.read(cid, 3)
            await s.until_type("status_update")
    async with connect(node.url, alice.token) as (a, frames):
        (status_update,) = of_type(frames, "status_update")
        assert status_update["last_read_seq"] == 0  # carol has read nothing
        removed = await alice.rest.request("DELETE", f"{members_path}/{carol.user_id}")
        assert carol.user_id not in {m["user_id"] for m in removed["members"]}
        message, _ = await a.until_type("message")
        assert json.loads(message["body"]) == {"event": "member_removed",
                                               "user_id": carol.user_id}
        ticks, _ = await a.until_type("status_update")
        assert ticks["last_read_seq"] == 3  # the minimum over those who remain

    # carol is out: she cannot send, read, or see history
    status, body = await carol.rest.call("GET", f"/api/v1/conversations/{cid}/messages")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    async with connect(node.url, carol.token) as (c, frames):
        assert cid not in {s["conversation_id"] for s in of_type(frames, "status_update")}
        await c.send_text(cid, "let me back")
        error, _ = await c.until_type("error")
        assert error["code"] == "forbidden"
    for user in (carol, dave):
        await user.rest.aclose()


async def test_the_last_admin_leaving_promotes_the_longest_standing_member(
        node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    cid = (await alice.rest.group("club", [bob.user_id, carol.user_id]))["conversation_id"]
    status, body = await bob.rest.call(
        "DELETE", f"/api/v1/conversations/{cid}/members/{carol.user_id}")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert await alice.rest.request(
        "DELETE", f"/api/v1/conversations/{cid}/members/{alice.user_id}") == {}
    info = await bob.rest.request("GET", f"/api/v1/conversations/{cid}")
    roles = {m["user_id"]: m["role"] for m in info["members"]}
    assert alice.user_id not in roles
    assert sorted(roles.values()) == ["admin", "member"]
    history = await bob.rest.history(cid)
    events = [json.loads(m["body"]) for m in history["messages"]]
    assert events[0] == {"event": "member_left", "user_id": alice.user_id}
    assert events[1]["event"] == "role_changed" and events[1]["role"] == "admin"
    assert roles[events[1]["user_id"]] == "admin"
    await carol.rest.aclose()


async def test_direct_conversations_have_fixed_members_and_groups_a_size_limit(
        own_node: Node) -> None:
    own_node.env["CHATNODE_LIMITS_GROUP_MEMBERS"] = "3"
    node = own_node.start()
    alice, bob, carol, dave = [await new_user(node) for _ in range(4)]
    direct = (await alice.rest.direct(bob.user_id))["conversation_id"]
    status, body = await alice.rest.call(
        "POST", f"/api/v1/conversations/{direct}/members", {"user_id": carol.user_id})
    assert (status, body["error"]["code"]) == (400, "invalid")
    group = (await alice.rest.group("g", [bob.user_id, carol.user_id]))["conversation_id"]
    status, body = await alice.rest.call(
        "POST", f"/api/v1/conversations/{group}/members", {"user_id": dave.user_id})
    assert (status, body["error"]["code"]) == (413, "too_large")
    status, body = await dave.rest.call(
        "DELETE", f"/api/v1/conversations/{group}/members/{bob.user_id}")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    for user in (alice, bob, carol, dave):
        await user.rest.aclose()


async def test_admins_promote_demote_and_rename(node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    cid = (await alice.rest.group("club", [bob.user_id, carol.user_id]))["conversation_id"]
    path = f"/api/v1/conversations/{cid}"
    status, body = await bob.rest.call("PATCH", path, {"name": "mine"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await alice.rest.call("PATCH", f"{path}/members/{alice.user_id}",
                                         {"role": "member"})
    assert (status, body["error"]["code"]) == (409, "conflict")  # the only admin
    status, body = await alice.rest.call("PATCH", f"{path}/members/{bob.user_id}",
                                         {"role": "owner"})
    assert (status, body["error"]["code"]) == (400, "invalid")
    async with connect(node.url, carol.token) as (c, _):
        info = await alice.rest.request("PATCH", f"{path}/members/{bob.user_id}",
                                        {"role": "admin"})
        assert {m["user_id"]: m["role"] for m in info["members"]}[bob.user_id] == "admin"
        event, _ = await c.until_type("message")
        assert json.loads(event["body"]) == {"event": "role_changed", "user_id": bob.user_id,
                                             "role": "admin"}
        renamed = await bob.rest.request("PATCH", path, {"name": "the club"})
        assert renamed["name"] == "the club"
        event, _ = await c.until_type("message")  # the log entry, then the new state
        assert json.loads(event["body"]) == {"event": "renamed", "name": "the club"}
        live, _ = await c.until_type("conversation")
        assert (live["conversation_id"], live["name"]) == (cid, "the club")
    info = await bob.rest.request("PATCH", f"{path}/members/{alice.user_id}",
                                  {"role": "member"})
    assert {m["user_id"]: m["role"] for m in info["members"]}[alice.user_id] == "member"
    direct = (await alice.rest.direct(bob.user_id))["conversation_id"]
    status, body = await alice.rest.call("PATCH", f"/api/v1/conversations/{direct}",
                                         {"name": "x"})
    assert (status, body["error"]["code"]) == (400, "invalid")
    await carol.rest.aclose()


async def test_group_creator_is_admin_and_members_see_it_live(node: Node, alice: User,
                                                             bob: User) -> None:
    async with connect(node.url, bob.token) as (b, _):
        group = await alice.rest.group("club", [bob.user_id])
        roles = {m["user_id"]: m["role"] for m in group["members"]}
        assert roles == {alice.user_id: "admin", bob.user_id: "member"}
        live, _ = await b.until_type("conversation")
        assert live["conversation_id"] == group["conversation_id"]
        assert live["name"] == "club" and live["kind"] == "group"


async def test_a_group_is_created_only_within_the_size_limit(own_node: Node) -> None:
    own_node.env["CHATNODE_LIMITS_GROUP_MEMBERS"] = "3"
    node = own_node.start()
    users = [await new_user(node) for _ in range(4)]
    status, body = await users[0].rest.call("POST", "/api/v1/conversations", {
        "kind": "group", "members": [u.user_id for u in users[1:]]})
    assert (status, body["error"]["code"]) == (413, "too_large")
    status, _ = await users[0].rest.call("POST", "/api/v1/conversations", {
        "kind": "group", "members": [u.user_id for u in users[1:3]]})
    assert status == 201
    for u in users:
        await u.rest.aclose()
