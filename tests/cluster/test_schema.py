"""The PostgreSQL schema: created by whichever process opens the store first, exactly once
even when several start together, and left alone when it is already current."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.pg_server import Postgres

from .cli import refused_in_one_line, run

# Connects first, then waits for a moment shared by every process, so that their migrations
# start together instead of one after the other's interpreter start-up.
RACER = """
import sys, time
from chatnode.store import postgres
conn = postgres.connect(sys.argv[2])
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print("FOUND", postgres.migrate(conn), postgres.schema_version(conn))
"""


def _dump(postgres: Postgres, url: str) -> str:
    """The whole database, schema and rows, as pg_dump writes it, less the random key of its
    \\restrict lines (new in the 2025 releases), which differs on every run."""
    dump = postgres.tool("pg_dump", url.rsplit("/", 1)[1])
    return "\n".join(line for line in dump.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def _version(url: str) -> int:
    from chatnode.store import postgres

    conn = postgres.connect(url)
    try:
        return postgres.schema_version(conn)
    finally:
        conn.close()


def test_two_processes_migrating_an_empty_database_at_once_both_succeed(pg_url: str) -> None:
    from chatnode.store import postgres

    start = time.time() + 2.0
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(start), pg_url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in racers]
    for racer, (_, stderr) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, stderr
    found = sorted(tuple(map(int, out.split()[1:])) for out, _ in outputs)
    # One created the schema (it found none); the other waited on the lock and found it done.
    assert found == [(0, postgres.SCHEMA_VERSION), (postgres.SCHEMA_VERSION,
                                                   postgres.SCHEMA_VERSION)]
    assert _version(pg_url) == postgres.SCHEMA_VERSION


def test_two_admin_commands_started_together_on_an_empty_database_both_succeed(
        pg_url: str) -> None:
    from chatnode.store import postgres

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATNODE_")}
    env["CHATNODE_STORE_URL"] = pg_url
    adds = [subprocess.Popen([sys.executable, "-m", "chatnode", "user", "add", name,
                              "--password", f"{name}pass12"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name in ("fay", "gil")]
    outputs = [p.communicate(timeout=60) for p in adds]
    for add, (_, stderr) in zip(adds, outputs, strict=True):
        assert add.returncode == 0, stderr
    listed = run("user", "list", env={"CHATNODE_STORE_URL": pg_url}).stdout.split()
    assert "fay" in listed and "gil" in listed
    assert _version(pg_url) == postgres.SCHEMA_VERSION


def test_migrating_a_current_database_again_changes_nothing(postgres: Postgres,
                                                            pg_url: str) -> None:
    from chatnode.store import postgres as pg

    env = {"CHATNODE_STORE_URL": pg_url}
    assert run("user", "add", "erin", "--password", "erinpass1", env=env).returncode == 0
    before = _dump(postgres, pg_url)
    conn = pg.connect(pg_url)
    try:
        assert pg.migrate(conn) == pg.SCHEMA_VERSION
    finally:
        conn.close()
    assert run("user", "list", env=env).returncode == 0  # every command opens, so migrates
    assert _dump(postgres, pg_url) == before
    assert "CREATE TABLE public.push_targets" in before and "erin" in before
    assert _version(pg_url) == pg.SCHEMA_VERSION


def test_a_store_with_a_newer_schema_is_refused_in_one_line(pg_url: str) -> None:
    from chatnode.store import postgres

    conn = postgres.open_migrated(pg_url)
    try:
        postgres._set_version(conn, postgres.SCHEMA_VERSION + 1)  # a later chatnode was here
    finally:
        conn.close()
    line = refused_in_one_line(run("user", "list", env={"CHATNODE_STORE_URL": pg_url}))
    assert f"schema version {postgres.SCHEMA_VERSION + 1}" in line
    assert "upgrade chatnode" in line
    assert _version(pg_url) == postgres.SCHEMA_VERSION + 1


def test_postgresql_has_the_tables_and_columns_of_a_migrated_sqlite_store(
        pg_url: str, tmp_path: Path) -> None:
    from chatnode.store import postgres
    from chatnode.store import sqlite as sql

    lite = sql.open_database(tmp_path / "data")
    conn = postgres.open_migrated(pg_url)
    try:
        assert sql.SCHEMA_VERSION == postgres.SCHEMA_VERSION
        assert postgres.table_columns(conn) == sql.table_columns(lite)
        assert "push_preview" in postgres.table_columns(conn)["users"]
        assert "role" in postgres.table_columns(conn)["users"]  # migration 3
        assert "invites" in postgres.table_columns(conn)
    finally:
        conn.close()
        lite.close()
