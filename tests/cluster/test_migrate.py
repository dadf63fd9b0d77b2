"""`chatnode migrate --from DATA_DIR --config FILE`: a real single node's store, made by a real
node over real sockets, moved whole into a real PostgreSQL, checked row by row."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from chatnode.client import RestClient, connect
from chatnode.store import sqlite as sql
from chatnode.store.transfer import COPIED_TABLES, NOT_COPIED, sqlite_tables

from ..conftest import PASSWORD, Node, new_device, new_user, of_type
from ..redis_server import Redis
from .cli import refused_in_one_line, run, write_config


def sqlite_rows(data_dir: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(data_dir / sql.DB_FILE)
    try:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        return sorted(conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall(),
                      key=repr)
    finally:
        conn.close()


def postgres_rows(url: str, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    # As SQLite keeps them: flags as 0/1, bytes as bytes.
    return sorted((tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows),
                  key=repr)


def nothing_in(url: str) -> bool:
    """Not even a schema: the refusals come before PostgreSQL is touched."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass('users') IS NULL").fetchone()
    return row is not None and row[0] is True


def columns_of(data_dir: Path, table: str) -> list[str]:
    conn = sqlite3.connect(data_dir / sql.DB_FILE)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


async def make_a_world(node: Node) -> dict[str, Any]:
    """Three users (one with two devices), a direct chat and a group, messages with replies,
    an edit and a reaction, markers moved by delivered and read."""
    alice, bob, carol = [await new_user(node, p) for p in ("alice", "bob", "carol")]
    phone = await new_device(node, bob)
    direct = await alice.rest.direct(bob.user_id)
    group = await alice.rest.group("club", [bob.user_id, carol.user_id])
    async with connect(node.url, alice.token) as (a, _), connect(node.url, bob.token) as (b, _):
        for i in range(5):
            await a.send_text(direct["conversation_id"], f"hello {i}")
            await a.send_text(group["conversation_id"], f"club {i}")
        for _ in range(10):
            await a.until_type("sent")
        await b.delivered(direct["conversation_id"], 5)
        await b.read(group["conversation_id"], 3)
        await b.until(lambda f: f["type"] == "status_update"
                      and f["conversation_id"] == group["conversation_id"]
                      and f["my_read_seq"] == 3)
    for user in (alice, bob, carol, phone):
        await user.rest.aclose()
    return {"alice": alice, "bob": bob, "phone": phone, "direct": direct, "group": group}


async def test_a_node_is_moved_whole_into_postgresql(own_node: Node, pg_url: str,
                                                     tmp_path: Path) -> None:
    own_node.start()
    await make_a_world(own_node)
    own_node.stop()
    made = run("invite", "create", "--uses", "2", "--data-dir", str(own_node.data_dir))
    assert made.returncode == 0, made.stderr
    config = write_config(tmp_path / "cluster.toml", pg_url, "redis://127.0.0.1:1/0",
                          data_dir=tmp_path / "cluster-node")

    moved = run("migrate", "--from", str(own_node.data_dir), "--config", str(config))

    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("moved 3 users, 1 invites, 4 devices, 2 conversations,")
    for table in COPIED_TABLES:
        columns = columns_of(own_node.data_dir, table)
        assert postgres_rows(pg_url, table, columns) == sqlite_rows(own_node.data_dir, table), \
            table


async def test_migrate_refuses_a_store_that_is_not_empty_and_moves_nothing_twice(
        own_node: Node, pg_url: str, tmp_path: Path) -> None:
    own_node.start()
    await make_a_world(own_node)
    own_node.stop()
    config = str(write_config(tmp_path / "c.toml", pg_url, data_dir=tmp_path / "x"))
    assert run("migrate", "--from", str(own_node.data_dir), "--config", config).returncode == 0

    again = refused_in_one_line(run("migrate", "--from", str(own_node.data_dir),
                                    "--config", config))

    assert "already holds users" in again
    assert len(postgres_rows(pg_url, "users", ["user_id"])) == 3


