"""The SQLite store: every SQL statement chatnode runs lives in this file.

The plain functions at the top take a connection and do one thing; the node runs the writing
ones inside the group-commit writer thread and the reading ones on a pool of read connections,
and the admin CLI runs them directly on a connection of its own (SQLite's WAL lets it write
while a node is running on the same file; `busy_timeout` makes it wait its turn).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import trio

from ..invites import invite_refusal
from ..protocol import ChatError, ErrorCode, Message
from . import checkpoint as wal
from . import group_rules
from . import search as search_index
from .checkpoint import WAL_SIZE_LIMIT_BYTES, CheckpointResult, tune_write_connection
from .records import (
    CatchupRange,
    ConversationRecord,
    DeviceAuth,
    DeviceRecord,
    InviteRecord,
    MemberRecord,
    PushTargetRecord,
    UserRecord,
)
from .transactions import SqliteTransactions
from .writer import GroupCommitWriter, Job

DB_FILE = "chatnode.db"
# Each entry takes the schema one version further (from 1 to 2, 2 to 3, …); schema.sql is
# version 1. A data directory is migrated when the node opens it, each step in a transaction.
MIGRATIONS = [
    # 2: where to wake each device (one push target per device), and how much a push may say.
    """
    CREATE TABLE push_targets (
        device_id  TEXT PRIMARY KEY REFERENCES devices (device_id),
        user_id    TEXT NOT NULL REFERENCES users (user_id),
        kind       TEXT NOT NULL CHECK (kind IN ('webpush', 'unifiedpush', 'ntfy')),
        endpoint   TEXT NOT NULL,
        p256dh     TEXT,                             -- webpush: the browser's key and secret
        auth       TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX push_targets_by_user ON push_targets (user_id);
    ALTER TABLE users ADD COLUMN push_preview TEXT NOT NULL DEFAULT 'full';
    """,
    # 3: account self-service: when each device was last seen, and each user's avatar (an
    # upload in media, kept while it is the avatar).
    """
    ALTER TABLE devices ADD COLUMN last_seen INTEGER;
    ALTER TABLE users ADD COLUMN avatar_id TEXT;
    CREATE INDEX users_by_avatar ON users (avatar_id) WHERE avatar_id IS NOT NULL;
    """,
    # 4: the search index (store/search.py), filled from the log already there.
    search_index.CREATE_INDEX + search_index.FILL_INDEX,
    # 5: node-wide roles (admins make invites and disable users), and invites, which replace
    # open registration. Only a hash of an invite's token is kept, as for device tokens.
    """
    ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
        CHECK (role IN ('user', 'admin'));
    CREATE TABLE invites (
        invite_id   TEXT PRIMARY KEY,
        token_hash  BLOB NOT NULL UNIQUE,
        max_uses    INTEGER NOT NULL,
        uses        INTEGER NOT NULL DEFAULT 0,
        makes_admin INTEGER NOT NULL DEFAULT 0,
        created_by  TEXT REFERENCES users (user_id),  -- NULL: made with the admin CLI
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    );
    """,
    # 6: PostgreSQL's search rows gain their conversation (pg_search.SCOPE_MARK); SQLite's
    # index has had it since 4 (its `scope` column). Nothing to do: the versions stay alike.
    "SELECT 1",
]
SCHEMA_VERSION = 1 + len(MIGRATIONS)
READ_CHUNK_ROWS = 1000
Durability = Literal["full", "normal"]
Role = Literal["user", "admin"]

_MESSAGE_COLUMNS = (
    "conversation_id, seq, sender_id, client_msg_id, kind, body, ts, media_id, reply_to, target"
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _message(row: tuple[Any, ...]) -> Message:
    return Message(*row)


# --- connections and schema ------------------------------------------------------------------

def connect(path: Path, *, durability: Durability = "full", read_only: bool = False
            ) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit (BEGIN ... COMMIT)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL syncs the WAL on every commit: an acknowledged message survives power loss.
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    search_index.register_functions(conn)
    if read_only:
        conn.execute("PRAGMA query_only = 1")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the data directory has schema version {version}; this chatnode knows up to "
            f"{SCHEMA_VERSION}: upgrade chatnode"
        )
    if version == 0:
        schema = resources.files("chatnode.store").joinpath("schema.sql").read_text()
        conn.executescript(f"BEGIN IMMEDIATE; {schema}; PRAGMA user_version = 1; COMMIT;")
        version = 1
    for step in range(version, SCHEMA_VERSION):
        conn.executescript(
            f"BEGIN IMMEDIATE; {MIGRATIONS[step - 1]}; PRAGMA user_version = {step + 1}; COMMIT;")


def open_database(data_dir: Path, durability: Durability = "full") -> sqlite3.Connection:
    """Open (creating if needed) the database of a data directory, migrated to this version."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(data_dir / DB_FILE, durability=durability)
    migrate(conn)
    return conn


def table_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every table's columns in order: what the PostgreSQL schema must match. The search index
    is left out: each store builds its own (FTS5 here)."""
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name NOT LIKE 'message_search%' ORDER BY name")]
    return {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables}


# --- users and devices -----------------------------------------------------------------------

_USER_COLUMNS = (
    "user_id, username, display_name, password_hash, disabled, created_at, last_seen, avatar_id,"
    " role"
)


def insert_user(conn: sqlite3.Connection, username: str, display_name: str | None,
                password_hash: str, role: Role = "user") -> UserRecord:
    user = UserRecord(new_id("u"), username.lower(), display_name or username, password_hash,
                      False, now_ms(), None, None, role)
    try:
        conn.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (user.user_id, user.username, user.display_name, user.password_hash, 0,
             user.created_at, None, None, role),
        )
    except sqlite3.IntegrityError:
        raise ChatError(ErrorCode.CONFLICT, f"username {username!r} is taken") from None
    return user


def _user(row: tuple[Any, ...] | None) -> UserRecord | None:
    if row is None:
        return None
    return UserRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7],
                      row[8])


def user_by_name(conn: sqlite3.Connection, username: str) -> UserRecord | None:
    return _user(conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username.lower(),)
    ).fetchone())


def user_by_id(conn: sqlite3.Connection, user_id: str) -> UserRecord | None:
    return _user(conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,)
    ).fetchone())


# Ids bound in one `IN (...)`, well under SQLite's limit on a statement's variables.
IN_CHUNK = 500


def _rows_in(conn: sqlite3.Connection, query: str, ids: Iterable[str]) -> Iterator[Any]:
    """The rows of `query` for every id, run a chunk of ids at a time; `{marks}` in the query
    stands for the chunk's placeholders."""
    listed = list(ids)
    for start in range(0, len(listed), IN_CHUNK):
        chunk = listed[start:start + IN_CHUNK]
        yield from conn.execute(query.format(marks=",".join("?" * len(chunk))), chunk)


def existing_user_ids(conn: sqlite3.Connection, user_ids: Iterable[str]) -> set[str]:
    """The ids among `user_ids` that name an enabled user."""
    return {row[0] for row in _rows_in(
        conn, "SELECT user_id FROM users WHERE disabled = 0 AND user_id IN ({marks})", user_ids)}


def list_users(conn: sqlite3.Connection) -> list[UserRecord]:
    rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username").fetchall()
    return [u for u in map(_user, rows) if u is not None]


def set_user_disabled(conn: sqlite3.Connection, username: str, disabled: bool) -> bool:
    cursor = conn.execute(
        "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username.lower())
    )
    if disabled and cursor.rowcount == 1:
        note_accounts_changed(conn)
    return cursor.rowcount == 1


def set_user_role(conn: sqlite3.Connection, username: str, role: Role) -> bool:
    cursor = conn.execute("UPDATE users SET role = ? WHERE username = ?",
                          (role, username.lower()))
    return cursor.rowcount == 1


def update_user(conn: sqlite3.Connection, user_id: str, disabled: bool | None,
                role: Role | None) -> UserRecord | None:
    """An admin's change to an account (None leaves that part as it is); None if no such user."""
    if disabled is not None:
        conn.execute("UPDATE users SET disabled = ? WHERE user_id = ?", (int(disabled), user_id))
    if role is not None:
        conn.execute("UPDATE users SET role = ? WHERE user_id = ?", (role, user_id))
    return user_by_id(conn, user_id)


def insert_device(conn: sqlite3.Connection, user_id: str, name: str | None,
                  token_hash: bytes) -> str:
    device_id = new_id("d")
    ts = now_ms()
    conn.execute(
        "INSERT INTO devices (device_id, user_id, token_hash, name, created_at, last_seen)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (device_id, user_id, token_hash, name, ts, ts),
    )
    return device_id


def device_by_token_hash(conn: sqlite3.Connection, token_hash: bytes) -> DeviceAuth | None:
    row = conn.execute(
        "SELECT d.device_id, d.user_id, u.disabled FROM devices AS d JOIN users AS u"
        " USING (user_id) WHERE d.token_hash = ? AND d.revoked_at IS NULL",
        (token_hash,),
    ).fetchone()
    return None if row is None else DeviceAuth(row[0], row[1], bool(row[2]))


def revoke_device(conn: sqlite3.Connection, device_id: str) -> None:
    conn.execute(
        "UPDATE devices SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
        (now_ms(), device_id),
    )
    conn.execute("DELETE FROM push_targets WHERE device_id = ?", (device_id,))


def devices_of(conn: sqlite3.Connection, user_id: str) -> list[DeviceRecord]:
    """The user's logins that still work, oldest first."""
    return [DeviceRecord(*row) for row in conn.execute(
        "SELECT device_id, name, created_at, last_seen FROM devices"
        " WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at, device_id", (user_id,))]


def revoke_device_of(conn: sqlite3.Connection, user_id: str, device_id: str) -> bool:
    """Log out one of the user's own devices; False when it is not theirs or already gone
    (the caller cannot tell which: another user's device id tells nothing)."""
    found = conn.execute(
        "SELECT 1 FROM devices WHERE device_id = ? AND user_id = ? AND revoked_at IS NULL",
        (device_id, user_id)).fetchone()
    if found is None:
        return False
    revoke_device(conn, device_id)
    return True


def set_device_last_seen(conn: sqlite3.Connection, device_id: str, ts: int) -> None:
    # Never back: the write at a session's end may commit after a later request's.
    conn.execute("UPDATE devices SET last_seen = max(coalesce(last_seen, 0), ?)"
                 " WHERE device_id = ?", (ts, device_id))


def change_password(conn: sqlite3.Connection, user_id: str, password_hash: str,
                    keep_device_id: str | None) -> list[str]:
    """Set a new password hash. With `keep_device_id`, every other live device of the user is
    logged out in the same transaction; returns the ids of those devices."""
    conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?",
                 (password_hash, user_id))
    if keep_device_id is None:
        return []
    others = [row[0] for row in conn.execute(
        "SELECT device_id FROM devices WHERE user_id = ? AND device_id != ?"
        " AND revoked_at IS NULL ORDER BY device_id", (user_id, keep_device_id))]
    for device_id in others:
        revoke_device(conn, device_id)
    return others


