"""Invites over REST, on real nodes: an admin makes an invite, a person registers with it and is
logged in; used, expired, revoked and made-up invites are refused and create nothing; only
admins make, list and revoke invites or disable accounts; the three registration modes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, hello_refused
from .test_rest import assert_error

ADMIN = "root"
INVITES = "/api/v1/invites"


def add_admin(data_dir: Path, username: str = ADMIN) -> None:
    """The first admin, made as an admin makes one: with the CLI."""
    subprocess.run([sys.executable, "-m", "chatnode", "user", "add", username, "--password",
                    PASSWORD, "--admin", "--data-dir", str(data_dir)],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def invite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node with the default registration (invites) and an admin."""
    data_dir = tmp_path_factory.mktemp("invites")
    add_admin(data_dir)
    node = Node(data_dir, env={"CHATNODE_REGISTRATION": "invite"}).start()
    yield node
    node.stop()


async def admin_of(node: Node) -> RestClient:
    rest = RestClient(node.url)
    await rest.login(ADMIN, PASSWORD)
    return rest


async def make_invite(by: RestClient, **options: Any) -> dict[str, Any]:
    created: dict[str, Any] = await by.request("POST", INVITES, options)
    return created


async def register(node: Node, username: str, invite: str | None = None) -> tuple[int, Any]:
    body = {"username": username, "password": PASSWORD}
    if invite is not None:
        body["invite"] = invite
    async with RestClient(node.url) as rest:
        return await rest.call("POST", "/api/v1/register", body)


async def invite_listed(admin: RestClient, invite_id: str) -> dict[str, Any]:
    (listed,) = [i for i in (await admin.request("GET", INVITES))["invites"]
                 if i["invite_id"] == invite_id]
    return listed


async def can_log_in(node: Node, username: str) -> bool:
    async with RestClient(node.url) as rest:
        status, _ = await rest.call("POST", "/api/v1/login",
                                    {"username": username, "password": PASSWORD})
    return status == 200


def name() -> str:
    return f"inv{uuid.uuid4().hex[:10]}"


