"""Changing one's password: the current one is required, and other devices can be logged out."""

from __future__ import annotations

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, User, new_device
from .account_helpers import close_code, still_open, token_status

NEW_PASSWORD = "a much better passphrase"


async def _login_status(node: Node, user: User, password: str) -> int:
    async with RestClient(node.url) as rest:
        status, _ = await rest.call("POST", "/api/v1/login",
                                    {"username": user.username, "password": password})
    return status


async def test_the_new_password_logs_in_and_the_old_one_no_longer_does(
        node: Node, alice: User) -> None:
    answer = await alice.rest.request("POST", "/api/v1/me/password", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert answer == {"devices_logged_out": 0}
    assert await _login_status(node, alice, PASSWORD) == 401
    assert await _login_status(node, alice, NEW_PASSWORD) == 200
    # Without "log out others" every device stays logged in.
    assert await token_status(node.url, alice.token) == 200


async def test_a_wrong_current_password_is_refused_and_changes_nothing(
        node: Node, alice: User) -> None:
    phone = await new_device(node, alice)
    status, body = await alice.rest.call("POST", "/api/v1/me/password", {
        "current_password": "not my password", "new_password": NEW_PASSWORD,
        "log_out_others": True})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "current_password" in body["error"]["message"]
    assert await _login_status(node, alice, NEW_PASSWORD) == 401
    assert await _login_status(node, alice, PASSWORD) == 200
    assert await token_status(node.url, phone.token) == 200
    await phone.rest.aclose()


async def test_a_new_password_is_held_to_registrations_rules(node: Node, alice: User) -> None:
    for new in ("short", "x" * 1025):
        status, body = await alice.rest.call("POST", "/api/v1/me/password", {
            "current_password": PASSWORD, "new_password": new})
        assert (status, body["error"]["code"]) == (400, "invalid")
        assert "new_password" in body["error"]["message"]
    assert await _login_status(node, alice, PASSWORD) == 200


async def test_logging_out_the_others_closes_their_sessions_with_4001_and_keeps_this_one(
        node: Node, alice: User) -> None:
    phone = await new_device(node, alice)
    laptop = await new_device(node, alice)
    async with connect(node.url, alice.token) as (mine, _), \
            connect(node.url, phone.token) as (phone_session, _), \
            connect(node.url, laptop.token) as (laptop_session, _):
        answer = await alice.rest.request("POST", "/api/v1/me/password", {
            "current_password": PASSWORD, "new_password": NEW_PASSWORD,
            "log_out_others": True})
        assert answer == {"devices_logged_out": 2}
        assert await close_code(phone_session) == 4001
        assert await close_code(laptop_session) == 4001
        assert await still_open(mine)
    assert await token_status(node.url, phone.token) == 401
    assert await token_status(node.url, laptop.token) == 401
    assert await token_status(node.url, alice.token) == 200
    listed = (await alice.rest.request("GET", "/api/v1/devices"))["devices"]
    assert [d["device_id"] for d in listed] == [alice.device_id]
    await phone.rest.aclose()
    await laptop.rest.aclose()


async def test_password_attempts_count_toward_the_login_limit(own_node: Node) -> None:
    own_node.env["CHATNODE_LIMITS_LOGIN_PER_MINUTE"] = "3"
    own_node.start()
    async with RestClient(own_node.url) as rest:
        await rest.register("limited", PASSWORD)  # one of the three
        wrong = {"current_password": "guess", "new_password": NEW_PASSWORD}
        statuses = [(await rest.call("POST", "/api/v1/me/password", wrong))[0]
                    for _ in range(3)]
        assert statuses == [403, 403, 429]
        # Even the right password waits its turn: guessing must not be cheaper here.
        status, body = await rest.call("POST", "/api/v1/me/password", {
            "current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert own_node.stop() == 0
