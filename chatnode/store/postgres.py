"""The PostgreSQL store of a cluster: connections, the schema and its migrations, and (so far)
the accounts and invites the admin CLI manages. Every SQL statement it runs lives in this file.

This module is the only one that imports psycopg, and it is imported only when the config names
a PostgreSQL store, so a single node never loads it (`pip install chatnode[cluster]` brings
it). Connections are psycopg's synchronous ones: the node will drive them from worker threads
with trio.to_thread.run_sync, because psycopg's async API runs only on asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib import resources
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.conninfo import conninfo_to_dict

from ..protocol import ChatError, ErrorCode
from . import pg_search
from .check import CheckReport, check_log
from .errors import StoreError
from .records import InviteRecord, UserRecord
from .sqlite import Role, new_id, now_ms

Connection = psycopg.Connection[tuple[Any, ...]]

# schema_pg.sql is version 2, SQLite's schema.sql with its migration 2, so the two stores keep
# the same version numbers. Each entry takes the schema one version further, from 2 on, and is
# SQLite's migration of the same number in PostgreSQL's types.
# A step is SQL, or a function for a step that needs Python (search's index_text).
MIGRATIONS: list[str | Callable[[Connection], None]] = [
    # 3: account self-service, as SQLite's migration 3.
    """
    ALTER TABLE devices ADD COLUMN last_seen BIGINT;
    ALTER TABLE users ADD COLUMN avatar_id TEXT;
    CREATE INDEX users_by_avatar ON users (avatar_id) WHERE avatar_id IS NOT NULL;
    """,
    # 4: the search index (pg_search.py, SQLite's is FTS5), filled from the log already there.
    pg_search.create_index,
    # 5: node-wide roles and invites, as SQLite's migration 5.
    """
    ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
        CHECK (role IN ('user', 'admin'));
    CREATE TABLE invites (
        invite_id   TEXT PRIMARY KEY,
        token_hash  BYTEA NOT NULL UNIQUE,
        max_uses    INTEGER NOT NULL,
        uses        INTEGER NOT NULL DEFAULT 0,
        makes_admin BOOLEAN NOT NULL DEFAULT FALSE,
        created_by  TEXT REFERENCES users (user_id),
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        revoked_at  BIGINT
    );
    """,
    # 6: each search row holds its conversation as a lexeme (pg_search.SCOPE_MARK), so that a
    # search is narrowed to the reader's conversations inside the GIN index.
    "UPDATE message_search SET words ="
    f" words || array_to_tsvector(ARRAY['{pg_search.SCOPE_MARK}' || conversation_id])",
]
BASE_VERSION = 2
SCHEMA_VERSION = BASE_VERSION + len(MIGRATIONS)
# The advisory lock that makes migrating one process's job at a time: whoever opens the store
# first creates or migrates it, the others wait on the lock, then find nothing left to do. Any
# fixed 64-bit number works as long as every chatnode uses the same one ("chatnode" in ASCII).
MIGRATION_LOCK = 0x636861746E6F6465
CONNECT_TIMEOUT_S = 10


# --- connections and schema ------------------------------------------------------------------

def describe(url: str) -> str:
    """host:port/database of a store URL, for messages: never its user or password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise StoreError("[store] url is not a valid PostgreSQL URL") from None
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _one_line(exc: BaseException) -> str:
    # libpq's messages run over several lines (a hint after a tab); the CLI prints one.
    return " ".join(str(exc).split())


def connect(url: str) -> Connection:
    """A connection in autocommit mode: transactions are explicit (`with conn.transaction()`)."""
    where = describe(url)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name="chatnode")
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store at {where}:"
                         f" {_one_line(exc)}") from None


def rowcount(cursor: psycopg.Cursor[Any]) -> int:
    """The rows a statement changed. In the writer's pipelined batch the answer is not back yet
    when execute() returns, and cursor.rowcount says -1 until it is: wait for it first. Every
    operation reads a count through here, never cursor.rowcount itself."""
    conn = cursor.connection
    if pipelined(conn):
        with conn.pipeline():  # leaving a nested pipeline waits for every answer so far
            pass
    return cursor.rowcount


def pipelined(conn: Connection) -> bool:
    """Whether statements on `conn` go out without waiting for their answers (the writer's
    plain batch)."""
    return conn.pgconn.pipeline_status != pq.PipelineStatus.OFF