async def test_an_invite_link_registers_a_person_who_is_then_logged_in(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    assert invite["link"] == f"{invite_node.url}/#invite={invite['token']}"
    assert (invite["max_uses"], invite["admin"]) == (1, False)
    newcomer = name()
    status, auth = await register(invite_node, newcomer, invite["token"])
    assert status == 201, auth
    async with RestClient(invite_node.url, auth["token"]) as rest:
        me = await rest.request("GET", "/api/v1/me")
    assert (me["username"], me["role"]) == (newcomer, "user")
    listed = await invite_listed(admin, invite["invite_id"])
    assert (listed["state"], listed["uses_left"], listed["created_by"]) == ("used", 0, ADMIN)
    # The token was shown once: the list never carries it.
    assert invite["token"] not in str(await admin.request("GET", INVITES))
    await admin.aclose()


async def test_a_single_use_invite_used_again_is_refused_and_creates_nothing(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    assert (await register(invite_node, name(), invite["token"]))[0] == 201
    second = name()
    status, body = await register(invite_node, second, invite["token"])
    assert_error(status, body, 403, "forbidden", names="already been used")
    assert not await can_log_in(invite_node, second)
    assert (await invite_listed(admin, invite["invite_id"]))["uses_left"] == 0
    await admin.aclose()


async def test_a_multi_use_invite_counts_down_to_nothing(invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin, uses=3)
    for left in (2, 1, 0):
        assert (await register(invite_node, name(), invite["token"]))[0] == 201
        listed = await invite_listed(admin, invite["invite_id"])
        assert listed["uses_left"] == left
    assert listed["state"] == "used"
    status, body = await register(invite_node, name(), invite["token"])
    assert_error(status, body, 403, "forbidden", names="already been used")
    await admin.aclose()


async def test_an_expired_invite_is_refused_and_not_used_up(invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin, expires="1s")
    await trio.sleep(1.2)
    late = name()
    status, body = await register(invite_node, late, invite["token"])
    assert_error(status, body, 403, "forbidden", names="expired")
    assert not await can_log_in(invite_node, late)
    listed = await invite_listed(admin, invite["invite_id"])
    assert (listed["state"], listed["uses_left"]) == ("expired", 1)
    await admin.aclose()


async def test_a_revoked_invite_is_refused(invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin, uses=5)
    assert await admin.request("DELETE", f"{INVITES}/{invite['invite_id']}") == {}
    status, body = await register(invite_node, name(), invite["token"])
    assert_error(status, body, 403, "forbidden", names="revoked")
    listed = await invite_listed(admin, invite["invite_id"])
    assert (listed["state"], listed["uses_left"]) == ("revoked", 5)
    status, body = await admin.call("DELETE", f"{INVITES}/i_{uuid.uuid4().hex[:16]}")
    assert_error(status, body, 404, "not_found")
    await admin.aclose()


async def test_without_a_valid_invite_nobody_registers(invite_node: Node) -> None:
    """No invite: registration is closed to you (the code a closed node answers); an invite
    that does not exist: forbidden, saying so."""
    nobody = name()
    status, body = await register(invite_node, nobody)
    assert_error(status, body, 403, "registration_closed", names="invite")
    status, body = await register(invite_node, nobody, "made-up-token")
    assert_error(status, body, 403, "forbidden", names="not valid")
    assert not await can_log_in(invite_node, nobody)


async def test_a_taken_username_does_not_use_up_the_invite(invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    status, body = await register(invite_node, ADMIN, invite["token"])
    assert_error(status, body, 409, "conflict")
    assert (await invite_listed(admin, invite["invite_id"]))["uses_left"] == 1
    assert (await register(invite_node, name(), invite["token"]))[0] == 201
    await admin.aclose()


async def test_an_admin_invite_makes_an_admin_who_can_invite(invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin, admin=True)
    assert (await invite_listed(admin, invite["invite_id"]))["admin"] is True
    status, auth = await register(invite_node, name(), invite["token"])
    assert status == 201
    async with RestClient(invite_node.url, auth["token"]) as new_admin:
        assert (await new_admin.request("GET", "/api/v1/me"))["role"] == "admin"
        assert (await make_invite(new_admin))["token"]
    await admin.aclose()


async def test_racing_registrations_with_one_single_use_invite_make_one_account(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    names = [name() for _ in range(4)]
    statuses: dict[str, int] = {}

    async def try_register(username: str) -> None:
        statuses[username] = (await register(invite_node, username, invite["token"]))[0]

    async with trio.open_nursery() as nursery:
        for username in names:
            nursery.start_soon(try_register, username)
    assert sorted(statuses.values()) == [201, 403, 403, 403]
    (winner,) = [u for u, s in statuses.items() if s == 201]
    for username in names:
        assert await can_log_in(invite_node, username) == (username == winner)
    assert (await invite_listed(admin, invite["invite_id"]))["uses_left"] == 0
    await admin.aclose()


async def test_a_bad_invite_request_is_invalid_and_makes_nothing(invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    before = await admin.request("GET", INVITES)
    for body in ({"expires": "9x"}, {"expires": "400d"}, {"uses": 0}, {"uses": 1001},
                 {"admin": "yes"}, {"whatever": 1}):
        status, answer = await admin.call("POST", INVITES, body)
        assert_error(status, answer, 400, "invalid")
    assert await admin.request("GET", INVITES) == before
    await admin.aclose()


async def test_only_admins_make_list_and_revoke_invites_or_change_accounts(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    invite = await make_invite(admin)
    status, auth = await register(invite_node, name(), invite["token"])
    before = await admin.request("GET", INVITES)
    async with RestClient(invite_node.url, auth["token"]) as user:
        for method, path, body in [
                ("POST", INVITES, {}), ("POST", INVITES, {"admin": True}), ("GET", INVITES, None),
                ("DELETE", f"{INVITES}/{invite['invite_id']}", None),
                ("PATCH", f"/api/v1/users/by-id/{auth['user_id']}", {"role": "admin"}),
                ("PATCH", f"/api/v1/users/by-id/{before['invites'][0]['invite_id']}",
                 {"disabled": True})]:
            status, answer = await user.call(method, path, body)
            assert_error(status, answer, 403, "forbidden", names="admin")
        assert (await user.request("GET", "/api/v1/me"))["role"] == "user"
    assert await admin.request("GET", INVITES) == before
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


async def test_closed_refuses_every_registration_and_open_ignores_invites(
        own_node: Node) -> None:
    add_admin(own_node.data_dir)
    own_node.env["CHATNODE_REGISTRATION"] = "closed"
    own_node.env["CHATNODE_PUBLIC_URL"] = "https://chat.example.org"
    node = own_node.start()
    admin = await admin_of(node)
    invite = await make_invite(admin, uses=2)
    assert invite["link"] == f"https://chat.example.org/#invite={invite['token']}"
    for token in (invite["token"], None):
        status, body = await register(node, name(), token)
        assert_error(status, body, 403, "registration_closed")
    assert (await invite_listed(admin, invite["invite_id"]))["uses_left"] == 2
    await admin.aclose()
    node.stop()

    own_node.env["CHATNODE_REGISTRATION"] = "open"
    node = own_node.restart()
    for token in (None, "made-up-token", invite["token"]):
        assert (await register(node, name(), token))[0] == 201
    admin = await admin_of(node)
    assert (await invite_listed(admin, invite["invite_id"]))["uses_left"] == 2
    await admin.aclose()


async def test_guessing_invites_is_limited_per_address_like_logins(own_node: Node) -> None:
    own_node.env.update({"CHATNODE_REGISTRATION": "invite",
                         "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "5"})
    node = own_node.start()
    answers = [await register(node, name(), f"guess-{i}") for i in range(6)]
    assert [status for status, _ in answers] == [403] * 5 + [429]
    assert_error(*answers[-1], 429, "rate_limited")
