"""Issue 10's accounts on a real two-node cluster (PostgreSQL + Redis): registration by invite,
races for one invite and one username through both nodes, a password change, and the account
changes that must reach a user's sessions on the other node: a device logged out, a profile
changed, a password reset by an admin, an account disabled."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from chatnode.client import RestClient, Session, connect

from ..conftest import PASSWORD, Node
from ..integration.account_helpers import close_code, still_open, token_status
from ..redis_server import Redis
from .cli import run
from .two_nodes import two_nodes

ADMIN = "root"


async def register(node: Node, username: str, invite: str) -> tuple[int, Any]:
    async with RestClient(node.url) as rest:
        return await rest.call("POST", "/api/v1/register", {
            "username": username, "password": PASSWORD, "invite": invite})


async def hits(rest: RestClient, query: str) -> list[tuple[str, int]]:
    found = await rest.request("GET", "/api/v1/search", params={"q": query})
    return [(h["conversation_id"], h["seq"]) for h in found["hits"]]


async def both_at_once(*calls: Any) -> list[Any]:
    """Run the calls concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]

    async with trio.open_nursery() as nursery:
        for i in range(len(calls)):
            nursery.start_soon(one, i)
    return results


async def logged_in(node: Node, username: str, password: str = PASSWORD) -> RestClient:
    rest = RestClient(node.url)
    await rest.login(username, password)
    return rest


@contextlib.asynccontextmanager
async def session(node: Node, rest: RestClient) -> AsyncIterator[Session]:
    assert rest.token is not None
    async with connect(node.url, rest.token) as (live, _):
        yield live