def reset_password(conn: sqlite3.Connection, user_id: str, password_hash: str
                   ) -> list[str] | None:
    """An admin's reset (the admin page's, and `chatnode user password`): a new password, and
    every device of the account logged out, so a lost phone's session ends too. None if there
    is no such user, else the ids of the devices logged out. Counted for account_watch: a
    node that did not make the change (the CLI's, another node's) closes its sessions too."""
    cursor = conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?",
                          (password_hash, user_id))
    if cursor.rowcount != 1:
        return None
    devices = [row[0] for row in conn.execute(
        "SELECT device_id FROM devices WHERE user_id = ? AND revoked_at IS NULL"
        " ORDER BY device_id", (user_id,))]
    for device_id in devices:
        revoke_device(conn, device_id)
    note_accounts_changed(conn)
    return devices


# --- account changes made beside a running node (account_watch.py) ----------------------------

def note_accounts_changed(conn: sqlite3.Connection) -> None:
    """Count a change the admin CLI made in its own process that may end live sessions (an
    account disabled, devices logged out). Running nodes poll the count and, when it moves,
    re-check their sessions' tokens."""
    conn.execute("INSERT INTO meta (key, value) VALUES ('accounts_changed', '1')"
                 " ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")


def accounts_changed(conn: sqlite3.Connection) -> int:
    """How many changes note_accounts_changed has counted (0: none yet)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'accounts_changed'").fetchone()
    return 0 if row is None else int(row[0])


def working_devices(conn: sqlite3.Connection, device_ids: Iterable[str]) -> set[str]:
    """The ids among `device_ids` whose tokens still work: not logged out, of an enabled
    account."""
    return {row[0] for row in _rows_in(
        conn, "SELECT d.device_id FROM devices AS d JOIN users AS u USING (user_id)"
        " WHERE d.device_id IN ({marks}) AND d.revoked_at IS NULL AND u.disabled = 0",
        device_ids)}


# --- profiles --------------------------------------------------------------------------------

def set_display_name(conn: sqlite3.Connection, user_id: str, display_name: str) -> UserRecord:
    conn.execute("UPDATE users SET display_name = ? WHERE user_id = ?", (display_name, user_id))
    user = user_by_id(conn, user_id)
    assert user is not None
    return user


def set_avatar(conn: sqlite3.Connection, user_id: str, upload: tuple[str, int, str] | None
               ) -> UserRecord:
    """Make an upload (sha256, size, content_type) the user's avatar, or remove it (None).

    The avatar's media row is referenced, so the sweeper keeps it; the one it replaces is
    released to the sweeper (forgotten after a day) unless a message of its uploader holds it.
    """
    old = conn.execute("SELECT avatar_id FROM users WHERE user_id = ?", (user_id,)).fetchone()
    avatar_id = None
    if upload is not None:
        sha256, size, content_type = upload
        avatar_id = insert_media(conn, sha256, size, content_type, user_id)
        conn.execute("UPDATE media SET referenced = 1 WHERE media_id = ?", (avatar_id,))
    conn.execute("UPDATE users SET avatar_id = ? WHERE user_id = ?", (avatar_id, user_id))
    if old is not None and old[0] is not None:
        conn.execute(
            "UPDATE media SET referenced = 0, created_at = ? WHERE media_id = ?"
            " AND NOT EXISTS (SELECT 1 FROM messages WHERE media_id = ?)",
            (now_ms(), old[0], old[0]))
    user = user_by_id(conn, user_id)
    assert user is not None
    return user


def avatar_file(conn: sqlite3.Connection, avatar_id: str) -> tuple[str, str] | None:
    """(sha256, content_type) of an upload that is some user's avatar now; None otherwise."""
    row = conn.execute(
        "SELECT m.sha256, m.content_type FROM users AS u JOIN media AS m"
        " ON m.media_id = u.avatar_id WHERE u.avatar_id = ?", (avatar_id,)).fetchone()
    return None if row is None else (row[0], row[1])
