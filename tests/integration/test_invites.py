"""Invites over REST, on real nodes: an admin makes an invite, a person registers with it and is
logged in; used, expired, revoked and made-up invites are refused and create nothing; racing
registrations share a single use; the three registration modes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from chatnode.client import RestClient

from ..conftest import Node
from .invited import (
    ADMIN,
    INVITES,
    add_admin,
    admin_of,
    can_log_in,
    invite_listed,
    make_invite,
    name,
    register,
    start_invite_node,
)
from .test_rest import assert_error


@pytest.fixture(scope="module")
def invite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from start_invite_node(tmp_path_factory)


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
    status, body = await admin.call("DELETE", f"{INVITES}/i_0123456789abcdef")
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
