"""My devices: listed with the current one marked, and logging one out from another."""

from __future__ import annotations

import sqlite3

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, User, new_device
from .account_helpers import close_code, still_open, token_status


async def test_devices_are_listed_oldest_first_with_the_current_one_marked(
        node: Node, alice: User) -> None:
    async with RestClient(node.url) as phone:
        auth = await phone.login(alice.username, PASSWORD, "Alice's phone")
        listed = (await alice.rest.request("GET", "/api/v1/devices"))["devices"]
        assert [d["device_id"] for d in listed] == [alice.device_id, auth["device_id"]]
        assert [d["name"] for d in listed] == ["registration", "Alice's phone"]
        assert [d["current"] for d in listed] == [True, False]
        for device in listed:
            assert device["last_seen"] >= device["created_at"] > 0
        from_phone = (await phone.request("GET", "/api/v1/devices"))["devices"]
        assert [d["current"] for d in from_phone] == [False, True]


async def test_a_device_with_a_live_session_was_last_seen_now(node: Node, alice: User) -> None:
    phone = await new_device(node, alice)
    before = (await alice.rest.request("GET", "/api/v1/devices"))["devices"][1]["last_seen"]
    async with connect(node.url, phone.token) as (_, frames):
        now = frames[0]["server_time"]
        listed = (await alice.rest.request("GET", "/api/v1/devices"))["devices"]
        assert listed[1]["last_seen"] >= now >= before
    await phone.rest.aclose()


async def test_logging_out_a_device_closes_its_session_with_4001_and_keeps_the_others(
        node: Node, alice: User) -> None:
    phone = await new_device(node, alice)
    laptop = await new_device(node, alice)
    async with connect(node.url, phone.token) as (phone_session, _), \
            connect(node.url, laptop.token) as (laptop_session, _):
        left = await alice.rest.request("DELETE", f"/api/v1/devices/{phone.device_id}")
        assert await close_code(phone_session) == 4001
        assert await token_status(node.url, phone.token) == 401
        assert await still_open(laptop_session)
        assert await token_status(node.url, laptop.token) == 200
    assert [d["device_id"] for d in left["devices"]] == [alice.device_id, laptop.device_id]
    listed = (await alice.rest.request("GET", "/api/v1/devices"))["devices"]
    assert phone.device_id not in {d["device_id"] for d in listed}
    # Gone is gone: a second time is 404, like a device that never was.
    status, body = await alice.rest.call("DELETE", f"/api/v1/devices/{phone.device_id}")
    assert (status, body["error"]["code"]) == (404, "not_found")
    await phone.rest.aclose()
    await laptop.rest.aclose()


async def test_another_users_device_is_not_found_and_stays_logged_in(
        node: Node, alice: User, bob: User) -> None:
    async with connect(node.url, bob.token) as (bobs_session, _):
        status, body = await alice.rest.call("DELETE", f"/api/v1/devices/{bob.device_id}")
        unknown_status, unknown = await alice.rest.call("DELETE",
                                                        "/api/v1/devices/d_0000000000000000")
        assert (status, body) == (unknown_status, unknown)
        assert (status, body["error"]["code"]) == (404, "not_found")
        assert await still_open(bobs_session)
    assert await token_status(node.url, bob.token) == 200


async def test_logging_out_a_device_removes_its_push_target(node: Node, alice: User) -> None:
    phone = await new_device(node, alice)
    target = {"kind": "ntfy", "endpoint": "https://ntfy.example/chatnode-account-test"}
    await phone.rest.request("PUT", "/api/v1/devices/me/push", target)
    assert _push_targets(node, phone.device_id) == 1
    await alice.rest.request("DELETE", f"/api/v1/devices/{phone.device_id}")
    assert _push_targets(node, phone.device_id) == 0
    await phone.rest.aclose()


def _push_targets(node: Node, device_id: str) -> int:
    """Read from the node's own file: a revoked token can no longer ask."""
    conn = sqlite3.connect(f"file:{node.data_dir / 'chatnode.db'}?mode=ro", uri=True)
    try:
        (count,) = conn.execute("SELECT count(*) FROM push_targets WHERE device_id = ?",
                                (device_id,)).fetchone()
    finally:
        conn.close()
    return int(count)