def schema_version(conn: Connection) -> int:
    """0 for a database chatnode has never opened."""
    row = conn.execute("SELECT to_regclass('meta')").fetchone()
    if row is None or row[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def _set_version(conn: Connection, version: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),))


def migrate(conn: Connection) -> int:
    """Create or migrate the schema to SCHEMA_VERSION, in one transaction under the migration
    lock, so that nodes and admin commands starting together on an empty database all succeed
    and exactly one of them does the work. Returns the version it found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        found = schema_version(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"the PostgreSQL store has schema version {found}; this chatnode knows up to"
                f" {SCHEMA_VERSION}: upgrade chatnode")
        if found == 0:
            schema = resources.files("chatnode.store").joinpath("schema_pg.sql").read_text()
            # No parameters: psycopg sends the whole file as one multi-statement query.
            conn.execute(schema)
            _set_version(conn, BASE_VERSION)
        for version in range(max(found, BASE_VERSION), SCHEMA_VERSION):
            step = MIGRATIONS[version - BASE_VERSION]
            if callable(step):
                step(conn)
            else:
                conn.execute(step)
            _set_version(conn, version + 1)
    return found


def table_columns(conn: Connection) -> dict[str, list[str]]:
    """Every table's columns in order, as sqlite.table_columns gives SQLite's, and like it
    without the search index: each store builds its own (pg_search.py's here)."""
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name != 'message_search'"
            " ORDER BY table_name, ordinal_position"):
        columns.setdefault(table, []).append(column)
    return columns


def open_migrated(url: str) -> Connection:
    """Connect and bring the schema to this version: what every command does first."""
    conn = connect(url)
    try:
        migrate(conn)
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"cannot prepare the PostgreSQL store at {describe(url)}:"
                         f" {_one_line(exc)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


# --- users -----------------------------------------------------------------------------------

_USER_COLUMNS = (
    "user_id, username, display_name, password_hash, disabled, created_at, last_seen, avatar_id,"
    " role"
)


def insert_user(conn: Connection, username: str, display_name: str | None,
                password_hash: str, role: Role = "user") -> UserRecord:
    user = UserRecord(new_id("u"), username.lower(), display_name or username, password_hash,
                      False, now_ms(), None, None, role)
    try:
        conn.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (user.user_id, user.username, user.display_name, user.password_hash, False,
             user.created_at, None, None, role),
        )
    except errors.UniqueViolation:
        raise ChatError(ErrorCode.CONFLICT, f"username {username!r} is taken") from None
    return user


def list_users(conn: Connection) -> list[UserRecord]:
    # COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    rows = conn.execute(
        f'SELECT {_USER_COLUMNS} FROM users ORDER BY username COLLATE "C"').fetchall()
    return [UserRecord(*row) for row in rows]


def set_user_disabled(conn: Connection, username: str, disabled: bool) -> bool:
    cursor = conn.execute("UPDATE users SET disabled = %s WHERE username = %s",
                          (disabled, username.lower()))
    found = rowcount(cursor) == 1
    if disabled and found:
        note_accounts_changed(conn)
    return found


def reset_password(conn: Connection, user_id: str, password_hash: str) -> list[str] | None:
    """As sqlite.reset_password: a new password and every device logged out; None if there is
    no such user, else the ids of the devices logged out."""
    row = conn.execute("UPDATE users SET password_hash = %s WHERE user_id = %s"
                       " RETURNING user_id", (password_hash, user_id)).fetchone()
    if row is None:
        return None
    devices = sorted(r[0] for r in conn.execute(
        "UPDATE devices SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL"
        " RETURNING device_id", (now_ms(), user_id)))
    conn.execute("DELETE FROM push_targets WHERE device_id = ANY(%s::text[])", (devices,))
    note_accounts_changed(conn)
    return devices


def note_accounts_changed(conn: Connection) -> None:
    """As sqlite.note_accounts_changed: every node polls the count (account_watch.py)."""
    conn.execute("INSERT INTO meta (key, value) VALUES ('accounts_changed', '1')"
                 " ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text")


# --- chatnode check --------------------------------------------------------------------------

def check_store(url: str) -> CheckReport:
    """`chatnode check` on a cluster's store: the log's checks of check.py, in one read-only
    snapshot (REPEATABLE READ), so nodes writing meanwhile cannot make a gap appear. Never
    creates or migrates anything. PostgreSQL's own page checks are its amcheck extension's."""
    where = describe(url)
    conn = connect(url)
    try:
        with _one_line_failures(where):
            if schema_version(conn) == 0:
                raise StoreError(f"no chatnode store at {where} (the database is empty)")
            report = CheckReport()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                check_log(conn, report, "%s")
            return report
    finally:
        conn.close()