# --- invites and registration ----------------------------------------------------------------

_INVITE_COLUMNS = ("i.invite_id, i.max_uses, i.uses, i.makes_admin, u.username, i.created_at,"
                   " i.expires_at, i.revoked_at")


def _invite(row: tuple[Any, ...] | None) -> InviteRecord | None:
    if row is None:
        return None
    return InviteRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7])


def insert_invite(conn: sqlite3.Connection, token_hash: bytes, max_uses: int, makes_admin: bool,
                  created_by: str | None, expires_at: int) -> str:
    """A new invite; returns its invite_id (the token itself is never stored)."""
    invite_id = new_id("i")
    conn.execute(
        "INSERT INTO invites (invite_id, token_hash, max_uses, makes_admin, created_by,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (invite_id, token_hash, max_uses, int(makes_admin), created_by, now_ms(), expires_at))
    return invite_id


def invite_by_token_hash(conn: sqlite3.Connection, token_hash: bytes) -> InviteRecord | None:
    return _invite(conn.execute(
        f"SELECT {_INVITE_COLUMNS} FROM invites AS i LEFT JOIN users AS u"
        " ON u.user_id = i.created_by WHERE i.token_hash = ?", (token_hash,)).fetchone())


def list_invites(conn: sqlite3.Connection) -> list[InviteRecord]:
    """Every invite ever made, oldest first, whatever its state."""
    rows = conn.execute(
        f"SELECT {_INVITE_COLUMNS} FROM invites AS i LEFT JOIN users AS u"
        " ON u.user_id = i.created_by ORDER BY i.created_at, i.invite_id").fetchall()
    return [i for i in map(_invite, rows) if i is not None]


def revoke_invite(conn: sqlite3.Connection, invite_id: str) -> bool:
    """False if there is no such invite; revoking a revoked one keeps its first revocation."""
    cursor = conn.execute(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, ?) WHERE invite_id = ?",
        (now_ms(), invite_id))
    return cursor.rowcount == 1


