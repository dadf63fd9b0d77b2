"""A real `chatnode serve --config FILE` on a real PostgreSQL: the same story as on SQLite (send,
receive, ticks, restart, catch-up), `chatnode check` on the result, and a database that goes
away under a running node and comes back.

The config names a bus (a PostgreSQL store needs one to start): the tests' own redis-server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chatnode.client import connect

from ..conftest import Node, User, new_user, of_type, whole_history
from ..pg_server import Postgres
from ..redis_server import Redis
from .cli import run


def stop_all(*nodes: Node) -> None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()


@pytest.fixture
def pg_node(pg_url: str, redis_server: Redis, tmp_path: Path) -> Iterator[Node]:
    node = node_on(pg_url, redis_server.url, tmp_path / "node.toml", tmp_path / "data")
    yield node
    stop_all(node)


def node_on(pg_url: str, bus_url: str, config: Path, data_dir: Path, *extra: str) -> Node:
    config.write_text("\n".join(["[store]", f'url = "{pg_url}"', *extra, "[bus]",
                                 f'url = "{bus_url}"', f'prefix = "{data_dir.parent.name}"'])
                      + "\n")
    return Node(data_dir, args=["--config", str(config)])


async def direct(user: User, other: User) -> str:
    return str((await user.rest.direct(other.user_id))["conversation_id"])


async def test_a_node_on_postgresql_sends_delivers_ticks_and_catches_up_after_a_restart(
        pg_node: Node, pg_url: str, tmp_path: Path) -> None:
    node = pg_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = await direct(alice, bob)
    async with connect(node.url, alice.token) as (a, _), connect(node.url, bob.token) as (b, _):
        for i in range(3):
            await a.send_text(cid, f"hello {i}", client_msg_id=f"m{i}")
        sents = [(await a.until_type("sent"))[0] for _ in range(3)]
        assert [s["seq"] for s in sents] == [1, 2, 3]
        got = [(await b.until_type("message"))[0] for _ in range(3)]
        assert [(m["seq"], m["body"]) for m in got] == [(1, "hello 0"), (2, "hello 1"),
                                                        (3, "hello 2")]
        # a retry of a committed send is the original, not a fourth message
        await a.send_text(cid, "hello again", client_msg_id="m1")
        again, _ = await a.until_type("sent")
        assert again["seq"] == 2
        await b.delivered(cid, 3)
        await b.read(cid, 2)
        status, _ = await a.until(lambda f: f["type"] == "status_update"
                                  and f["last_read_seq"] == 2)
        assert (status["last_seq"], status["last_delivered_seq"]) == (3, 3)

    assert pg_node.stop() == 0
    node = pg_node.restart()
    async with connect(node.url, alice.token) as (a, frames):
        [status] = of_type(frames, "status_update")
        assert (status["last_seq"], status["last_delivered_seq"], status["last_read_seq"]) == (
            3, 3, 2)
        await a.send_text(cid, "after the restart", client_msg_id="m3")
        sent, _ = await a.until_type("sent")
        assert sent["seq"] == 4
    async with connect(node.url, bob.token, sync={cid: 3}) as (b, frames):
        assert [(m["seq"], m["body"]) for m in of_type(frames, "message")] == [
            (4, "after the restart")]
    assert [m["seq"] for m in await whole_history(alice, cid)] == [1, 2, 3, 4]

    config = tmp_path / "node.toml"
    checked = run("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "store OK: 1 conversations, 4 messages, 2 memberships" in checked.stdout


async def healthz(node: Node) -> int:
    return (await health(node)).status_code


async def health(node: Node) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{node.url}/healthz", timeout=20)


async def test_postgresql_stopping_under_a_node_fails_sends_with_internal_and_it_recovers(
        pg_node: Node, postgres: Postgres) -> None:
    node = pg_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = await direct(alice, bob)
    acknowledged: list[dict[str, Any]] = []
    async with connect(node.url, alice.token) as (a, _):
        await a.send_text(cid, "before", client_msg_id="before")
        acknowledged.append((await a.until_type("sent"))[0])
        postgres.stop("fast")
        try:
            await a.send_text(cid, "while down", client_msg_id="down")
            error, _ = await a.until_type("error", timeout=30)
            assert error["code"] == "internal" and error["ref"] == "down"
            answer = await health(node)
            assert answer.status_code == 503
            # anyone may ask: the reason names nothing of the database's network
            assert answer.json()["status"] == "unavailable"
            assert str(postgres.port) not in answer.text and "127.0.0.1" not in answer.text
        finally:
            postgres.start()
        # The node recovers by itself: the same session sends again, health is back.
        with trio.fail_after(30):
            while await healthz(node) != 200:
                await trio.sleep(0.2)
        await a.send_text(cid, "while down", client_msg_id="down")  # the client's retry
        await a.send_text(cid, "after", client_msg_id="after")
        for _ in range(2):
            sent, before = await a.until_type("sent")
            assert not of_type(before, "error"), before
            acknowledged.append(sent)
    assert [s["seq"] for s in acknowledged] == [1, 2, 3]
    history = await whole_history(bob, cid)
    assert [(m["seq"], m["client_msg_id"]) for m in history] == [
        (1, "before"), (2, "down"), (3, "after")]
    async with connect(node.url, bob.token) as (_, frames):
        assert [m["body"] for m in of_type(frames, "message")] == ["before", "while down",
                                                                  "after"]


async def test_an_upload_through_one_node_is_served_by_another_from_the_shared_media_dir(
        pg_url: str, redis_server: Redis, tmp_path: Path) -> None:
    shared = f'media_dir = "{tmp_path / "shared-media"}"'
    one = node_on(pg_url, redis_server.url, tmp_path / "one.toml", tmp_path / "one", shared)
    two = node_on(pg_url, redis_server.url, tmp_path / "two.toml", tmp_path / "two", shared)
    try:
        one.start()
        two.start()
        alice, bob = await new_user(one, "alice"), await new_user(one, "bob")
        cid = await direct(alice, bob)
        picture = os.urandom(200_000)
        async with httpx.AsyncClient() as http:
            uploaded = await http.post(f"{one.url}/api/v1/media", content=picture, headers={
                "Authorization": f"Bearer {alice.token}", "Content-Type": "image/png"})
            assert uploaded.status_code == 201, uploaded.text
            media_id = uploaded.json()["media_id"]
            await alice.rest.request("POST", f"/api/v1/conversations/{cid}/messages", {
                "client_msg_id": "pic", "kind": "media", "media_id": media_id})
            fetched = await http.get(f"{two.url}/api/v1/media/{media_id}",
                                     headers={"Authorization": f"Bearer {bob.token}"})
        assert fetched.status_code == 200 and fetched.content == picture
        assert fetched.headers["content-type"] == "image/png"
        assert not (tmp_path / "one" / "media").exists()
    finally:
        stop_all(one, two)


async def test_group_changes_and_message_kinds_on_postgresql_follow_the_same_rules(
        pg_node: Node) -> None:
    node = pg_node.start()
    alice, bob, carol = [await new_user(node, n) for n in ("alice", "bob", "carol")]
    cid = (await alice.rest.group("club", [bob.user_id]))["conversation_id"]
    path = f"/api/v1/conversations/{cid}"
    messages = f"{path}/messages"
    hello = await alice.rest.request("POST", messages, {"client_msg_id": "h", "body": "hello"})
    await alice.rest.request("POST", f"{path}/members", {"user_id": carol.user_id})
    status, body = await alice.rest.call("POST", f"{path}/members", {"user_id": carol.user_id})
    assert (status, body["error"]["code"]) == (409, "conflict")
    await alice.rest.request("PATCH", f"{path}/members/{bob.user_id}", {"role": "admin"})
    assert (await bob.rest.request("PATCH", path, {"name": "the club"}))["name"] == "the club"
    left = await bob.rest.request("DELETE", f"{path}/members/{carol.user_id}")
    assert carol.user_id not in {m["user_id"] for m in left["members"]}
    await bob.rest.request("POST", messages, {"client_msg_id": "r", "kind": "reaction",
                                              "target": hello["seq"], "body": "👍"})
    status, body = await bob.rest.call("POST", messages, {"client_msg_id": "e", "kind": "edit",
                                                          "target": hello["seq"], "body": "x"})
    assert (status, body["error"]["code"]) == (403, "forbidden")  # only the author edits
    await alice.rest.request("POST", messages, {"client_msg_id": "e", "kind": "edit",
                                                "target": hello["seq"], "body": "hello!"})
    await alice.rest.request("POST", messages, {"client_msg_id": "d", "kind": "delete",
                                                "target": hello["seq"]})
    status, body = await bob.rest.call("POST", messages, {"client_msg_id": "r2",
                                                          "kind": "reaction",
                                                          "target": hello["seq"], "body": "👍"})
    assert (status, body["error"]["code"]) == (400, "invalid")  # deleted: nothing to react to
    log = await whole_history(bob, cid)
    assert [(m["seq"], m["kind"]) for m in log] == [
        (1, "text"), (2, "system"), (3, "system"), (4, "system"), (5, "system"),
        (6, "reaction"), (7, "edit"), (8, "delete")]
    assert log[0]["body"] == ""  # a deleted message's text is gone from the log