def reindex(url: str) -> int:
    """`chatnode reindex` on a cluster's store: pg_search.rebuild in one transaction; the
    number of messages indexed. Nodes may be running (see rebuild)."""
    where = describe(url)
    conn = open_migrated(url)
    try:
        with _one_line_failures(where), conn.transaction():
            return pg_search.rebuild(conn)
    finally:
        conn.close()


def set_user_role(conn: Connection, username: str, role: Role) -> bool:
    cursor = conn.execute("UPDATE users SET role = %s WHERE username = %s",
                          (role, username.lower()))
    return rowcount(cursor) == 1


# --- invites ---------------------------------------------------------------------------------

_INVITE_COLUMNS = ("i.invite_id, i.max_uses, i.uses, i.makes_admin, u.username, i.created_at,"
                   " i.expires_at, i.revoked_at")


def insert_invite(conn: Connection, token_hash: bytes, max_uses: int, makes_admin: bool,
                  created_by: str | None, expires_at: int) -> str:
    invite_id = new_id("i")
    conn.execute(
        "INSERT INTO invites (invite_id, token_hash, max_uses, makes_admin, created_by,"
        " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (invite_id, token_hash, max_uses, makes_admin, created_by, now_ms(), expires_at))
    return invite_id


def list_invites(conn: Connection) -> list[InviteRecord]:
    rows = conn.execute(
        f"SELECT {_INVITE_COLUMNS} FROM invites AS i LEFT JOIN users AS u"
        ' ON u.user_id = i.created_by ORDER BY i.created_at, i.invite_id COLLATE "C"').fetchall()
    return [InviteRecord(*row) for row in rows]


def revoke_invite(conn: Connection, invite_id: str) -> bool:
    cursor = conn.execute(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, %s) WHERE invite_id = %s",
        (now_ms(), invite_id))
    return rowcount(cursor) == 1


# --- the admin CLI's handle ------------------------------------------------------------------

class PostgresUserAdmin:
    """store.admin.UserAdmin on PostgreSQL: one connection, one transaction per command."""

    def __init__(self, url: str) -> None:
        self._where = describe(url)
        self._conn = open_migrated(url)

    def add_user(self, username: str, display_name: str | None, password_hash: str,
                 role: Role = "user") -> UserRecord:
        with self._failures(), self._conn.transaction():
            return insert_user(self._conn, username, display_name, password_hash, role)

    def list_users(self) -> list[UserRecord]:
        with self._failures():
            return list_users(self._conn)

    def set_user_disabled(self, username: str, disabled: bool) -> bool:
        with self._failures(), self._conn.transaction():
            return set_user_disabled(self._conn, username, disabled)

    def set_user_role(self, username: str, role: Role) -> bool:
        with self._failures(), self._conn.transaction():
            return set_user_role(self._conn, username, role)

    def reset_password(self, username: str, password_hash: str) -> list[str] | None:
        with self._failures(), self._conn.transaction():
            row = self._conn.execute(
                "SELECT user_id FROM users WHERE username = %s", (username.lower(),)).fetchone()
            return None if row is None else reset_password(self._conn, row[0], password_hash)

    def add_invite(self, token_hash: bytes, max_uses: int, makes_admin: bool,
                   expires_at: int) -> str:
        with self._failures(), self._conn.transaction():
            return insert_invite(self._conn, token_hash, max_uses, makes_admin, None, expires_at)

    def list_invites(self) -> list[InviteRecord]:
        with self._failures():
            return list_invites(self._conn)

    def revoke_invite(self, invite_id: str) -> bool:
        with self._failures(), self._conn.transaction():
            return revoke_invite(self._conn, invite_id)

    def close(self) -> None:
        self._conn.close()

    def _failures(self) -> AbstractContextManager[None]:
        return _one_line_failures(self._where)


@contextmanager
def _one_line_failures(where: str) -> Iterator[None]:
    """A database failure in the middle of a command (the server went away) becomes the one-line
    StoreError the CLI prints, instead of a traceback."""
    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"the PostgreSQL store at {where} failed: {_one_line(exc)}") from None