def use_invite(conn: sqlite3.Connection, token_hash: bytes) -> InviteRecord:
    """Count one use of the invite, or raise ChatError(FORBIDDEN) saying why it cannot be
    used. The check and the count are one UPDATE, so a use is never counted twice."""
    used = conn.execute(
        "UPDATE invites SET uses = uses + 1 WHERE token_hash = ? AND revoked_at IS NULL"
        " AND uses < max_uses AND expires_at > ? RETURNING invite_id",
        (token_hash, now_ms())).fetchone()
    invite = invite_by_token_hash(conn, token_hash)
    if used is None or invite is None:
        raise ChatError(ErrorCode.FORBIDDEN, invite_refusal(invite, now_ms()))
    return invite


def register_user(conn: sqlite3.Connection, username: str, display_name: str | None,
                  password_hash: str, device_token_hash: bytes, device_name: str | None,
                  invite_hash: bytes | None) -> tuple[UserRecord, str]:
    """A self-registered account and its first device, in one transaction with the use of its
    invite (if any): a refused invite or a taken name creates nothing and uses nothing up, and
    two registrations racing for the last use of an invite make one account. An admin invite
    makes an admin. Returns the user and the device_id."""
    role: Role = "user"
    if invite_hash is not None:
        role = "admin" if use_invite(conn, invite_hash).makes_admin else "user"
    user = insert_user(conn, username, display_name, password_hash, role)
    return user, insert_device(conn, user.user_id, device_name, device_token_hash)


# --- push targets ----------------------------------------------------------------------------

_TARGET_COLUMNS = "t.device_id, t.user_id, t.kind, t.endpoint, t.p256dh, t.auth"


def set_push_target(conn: sqlite3.Connection, device_id: str, user_id: str, kind: str,
                    endpoint: str, p256dh: str | None, auth: str | None) -> None:
    """The device's one push target, replacing any it had. An endpoint is one browser or app:
    if another login had registered it, that registration is dropped, so a browser shared by
    two accounts in turn wakes only the one logged in now."""
    conn.execute("DELETE FROM push_targets WHERE endpoint = ? AND device_id != ?",
                 (endpoint, device_id))
    conn.execute(
        "INSERT INTO push_targets (device_id, user_id, kind, endpoint, p256dh, auth, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET kind = excluded.kind,"
        " endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth,"
        " created_at = excluded.created_at",
        (device_id, user_id, kind, endpoint, p256dh, auth, now_ms()),
    )


def delete_push_target(conn: sqlite3.Connection, device_id: str) -> None:
    conn.execute("DELETE FROM push_targets WHERE device_id = ?", (device_id,))


def remove_gone_push_target(conn: sqlite3.Connection, device_id: str, endpoint: str) -> bool:
    """Drop a target its push service says is gone, unless the device replaced it meanwhile."""
    return conn.execute("DELETE FROM push_targets WHERE device_id = ? AND endpoint = ?",
                        (device_id, endpoint)).rowcount == 1


def push_target_of(conn: sqlite3.Connection, device_id: str) -> PushTargetRecord | None:
    row = conn.execute(f"SELECT {_TARGET_COLUMNS} FROM push_targets AS t WHERE device_id = ?",
                       (device_id,)).fetchone()
    return None if row is None else PushTargetRecord(*row)


def push_targets_of(conn: sqlite3.Connection, user_id: str) -> list[PushTargetRecord]:
    """Where to wake a user: the targets of their live logins; none if the user is disabled."""
    rows = conn.execute(
        f"SELECT {_TARGET_COLUMNS} FROM push_targets AS t JOIN devices AS d USING (device_id)"
        " JOIN users AS u ON u.user_id = t.user_id WHERE t.user_id = ?"
        " AND d.revoked_at IS NULL AND u.disabled = 0 ORDER BY t.device_id", (user_id,))
    return [PushTargetRecord(*row) for row in rows]


