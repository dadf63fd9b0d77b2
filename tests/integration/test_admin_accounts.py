"""The node's admins over REST: only they make, list and revoke invites or list and change
accounts; the list shows every account, disabled ones too; a disabled account's live session
ends at once; an admin promotes others but never locks themselves out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, hello_refused
from .invited import ADMIN, INVITES, admin_of, make_invite, name, register, start_invite_node
from .test_rest import assert_error


@pytest.fixture(scope="module")
def invite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from start_invite_node(tmp_path_factory)


async def test_only_admins_make_list_and_revoke_invites_or_change_accounts(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    _, auth = await register(invite_node, name(), invite["token"])
    admin_me = await admin.request("GET", "/api/v1/me")
    before = await admin.request("GET", INVITES)
    async with RestClient(invite_node.url, auth["token"]) as user:
        for method, path, body in [
                ("POST", INVITES, {}), ("POST", INVITES, {"admin": True}), ("GET", INVITES, None),
                ("GET", "/api/v1/users", None),
                ("DELETE", f"{INVITES}/{invite['invite_id']}", None),
                ("PATCH", f"/api/v1/users/by-id/{auth['user_id']}", {"role": "admin"}),
                ("PATCH", f"/api/v1/users/by-id/{admin_me['user_id']}", {"disabled": True})]:
            status, answer = await user.call(method, path, body)
            assert_error(status, answer, 403, "forbidden", names="admin")
        assert (await user.request("GET", "/api/v1/me"))["role"] == "user"
    assert await admin.request("GET", INVITES) == before
    assert await admin.request("GET", "/api/v1/me") == admin_me  # still an enabled admin
    await admin.aclose()


async def test_an_admin_disables_an_account_and_its_live_session_ends(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    username = name()
    _, auth = await register(invite_node, username, invite["token"])
    path = f"/api/v1/users/by-id/{auth['user_id']}"
    async with connect(invite_node.url, auth["token"]) as (session, _):
        changed = await admin.request("PATCH", path, {"disabled": True})
        assert (changed["username"], changed["disabled"]) == (username, True)
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # frames already queued may come first; then the close
                await session.recv(timeout=10)
        assert closed.value.reason.code == 4001
    frame, code = await hello_refused(invite_node.url, auth["token"])
    assert (frame["code"], code) == ("unauthenticated", 4001)
    async with RestClient(invite_node.url) as rest:
        status, body = await rest.call("POST", "/api/v1/login",
                                       {"username": username, "password": PASSWORD})
    assert_error(status, body, 403, "forbidden")
    await admin.aclose()


async def test_an_admin_promotes_others_but_never_locks_themselves_out(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    me = await admin.request("GET", "/api/v1/me")
    for change in ({"disabled": True}, {"role": "user"}):
        status, body = await admin.call("PATCH", f"/api/v1/users/by-id/{me['user_id']}", change)
        assert_error(status, body, 409, "conflict")
    assert (await admin.request("GET", "/api/v1/me"))["role"] == "admin"
    _, auth = await register(invite_node, name(), (await make_invite(admin))["token"])
    promoted = await admin.request("PATCH", f"/api/v1/users/by-id/{auth['user_id']}",
                                   {"role": "admin"})
    assert (promoted["role"], promoted["disabled"]) == ("admin", False)
    status, body = await admin.call("PATCH", "/api/v1/users/by-id/u_nobody", {"role": "admin"})
    assert_error(status, body, 404, "not_found")
    await admin.aclose()


async def test_the_account_list_shows_every_account_with_its_role_and_state(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    online_name, gone_name = name(), name()
    _, online = await register(invite_node, online_name, (await make_invite(admin))["token"])
    _, gone = await register(invite_node, gone_name, (await make_invite(admin))["token"])
    await admin.request("PATCH", f"/api/v1/users/by-id/{gone['user_id']}", {"disabled": True})
    asked_at = int(time.time() * 1000)
    async with connect(invite_node.url, online["token"]):
        listed = (await admin.request("GET", "/api/v1/users"))["users"]
    usernames = [u["username"] for u in listed]
    assert usernames == sorted(usernames) and len(set(usernames)) == len(usernames)
    by_name = {u["username"]: u for u in listed}
    assert set(by_name[ADMIN]) == {"user_id", "username", "display_name", "role", "disabled",
                                   "created_at", "last_seen"}
    assert (by_name[ADMIN]["role"], by_name[ADMIN]["disabled"]) == ("admin", False)
    seen = by_name[online_name]
    assert (seen["user_id"], seen["role"], seen["disabled"]) == (online["user_id"], "user",
                                                                  False)
    assert seen["last_seen"] >= asked_at  # online: seen now
    hidden = by_name[gone_name]
    assert (hidden["user_id"], hidden["role"], hidden["disabled"]) == (gone["user_id"], "user",
                                                                       True)
    assert hidden["last_seen"] is None  # never connected
    assert 0 < hidden["created_at"] <= asked_at
    await admin.aclose()
