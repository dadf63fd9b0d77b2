"""`chatnode check --config FILE` on a cluster's PostgreSQL store: the same checks and words as
on SQLite, and an empty database is said to be one, not checked into a false OK."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli import refused_in_one_line, run, write_config

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")


def test_check_on_postgresql_names_a_gap_and_a_marker_beyond_the_log(
        pg_url: str, tmp_path: Path) -> None:
    from chatnode.store import pg_ops, postgres

    conn = postgres.open_migrated(pg_url)
    alice = pg_ops.insert_user(conn, "alice", None, "h").user_id
    bob = pg_ops.insert_user(conn, "bob", None, "h").user_id
    record, _ = pg_ops.insert_conversation(conn, "group", "g", alice, [bob])
    cid = record.conversation_id
    for i in range(3):
        pg_ops.append_message(conn, cid, alice, f"m{i}", "text", "x", None, None, None)
    # (a healthy store's "store OK" is checked after the story of test_serve_on_postgres)
    config = write_config(tmp_path / "c.toml", pg_url)
    conn.execute("DELETE FROM messages WHERE conversation_id = %s AND seq = 2", (cid,))
    conn.execute("UPDATE members SET last_delivered_seq = 9 WHERE user_id = %s", (bob,))
    conn.close()
    damaged = run("check", "--config", str(config))
    assert damaged.returncode == 1
    assert f"problem: conversation {cid}: 1 seq(s) missing from its log of 1..3: 2" in (
        damaged.stdout)
    assert (f"problem: conversation {cid}, member {bob}: delivered marker 9 is beyond the"
            " conversation's last seq 3") in damaged.stdout
    assert "store has 2 problem(s)" in damaged.stdout


def test_check_on_an_empty_postgresql_database_says_there_is_no_store(
        pg_url: str, tmp_path: Path) -> None:
    line = refused_in_one_line(run("check", "--config",
                                   str(write_config(tmp_path / "c.toml", pg_url))))
    assert "no chatnode store at 127.0.0.1:" in line and "the database is empty" in line