def users_with_push_targets(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT DISTINCT user_id FROM push_targets")}


def push_preview_of(conn: sqlite3.Connection, user_id: str) -> str:
    row = conn.execute("SELECT push_preview FROM users WHERE user_id = ?",
                       (user_id,)).fetchone()
    return "full" if row is None else row[0]


def push_context(conn: sqlite3.Connection, user_id: str, sender_id: str
                 ) -> tuple[list[PushTargetRecord], str, str]:
    """What one notification to `user_id` needs: their targets, their push_preview, and the
    sender's display name."""
    row = conn.execute("SELECT display_name FROM users WHERE user_id = ?",
                       (sender_id,)).fetchone()
    return (push_targets_of(conn, user_id), push_preview_of(conn, user_id),
            sender_id if row is None else row[0])


def set_push_preview(conn: sqlite3.Connection, user_id: str, preview: str) -> None:
    conn.execute("UPDATE users SET push_preview = ? WHERE user_id = ?", (preview, user_id))


def users_info(conn: sqlite3.Connection, user_ids: Iterable[str]) -> dict[str, UserRecord]:
    result: dict[str, UserRecord] = {}
    for row in _rows_in(conn, f"SELECT {_USER_COLUMNS} FROM users WHERE user_id IN ({{marks}})",
                        user_ids):
        user = _user(row)
        assert user is not None
        result[user.user_id] = user
    return result


# --- conversations ---------------------------------------------------------------------------

def _direct_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def _members_of(conn: sqlite3.Connection, conversation_id: str) -> list[MemberRecord]:
    return [MemberRecord(*row) for row in conn.execute(
        "SELECT user_id, role, joined_seq, last_delivered_seq, last_read_seq FROM members"
        " WHERE conversation_id = ? ORDER BY joined_seq, user_id",
        (conversation_id,),
    )]


def conversation_by_id(conn: sqlite3.Connection, conversation_id: str
                       ) -> ConversationRecord | None:
    row = conn.execute(
        "SELECT conversation_id, kind, name, last_seq, last_activity FROM conversations"
        " WHERE conversation_id = ?", (conversation_id,),
    ).fetchone()
    if row is None:
        return None
    return ConversationRecord(*row, members=_members_of(conn, conversation_id))


def insert_conversation(conn: sqlite3.Connection, kind: str, name: str | None, creator: str,
                        others: list[str]) -> tuple[ConversationRecord, bool]:
    """Create a conversation; for a direct pair that already has one, return that instead."""
    direct_key = _direct_key(creator, others[0]) if kind == "direct" else None
    if direct_key is not None:
        row = conn.execute(
            "SELECT conversation_id FROM conversations WHERE direct_key = ?", (direct_key,)
        ).fetchone()
        if row is not None:
            existing = conversation_by_id(conn, row[0])
            assert existing is not None
            return existing, False
    conversation_id = new_id("c")
    ts = now_ms()
    conn.execute(
        "INSERT INTO conversations (conversation_id, kind, name, direct_key, last_activity,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (conversation_id, kind, name, direct_key, ts, ts),
    )
    creator_role = "admin" if kind == "group" else "member"
    conn.executemany(
        "INSERT INTO members (conversation_id, user_id, role) VALUES (?, ?, ?)",
        [(conversation_id, creator, creator_role)]
        + [(conversation_id, user_id, "member") for user_id in others],
    )
    created = conversation_by_id(conn, conversation_id)
    assert created is not None
    return created, True


def all_conversations(conn: sqlite3.Connection) -> list[ConversationRecord]:
    """Every conversation with its members: the node's in-memory state at start."""
    conversations = {
        row[0]: ConversationRecord(*row, members=[])
        for row in conn.execute(
            "SELECT conversation_id, kind, name, last_seq, last_activity FROM conversations")
    }
    for row in conn.execute(
            "SELECT conversation_id, user_id, role, joined_seq, last_delivered_seq, last_read_seq"
            " FROM members ORDER BY conversation_id, joined_seq, user_id"):
        conversations[row[0]].members.append(MemberRecord(*row[1:]))
    return list(conversations.values())


def last_seqs_of(conn: sqlite3.Connection, user_id: str) -> dict[str, int]:
    """The last_seq of each conversation the user is a member of, as the log has it now."""
    return dict(conn.execute(
        "SELECT c.conversation_id, c.last_seq FROM members AS m JOIN conversations AS c"
        " ON c.conversation_id = m.conversation_id WHERE m.user_id = ?", (user_id,)))


# --- messages and markers --------------------------------------------------------------------

def message_by_client_id(conn: sqlite3.Connection, sender_id: str, client_msg_id: str
                         ) -> Message | None:
    row = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender_id = ? AND client_msg_id = ?",
        (sender_id, client_msg_id),
    ).fetchone()
    return None if row is None else _message(row)


def append_message(conn: sqlite3.Connection, conversation_id: str, sender_id: str,
                   client_msg_id: str, kind: str, body: str, media_id: str | None,
                   reply_to: int | None, target: int | None) -> tuple[Message, bool]:
    """Append to the log; a known (sender, client_msg_id) returns the original message instead.

    The seq comes from the conversation row in the same transaction, so a rolled-back batch
    gives its seqs back and the log never has a gap. The sender's own markers move up to the
    new seq: whoever writes has the conversation open.
    """
    original = message_by_client_id(conn, sender_id, client_msg_id)
    if original is not None:
        return original, False
    if conn.execute(
            "SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?",
            (conversation_id, sender_id)).fetchone() is None:
        raise ChatError(ErrorCode.FORBIDDEN, "not a member of this conversation",
                        ref=client_msg_id)
    if target is not None:
        _check_target(conn, conversation_id, sender_id, client_msg_id, kind, target)
    if media_id is not None:
        _use_media(conn, media_id, sender_id, client_msg_id)
    if kind == "delete":
        body = ""
    ts = now_ms()
    (seq,) = conn.execute(
        "UPDATE conversations SET last_seq = last_seq + 1, last_activity = ?"
        " WHERE conversation_id = ? RETURNING last_seq",
        (ts, conversation_id),
    ).fetchone()
    message = Message(conversation_id, seq, sender_id, client_msg_id, kind, body, ts,
                      media_id, reply_to, target)
    inserted = conn.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (conversation_id, seq, sender_id, client_msg_id, kind, body, ts, media_id, reply_to,
         target),
    )
    advance_markers(conn, conversation_id, sender_id, seq, seq)
    # The search index moves in the same transaction as the log, so it cannot drift from it.
    search_index.index_message(conn, inserted.lastrowid or 0, conversation_id, seq, kind, body)
    if kind == "edit" and target is not None:
        search_index.reindex_message(conn, conversation_id, target, body)
    if kind == "delete" and target is not None:
        # The log stays append-only, but a deleted message's content is gone for everyone,
        # in history and in every later catch-up.
        conn.execute("UPDATE messages SET body = '', media_id = NULL"
                     " WHERE conversation_id = ? AND seq = ?", (conversation_id, target))
        # Its edits held its words too.
        conn.execute("UPDATE messages SET body = '' WHERE conversation_id = ? AND target = ?"
                     " AND kind = 'edit'", (conversation_id, target))
        search_index.unindex_message(conn, conversation_id, target)
    return message, True


