"""Display name and avatar: others see a change live, and a bad avatar changes nothing."""

from __future__ import annotations

import base64

import httpx

from chatnode.client import connect

from ..conftest import Node, User
from .account_helpers import still_open

# A real 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChw"
                       "GA60e6kgAAAABJRU5ErkJggg==")
AVATAR_BYTES = 1024 * 1024


async def _put_avatar(node: Node, user: User, data: bytes, content_type: str = "image/png"
                      ) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        return await http.put("/api/v1/me/avatar", content=data, headers={
            "Authorization": f"Bearer {user.token}", "Content-Type": content_type})


async def _get(node: Node, user: User, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        return await http.get(path, headers={"Authorization": f"Bearer {user.token}"})


async def test_a_new_display_name_reaches_other_members_live_and_shows_everywhere(
        node: Node, alice: User, bob: User) -> None:
    conversation = await alice.rest.direct(bob.user_id)
    cid = conversation["conversation_id"]
    async with connect(node.url, bob.token) as (bobs, _), \
            connect(node.url, alice.token) as (alices_other, _):
        me = await alice.rest.request("PATCH", "/api/v1/me", {"display_name": "  Alice A.  "})
        assert me["display_name"] == "Alice A."
        frame, _ = await bobs.until_type("user_updated")
        assert frame == {"type": "user_updated", "user_id": alice.user_id,
                         "username": alice.username, "display_name": "Alice A."}
        own, _ = await alices_other.until_type("user_updated")  # her other devices too
        assert own == frame
    assert (await alice.rest.request("GET", "/api/v1/me"))["display_name"] == "Alice A."
    by_id = await bob.rest.request("GET", f"/api/v1/users/by-id/{alice.user_id}")
    assert by_id["display_name"] == "Alice A."
    members = (await bob.rest.request("GET", f"/api/v1/conversations/{cid}"))["members"]
    assert {m["user_id"]: m["display_name"] for m in members} == {
        alice.user_id: "Alice A.", bob.user_id: bob.username}


async def test_a_stranger_gets_no_frame_about_a_name_change(
        node: Node, alice: User, bob: User) -> None:
    async with connect(node.url, bob.token) as (bobs, _):
        await alice.rest.request("PATCH", "/api/v1/me", {"display_name": "Nobody you know"})
        await bobs.send({"type": "ping", "id": "after"})
        pong, before = await bobs.until_type("pong")
        assert pong["id"] == "after" and before == []


async def test_a_blank_or_missing_display_name_is_refused_and_changes_nothing(
        node: Node, alice: User) -> None:
    for body in ({"display_name": "   "}, {"display_name": ""}, {"display_name": "x" * 65},
                 {}, {"display_name": "ok", "push_preview": "everything"}):
        status, answer = await alice.rest.call("PATCH", "/api/v1/me", body)
        assert (status, answer["error"]["code"]) == (400, "invalid"), body
    me = await alice.rest.request("GET", "/api/v1/me")
    assert (me["display_name"], me["push_preview"]) == (alice.username, "full")


async def test_a_new_avatar_reaches_other_members_live_and_is_served_to_them(
        node: Node, alice: User, bob: User) -> None:
    group = await alice.rest.group("club", [bob.user_id])
    async with connect(node.url, bob.token) as (bobs, _):
        answer = await _put_avatar(node, alice, PNG, "application/octet-stream")
        assert answer.status_code == 200
        avatar = answer.json()["avatar"]
        frame, _ = await bobs.until_type("user_updated")
        assert (frame["user_id"], frame["avatar"]) == (alice.user_id, avatar)
    served = await _get(node, bob, f"/api/v1/avatars/{avatar}")
    assert served.status_code == 200 and served.content == PNG
    # Known by its bytes: served as what it is, whatever the upload said.
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert (await bob.rest.request("GET", f"/api/v1/users/by-id/{alice.user_id}"))[
        "avatar"] == avatar
    members = (await bob.rest.request(
        "GET", f"/api/v1/conversations/{group['conversation_id']}"))["members"]
    # By user: members of one seniority come in user_id order, and ids are random.
    assert {m["user_id"]: m.get("avatar") for m in members} == {alice.user_id: avatar,
                                                                bob.user_id: None}


async def test_a_replaced_or_removed_avatar_is_no_longer_served(
        node: Node, alice: User, bob: User) -> None:
    first = (await _put_avatar(node, alice, PNG)).json()["avatar"]
    second = (await _put_avatar(node, alice, PNG + b"\0")).json()["avatar"]
    assert first != second
    assert (await _get(node, bob, f"/api/v1/avatars/{first}")).status_code == 404
    assert (await _get(node, bob, f"/api/v1/avatars/{second}")).status_code == 200
    me = await alice.rest.request("DELETE", "/api/v1/me/avatar")
    assert "avatar" not in me
    assert (await _get(node, bob, f"/api/v1/avatars/{second}")).status_code == 404


async def test_an_avatar_that_is_not_an_image_or_too_big_is_refused_and_changes_nothing(
        node: Node, alice: User, bob: User) -> None:
    await alice.rest.direct(bob.user_id)
    kept = (await _put_avatar(node, alice, PNG)).json()["avatar"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    async with connect(node.url, bob.token) as (bobs, _):
        refusals = [
            (await _put_avatar(node, alice, b"just some text, no picture"), 400, "invalid"),
            (await _put_avatar(node, alice, svg, "image/svg+xml"), 400, "invalid"),
            (await _put_avatar(node, alice, b""), 400, "invalid"),
            (await _put_avatar(node, alice, PNG + b"\0" * AVATAR_BYTES), 413, "too_large"),
        ]
        for answer, status, code in refusals:
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
        await bobs.send({"type": "ping", "id": "after"})
        _, before = await bobs.until_type("pong")
        assert before == [], "a refused avatar told somebody something"
        assert await still_open(bobs)
    assert (await alice.rest.request("GET", "/api/v1/me"))["avatar"] == kept
    assert (await _get(node, bob, f"/api/v1/avatars/{kept}")).content == PNG
