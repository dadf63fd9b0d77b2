"""An admin gives someone who forgot their password a new one over REST
(POST /api/v1/users/by-id/{user_id}/password): every device of that account is logged out at
once, live sessions included, and only the new password works; nobody else is touched. The
admin's own account, an unknown user and a bad body are refused and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, hello_refused
from .account_helpers import close_code, still_open, token_status
from .invited import admin_of, make_invite, name, register, start_invite_node
from .test_rest import assert_error

NEW_PASSWORD = "a brand new one"


@pytest.fixture(scope="module")
def invite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from start_invite_node(tmp_path_factory)


def reset_path(user_id: str) -> str:
    return f"/api/v1/users/by-id/{user_id}/password"


async def login_status(node: Node, username: str, password: str) -> int:
    async with RestClient(node.url) as rest:
        status, _ = await rest.call("POST", "/api/v1/login",
                                    {"username": username, "password": password})
    return status


async def new_account(node: Node, admin: RestClient) -> tuple[str, dict[str, str]]:
    username = name()
    status, auth = await register(node, username, (await make_invite(admin))["token"])
    assert status == 201, auth
    return username, auth


async def test_a_reset_logs_out_every_device_and_only_the_new_password_works(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    username, first = await new_account(invite_node, admin)
    async with RestClient(invite_node.url) as rest:
        second = await rest.login(username, PASSWORD)
    other_name, other = await new_account(invite_node, admin)
    async with connect(invite_node.url, first["token"]) as (first_ws, _), \
            connect(invite_node.url, second["token"]) as (second_ws, _), \
            connect(invite_node.url, other["token"]) as (other_ws, _):
        answer = await admin.request("POST", reset_path(first["user_id"]),
                                     {"new_password": NEW_PASSWORD})
        assert answer == {"devices_logged_out": 2}
        assert await close_code(first_ws) == 4001
        assert await close_code(second_ws) == 4001
        assert await still_open(other_ws)
    for token in (first["token"], second["token"]):
        assert await token_status(invite_node.url, token) == 401
        frame, code = await hello_refused(invite_node.url, token)
        assert (frame["code"], code) == ("unauthenticated", 4001)
    assert await login_status(invite_node, username, PASSWORD) == 401
    assert await login_status(invite_node, username, NEW_PASSWORD) == 200
    # Someone else's account is as it was: same token, same password.
    assert await token_status(invite_node.url, other["token"]) == 200
    assert await login_status(invite_node, other_name, PASSWORD) == 200
    await admin.aclose()


async def test_a_reset_is_refused_for_an_unknown_user_the_admins_own_account_and_a_bad_body(
        invite_node: Node) -> None:
    admin = await admin_of(invite_node)
    me = await admin.request("GET", "/api/v1/me")
    username, auth = await new_account(invite_node, admin)

    status, body = await admin.call("POST", reset_path("u_0123456789abcdef"),
                                    {"new_password": NEW_PASSWORD})
    assert_error(status, body, 404, "not_found")
    status, body = await admin.call("POST", reset_path(me["user_id"]),
                                    {"new_password": NEW_PASSWORD})
    assert_error(status, body, 409, "conflict", names="/api/v1/me/password")
    for bad in ({"new_password": "short"}, {"new_password": NEW_PASSWORD, "log_out": True},
                {}, {"new_password": 12345678}):
        status, body = await admin.call("POST", reset_path(auth["user_id"]), bad)
        assert_error(status, body, 400, "invalid")

    # Nothing changed: the admin's token and password, the user's token and password.
    assert await admin.request("GET", "/api/v1/me") == me
    assert await login_status(invite_node, me["username"], NEW_PASSWORD) == 401
    assert await token_status(invite_node.url, auth["token"]) == 200
    assert await login_status(invite_node, username, PASSWORD) == 200
    assert await login_status(invite_node, username, NEW_PASSWORD) == 401
    await admin.aclose()