_TARGETABLE = {"reaction": ("text", "media"), "edit": ("text",), "delete": ("text", "media")}


def _check_target(conn: sqlite3.Connection, conversation_id: str, sender_id: str,
                  client_msg_id: str, kind: str, target: int) -> None:
    """A reaction targets any message; an edit or delete only the sender's own. None of them
    targets a deleted message, or an event (reaction, edit, delete, system)."""
    row = conn.execute(
        "SELECT sender_id, kind, EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?"
        " AND target = ? AND kind = 'delete') FROM messages WHERE conversation_id = ?"
        " AND seq = ?", (conversation_id, target, conversation_id, target),
    ).fetchone()
    if row is None or row[1] not in _TARGETABLE[kind] or row[2]:
        raise ChatError(ErrorCode.INVALID, f"target names no message that can take a {kind}",
                        ref=client_msg_id)
    if kind != "reaction" and row[0] != sender_id:
        raise ChatError(ErrorCode.FORBIDDEN, f"only the author may {kind} a message",
                        ref=client_msg_id)


def _use_media(conn: sqlite3.Connection, media_id: str, sender_id: str,
               client_msg_id: str) -> None:
    """A media message sends the sender's own upload; from then on it is kept for good."""
    cursor = conn.execute(
        "UPDATE media SET referenced = 1 WHERE media_id = ? AND uploader_id = ?",
        (media_id, sender_id))
    if cursor.rowcount != 1:
        raise ChatError(ErrorCode.INVALID, "media_id names no upload of yours",
                        ref=client_msg_id)