async def test_invites_and_account_changes_hold_across_two_nodes(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    with two_nodes(tmp_path, pg_url, redis_server.url,
                   env={"CHATNODE_REGISTRATION": "invite"}) as cluster:
        one, two = cluster.nodes
        added = run("user", "add", ADMIN, "--password", PASSWORD, "--admin", "--config",
                    str(tmp_path / "one.toml"))
        assert added.returncode == 0, added.stderr
        admin = await logged_in(one, ADMIN)

        # One single-use invite, used through both nodes at once: one account.
        invite = await admin.request("POST", "/api/v1/invites", {})
        results = await both_at_once(register(one, "ann", invite["token"]),
                                     register(two, "ben", invite["token"]))
        assert sorted(status for status, _ in results) == [201, 403]
        (winner,) = [name for name, (status, _) in zip(("ann", "ben"), results, strict=True)
                     if status == 201]
        assert (await admin.request("GET", "/api/v1/invites"))["invites"][0]["state"] == "used"

        # One username taken through both nodes at once with two invites: one wins, the
        # other is `conflict`, and its invite is not used up.
        first, second = [await admin.request("POST", "/api/v1/invites", {}) for _ in range(2)]
        results = await both_at_once(register(one, "cleo", first["token"]),
                                     register(two, "cleo", second["token"]))
        assert sorted(status for status, _ in results) == [201, 409]
        left = {i["invite_id"]: i["uses_left"]
                for i in (await admin.request("GET", "/api/v1/invites"))["invites"]}
        assert sorted([left[first["invite_id"]], left[second["invite_id"]]]) == [0, 1]

        # The winner's phone on node one, laptop on node two, a friend's session on node two.
        phone, laptop = await logged_in(one, winner), await logged_in(two, winner)
        cleo = await logged_in(two, "cleo")
        me = await phone.request("GET", "/api/v1/me")
        cid = (await cleo.direct(me["user_id"]))["conversation_id"]

        # Search on PostgreSQL: written through node one, found through node two, and after
        # an edit the new words are found and the old ones not.
        sent = await phone.send(cid, "Meet at the Ölmühle café", client_msg_id="plan")
        assert await hits(cleo, "olmuhle") == [(cid, sent["seq"])]
        await phone.request("POST", f"/api/v1/conversations/{cid}/messages", {
            "client_msg_id": "plan-edit", "kind": "edit", "target": sent["seq"],
            "body": "Meet at the harbour"})
        assert await hits(cleo, "olmuhle") == []
        assert await hits(cleo, "harbour") == [(cid, sent["seq"])]
        async with session(one, phone) as phone_live, session(two, laptop) as laptop_live, \
                session(two, cleo) as cleo_live:
            # A device logged out through node one: its session on node two closes with 4001.
            (laptop_id,) = [d["device_id"] for d in
                            (await laptop.request("GET", "/api/v1/devices"))["devices"]
                            if d["current"]]
            listed = (await phone.request("GET", "/api/v1/devices"))["devices"]
            assert laptop_id in [d["device_id"] for d in listed]
            await phone.request("DELETE", f"/api/v1/devices/{laptop_id}")
            assert await close_code(laptop_live) == 4001
            assert await token_status(two.url, laptop.token or "") == 401
            assert await still_open(phone_live)

            # A profile change through node one reaches the friend on node two.
            await phone.request("PATCH", "/api/v1/me", {"display_name": "Ann Winner"})
            updated, _ = await cleo_live.until(lambda f: f.get("type") == "user_updated")
            assert (updated["user_id"], updated["display_name"]) == (me["user_id"],
                                                                     "Ann Winner")

            # A password change through node two: the old password stops working.
            changed = await RestClient(two.url, phone.token).request(
                "POST", "/api/v1/me/password",
                {"current_password": PASSWORD, "new_password": "a new long password 42"})
            assert changed["devices_logged_out"] == 0
            async with RestClient(one.url) as rest:
                status, _ = await rest.call("POST", "/api/v1/login",
                                            {"username": winner, "password": PASSWORD})
            assert status == 401
            await (await logged_in(one, winner, "a new long password 42")).aclose()

            # An admin gives cleo a new password through node one: every device of hers is
            # logged out (registration's and node two's), her session on node two closes
            # with 4001, and only the new password logs in.
            cleo_id = (await cleo.request("GET", "/api/v1/me"))["user_id"]
            reset = await admin.request("POST", f"/api/v1/users/by-id/{cleo_id}/password",
                                        {"new_password": "cleo's new password"})
            assert reset == {"devices_logged_out": 2}
            assert await close_code(cleo_live) == 4001
            assert await token_status(two.url, cleo.token or "") == 401
            cleo_again = await logged_in(two, "cleo", "cleo's new password")

            # An admin disables the account through node one: the session is node one's,
            # and cleo's account on node two is disabled too: both close with 4001.
            await admin.request("PATCH", f"/api/v1/users/by-id/{me['user_id']}",
                                {"disabled": True})
            assert await close_code(phone_live) == 4001
            async with session(two, cleo_again) as cleo_live:
                await admin.request("PATCH", f"/api/v1/users/by-id/{cleo_id}",
                                    {"disabled": True})
                assert await close_code(cleo_live) == 4001
        for rest in (admin, phone, laptop, cleo, cleo_again):
            await rest.aclose()


async def test_the_admin_cli_on_the_shared_store_ends_sessions_on_every_node(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    """`chatnode user password` and `user disable` write PostgreSQL from a process of their
    own: each node notices the change itself (account_watch.py) and closes its sessions."""
    with two_nodes(tmp_path, pg_url, redis_server.url) as cluster:
        one, two = cluster.nodes
        config = str(tmp_path / "one.toml")
        for name in ("dora", "eli"):
            added = run("user", "add", name, "--password", PASSWORD, "--config", config)
            assert added.returncode == 0, added.stderr
        phone, laptop, eli = (await logged_in(one, "dora"), await logged_in(two, "dora"),
                              await logged_in(two, "eli"))
        async with session(one, phone) as phone_live, session(two, laptop) as laptop_live, \
                session(two, eli) as eli_live:
            reset = run("user", "password", "dora", "--password-stdin", "--config", config,
                        stdin="a new long password 42\n")
            assert reset.returncode == 0, reset.stderr
            assert reset.stdout.strip() == "new password for dora; logged out 2 devices"
            assert await close_code(phone_live) == 4001
            assert await close_code(laptop_live) == 4001
            assert await still_open(eli_live)
        dora = await logged_in(two, "dora", "a new long password 42")
        async with session(two, dora) as dora_live:
            disabled = run("user", "disable", "dora", "--config", config)
            assert disabled.returncode == 0, disabled.stderr
            assert await close_code(dora_live) == 4001
        for rest in (phone, laptop, eli, dora):
            await rest.aclose()