async def test_migrate_refuses_while_the_node_runs_and_without_a_postgresql_store(
        own_node: Node, pg_url: str, tmp_path: Path) -> None:
    own_node.start()
    await new_user(own_node)
    config = str(write_config(tmp_path / "c.toml", pg_url, data_dir=tmp_path / "x"))

    running = refused_in_one_line(run("migrate", "--from", str(own_node.data_dir),
                                      "--config", config))
    own_node.stop()
    no_store = refused_in_one_line(run(
        "migrate", "--from", str(own_node.data_dir),
        "--config", str(write_config(tmp_path / "s.toml", data_dir=tmp_path / "y"))))
    nothing_there = refused_in_one_line(run("migrate", "--from", str(tmp_path / "nowhere"),
                                            "--config", config))

    assert "in use by a running chatnode" in running
    assert "PostgreSQL store" in no_store
    assert "no store at" in nothing_there
    assert nothing_in(pg_url)


def test_every_table_of_the_single_node_store_is_moved_or_deliberately_left(
        tmp_path: Path) -> None:
    conn = sql.open_database(tmp_path)
    try:
        tables = sqlite_tables(conn)
    finally:
        conn.close()
    assert tables == set(COPIED_TABLES) | NOT_COPIED


async def test_after_the_move_a_device_reconnects_with_its_token_and_gets_exactly_what_it_missed(
        own_node: Node, pg_url: str, redis_server: Redis, tmp_path: Path) -> None:
    """The move as a client lives it: bob's device, away since seq 5 of both conversations,
    comes back to a node on PostgreSQL with the token and sync map it had, and gets the two
    messages it missed, once each; the upload among them is served from the shared media
    directory, search finds what was written before the move, and `chatnode check` passes."""
    own_node.start()
    world = await make_a_world(own_node)
    direct, group = world["direct"]["conversation_id"], world["group"]["conversation_id"]
    picture = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    async with RestClient(own_node.url, world["alice"].token) as alice:
        async with httpx.AsyncClient(base_url=own_node.url) as http:
            uploaded = (await http.post("/api/v1/media", content=picture, headers={
                "Authorization": f"Bearer {alice.token}", "Content-Type": "image/png"})).json()
        await alice.request("POST", f"/api/v1/conversations/{direct}/messages", {
            "client_msg_id": "pic", "kind": "media", "media_id": uploaded["media_id"]})
        await alice.send(group, "written before the move", client_msg_id="before-move")
    own_node.stop()
    config = tmp_path / "cluster.toml"
    config.write_text(f'data_dir = "{tmp_path / "cluster-node"}"\n[store]\nurl = "{pg_url}"\n'
                      f'media_dir = "{tmp_path / "shared-media"}"\n'
                      f'[bus]\nurl = "{redis_server.url}"\nprefix = "{tmp_path.name}"\n')

    moved = run("migrate", "--from", str(own_node.data_dir), "--config", str(config))

    assert moved.returncode == 0, moved.stderr
    assert "copied 1 upload files" in moved.stdout
    node = Node(tmp_path / "cluster-node", args=["--config", str(config)]).start()
    try:
        bob = world["bob"]
        async with connect(node.url, bob.token, sync={direct: 5, group: 5}) as (_, frames):
            missed = [(m["conversation_id"], m["seq"], m["kind"])
                      for m in of_type(frames, "message")]
        assert sorted(missed) == sorted([(direct, 6, "media"), (group, 6, "text")])
        async with httpx.AsyncClient(base_url=node.url) as http:
            served = await http.get(f"/api/v1/media/{uploaded['media_id']}",
                                    headers={"Authorization": f"Bearer {bob.token}"})
        assert (served.status_code, served.content) == (200, picture)
        async with RestClient(node.url) as rest:
            await rest.login(bob.username, PASSWORD)
            found = await rest.request("GET", "/api/v1/search?q=before%20the%20move")
        assert [(h["conversation_id"], h["seq"]) for h in found["hits"]] == [(group, 6)]
    finally:
        node.stop()
    checked = run("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