def insert_media(conn: sqlite3.Connection, sha256: str, size: int, content_type: str,
                 uploader_id: str) -> str:
    media_id = new_id("m")
    conn.execute(
        "INSERT INTO media (media_id, sha256, size, content_type, uploader_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (media_id, sha256, size, content_type, uploader_id, now_ms()))
    return media_id


def media_for(conn: sqlite3.Connection, media_id: str, user_id: str
              ) -> tuple[str, str, int] | None:
    """(sha256, content_type, size) if `user_id` may fetch it: the uploader, or a member of a
    conversation holding a message that still references it."""
    row = conn.execute(
        "SELECT sha256, content_type, size FROM media AS d WHERE media_id = ? AND ("
        " uploader_id = ? OR EXISTS (SELECT 1 FROM messages AS m JOIN members AS b"
        " ON b.conversation_id = m.conversation_id AND b.user_id = ?"
        " WHERE m.media_id = d.media_id AND m.seq > b.joined_seq))",
        (media_id, user_id, user_id)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def sweep_unreferenced_media(conn: sqlite3.Connection, older_than_ms: int) -> list[str]:
    """Forget uploads never sent before `older_than_ms`; return the hashes whose file no
    upload uses any more (the caller deletes those files)."""
    rows = conn.execute(
        "DELETE FROM media WHERE referenced = 0 AND created_at < ? RETURNING sha256",
        (older_than_ms,)).fetchall()
    orphans = []
    for (sha256,) in set(rows):
        if conn.execute("SELECT 1 FROM media WHERE sha256 = ?", (sha256,)).fetchone() is None:
            orphans.append(sha256)
    return orphans


# Groups: the rules (who may do what, the size limit, the heir, the system messages) are
# group_rules.py's, shared with PostgreSQL; here are SQLite's statements for them.

def change_membership(conn: sqlite3.Connection, conversation_id: str, actor_id: str,
                      action: Literal["add", "remove"], user_id: str, group_members: int
                      ) -> tuple[list[Message], ConversationRecord]:
    """Add a member (admins only) or remove one (admins; anyone may remove themselves)."""
    return group_rules.change_membership(_GROUP_STATEMENTS, conn, conversation_id, actor_id,
                                         action, user_id, group_members)


def set_member_role(conn: sqlite3.Connection, conversation_id: str, actor_id: str,
                    user_id: str, role: Literal["admin", "member"]
                    ) -> tuple[list[Message], ConversationRecord]:
    """An admin promotes a member or demotes an admin; a group keeps at least one admin."""
    return group_rules.set_member_role(_GROUP_STATEMENTS, conn, conversation_id, actor_id,
                                       user_id, role)


def rename_group(conn: sqlite3.Connection, conversation_id: str, actor_id: str, name: str
                 ) -> tuple[list[Message], ConversationRecord]:
    return group_rules.rename_group(_GROUP_STATEMENTS, conn, conversation_id, actor_id, name)


def _lock_nothing(conn: sqlite3.Connection, conversation_id: str) -> None:
    """The writer's batch holds SQLite's write lock from BEGIN IMMEDIATE to COMMIT, and the
    admin CLI waits for it: no other change to the group can come in between."""


def _append_system_message(conn: sqlite3.Connection, conversation_id: str, actor_id: str,
                           body: str) -> Message:
    return append_message(conn, conversation_id, actor_id, new_id("sys"), "system", body,
                          None, None, None)[0]


def _insert_member(conn: sqlite3.Connection, conversation_id: str, user_id: str,
                   start: int) -> None:
    conn.execute(
        "INSERT INTO members (conversation_id, user_id, role, joined_seq,"
        " last_delivered_seq, last_read_seq) VALUES (?, ?, 'member', ?, ?, ?)",
        (conversation_id, user_id, start, start, start))


def _delete_member(conn: sqlite3.Connection, conversation_id: str, user_id: str) -> None:
    conn.execute("DELETE FROM members WHERE conversation_id = ? AND user_id = ?",
                 (conversation_id, user_id))


def _update_member_role(conn: sqlite3.Connection, conversation_id: str, user_id: str,
                        role: Literal["admin", "member"]) -> None:
    conn.execute("UPDATE members SET role = ? WHERE conversation_id = ? AND user_id = ?",
                 (role, conversation_id, user_id))


def _update_group_name(conn: sqlite3.Connection, conversation_id: str, name: str) -> None:
    conn.execute("UPDATE conversations SET name = ? WHERE conversation_id = ?",
                 (name, conversation_id))


_GROUP_STATEMENTS = group_rules.GroupStatements[sqlite3.Connection](
    lock_conversation=_lock_nothing, conversation=conversation_by_id, user=user_by_id,
    append_system_message=_append_system_message, insert_member=_insert_member,
    delete_member=_delete_member, update_member_role=_update_member_role,
    update_group_name=_update_group_name)


def advance_markers(conn: sqlite3.Connection, conversation_id: str, user_id: str,
                    delivered: int, read: int) -> None:
    """Markers only move forward: max() in SQL, so a late or reordered update is harmless."""
    conn.execute(
        "UPDATE members SET last_delivered_seq = max(last_delivered_seq, ?, ?),"
        " last_read_seq = max(last_read_seq, ?) WHERE conversation_id = ? AND user_id = ?",
        (delivered, read, read, conversation_id, user_id),
    )


def read_ranges(conn: sqlite3.Connection, ranges: list[CatchupRange]) -> list[Message]:
    """Messages of several (lo, hi] ranges in one statement: one index range read per range,
    returned range by range in the order given, ascending seq within each."""
    if not ranges:
        return []
    values = ",".join("(?, ?, ?, ?)" for _ in ranges)
    params: list[Any] = []
    for index, r in enumerate(ranges):
        params += (index, r.conversation_id, r.lo, r.hi)
    rows = conn.execute(
        f"WITH r (i, cid, lo, hi) AS (VALUES {values})"
        f" SELECT {', '.join('m.' + c for c in _MESSAGE_COLUMNS.split(', '))}"
        " FROM r CROSS JOIN messages AS m"
        " ON m.conversation_id = r.cid AND m.seq > r.lo AND m.seq <= r.hi"
        " ORDER BY r.i, m.seq",
        params,
    ).fetchall()
    return [_message(row) for row in rows]


def history(conn: sqlite3.Connection, conversation_id: str, *, before: int | None,
            after: int | None, limit: int, min_seq: int) -> tuple[list[Message], bool]:
    """A page of the log. With `after`: the first `limit` above it; otherwise the latest
    `limit` below `before` (or the end). `has_more` says whether the page stopped short in the
    direction of paging. Nothing at or below `min_seq` (before the member joined) is shown."""
    upper = before if before is not None else 2**62
    if after is not None:
        rows = conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?"
            " AND seq > ? AND seq < ? ORDER BY seq LIMIT ?",
            (conversation_id, max(after, min_seq), upper, limit + 1),
        ).fetchall()
        return [_message(r) for r in rows[:limit]], len(rows) > limit
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?"
        " AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        (conversation_id, min_seq, upper, limit + 1),
    ).fetchall()
    page = [_message(r) for r in reversed(rows[:limit])]
    return page, len(rows) > limit


def history_around(conn: sqlite3.Connection, conversation_id: str, *, around: int,
                   limit: int, min_seq: int) -> tuple[list[Message], bool]:
    """The page that holds `around` in its middle: up to half of `limit` below it, the rest at
    and above it (more below when the log ends sooner). `has_more` says whether older messages
    remain below the page, as for a page without `after`; newer ones are paged with `after`."""
    start = max(around, min_seq + 1)
    newer = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?"
        " AND seq >= ? ORDER BY seq LIMIT ?", (conversation_id, start, limit)).fetchall()
    older, has_more = history(conn, conversation_id, before=start, after=None,
                              limit=limit - min(len(newer), limit - limit // 2),
                              min_seq=min_seq)
    return older + [_message(r) for r in newer[:limit - len(older)]], has_more


def events_targeting(conn: sqlite3.Connection, conversation_id: str, seqs: list[int],
                     kinds: tuple[str, ...]) -> list[Message]:
    """Events of these kinds that target any of `seqs`, in seq order (the target index)."""
    found: list[Message] = []
    for start in range(0, len(seqs), IN_CHUNK):
        chunk = seqs[start:start + IN_CHUNK]
        found += [_message(row) for row in conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND target IN"
            f" ({','.join('?' * len(chunk))}) AND kind IN ({','.join('?' * len(kinds))})",
            (conversation_id, *chunk, *kinds))]
    found.sort(key=lambda m: m.seq)
    return found


def last_messages(conn: sqlite3.Connection, keys: list[tuple[str, int]]) -> dict[str, Message]:
    """The message at `last_seq` of each conversation, one primary-key lookup each."""
    result: dict[str, Message] = {}
    for conversation_id, seq in keys:
        row = conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?",
            (conversation_id, seq),
        ).fetchone()
        if row is not None:
            result[conversation_id] = _message(row)
    return result


def count_messages(conn: sqlite3.Connection) -> int:
    """Every row of the log, in all conversations (the fault scripts' report)."""
    (count,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    return int(count)


def set_last_seen(conn: sqlite3.Connection, user_id: str, ts: int) -> None:
    conn.execute("UPDATE users SET last_seen = ? WHERE user_id = ?", (ts, user_id))


def touch_health(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('health', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(now_ms()),),
    )


def plan_chunks(ranges: list[CatchupRange], rows: int = READ_CHUNK_ROWS
                ) -> list[list[CatchupRange]]:
    """Cut ranges into statements of at most `rows` rows. seqs have no gaps, so a range holds
    exactly hi - lo messages and the cut is known before reading anything."""
    chunks: list[list[CatchupRange]] = []
    current: list[CatchupRange] = []
    room = rows
    for r in ranges:
        lo = r.lo
        while lo < r.hi:
            take = min(r.hi - lo, room)
            current.append(CatchupRange(r.conversation_id, lo, lo + take))
            lo += take
            room -= take
            if room == 0:
                chunks.append(current)
                current, room = [], rows
    if current:
        chunks.append(current)
    return chunks


# --- the node's store ------------------------------------------------------------------------

class StoreDamaged(Exception):
    """SQLite's quick_check failed at start: the node refuses to serve from this file."""


class SqliteStore:
    """The node's handle on its data: writes go through the group-commit writer, reads run on a
    small pool of read connections in worker threads. This is the narrow interface a second
    store (PostgreSQL) implements."""

    def __init__(self, data_dir: Path, durability: Durability = "full", readers: int = 4,
                 on_batch: Callable[[int, float], None] = lambda size, seconds: None,
                 wal_limit_bytes: int = WAL_SIZE_LIMIT_BYTES) -> None:
        self.path = data_dir / DB_FILE
        try:
            self._write_conn = open_database(data_dir, durability)
            damage = [row[0] for row in self._write_conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            damage = [str(exc)]
        if damage != ["ok"]:
            # Serving from a damaged file would acknowledge messages it may not keep.
            raise StoreDamaged(
                f"the store {self.path} is damaged ({damage[0]}); nothing was served."
                " Restore a backup (chatnode restore) or see chatnode check")
        tune_write_connection(self._write_conn, wal_limit_bytes)
        self._wal_limit_bytes = wal_limit_bytes
        self._writer = GroupCommitWriter(SqliteTransactions(self._write_conn), on_batch)
        self._readers = [connect(self.path, read_only=True) for _ in range(readers)]
        self._read_limiter = trio.CapacityLimiter(readers)
        self._checkpoint_conn = connect(self.path)
        self._commits_checkpointed = 0

    def start(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        await self._writer.stop()
        for conn in [*self._readers, self._checkpoint_conn, self._write_conn]:
            conn.close()

    # writes

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_done: Callable[[Job], None] | None = None) -> Job:
        return self._writer.submit(fn, *args, on_done=on_done)

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._writer.submit(fn, *args).wait()

    async def checkpoint(self) -> CheckpointResult | None:
        """Copy the WAL into the database file in a worker thread, if anything was committed
        since the last complete checkpoint; see checkpoint.py for why not in the writer."""
        commits = self._writer.commits
        if commits == self._commits_checkpointed:
            return None
        result = await trio.to_thread.run_sync(wal.checkpoint, self._checkpoint_conn,
                                               self.path, self._wal_limit_bytes)
        if result.complete:
            self._commits_checkpointed = commits
        return result

    def wal_bytes(self) -> int:
        return wal.wal_bytes(self.path)

    def free_bytes(self) -> int | None:
        stat = os.statvfs(self.path.parent)
        return stat.f_bavail * stat.f_frsize

    # reads

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async with self._read_limiter:
            conn = self._readers.pop()
            try:
                return await trio.to_thread.run_sync(partial(fn, conn, *args, **kwargs))
            finally:
                self._readers.append(conn)

    async def stream_ranges(self, ranges: list[CatchupRange]) -> AsyncIterator[list[Message]]:
        for chunk in plan_chunks(ranges):
            yield await self.read(read_ranges, chunk)

    def load_conversations(self) -> list[ConversationRecord]:
        """Synchronous: used once at start, before anything is served."""
        return all_conversations(self._write_conn)

    def load_push_users(self) -> set[str]:
        """Synchronous, like load_conversations: who has a push target at start."""
        return users_with_push_targets(self._write_conn)
