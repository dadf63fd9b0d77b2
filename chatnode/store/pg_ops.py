"""The node's operations on PostgreSQL: one twin for every operation of sqlite.py, with the same
name, parameters and return values, taking a psycopg connection.

Why twins named after the SQLite functions: the engine, the service and the web layer name an
operation by passing sqlite.py's function (`store.write(sql.append_message, ...)`), and that is
all they know of the store. The PostgreSQL store looks the function up in TWINS, built once at
import by name from sqlite.py's public operations, and runs this module's function of the same
name instead; a missing twin stops the import, so no operation can reach PostgreSQL untranslated.
tests/unit/test_pg_twins.py checks that the signatures match.

What differs from SQLite, and why:
- seq: assigned inside the inserting transaction from the conversation's counter row, whose
  UPDATE holds the row lock until COMMIT, so two nodes writing one conversation at once get
  1, 2, 3, ... with no gap and no duplicate.
- Idempotent send across nodes: another node may insert the same (sender, client_msg_id)
  between our check and our insert; the unique index makes us wait for its COMMIT and then
  fails our insert. The job raises RunAgain, the writer runs the batch again with a savepoint
  per job, rolls this job's back and runs it once more, and the second run finds the original
  and returns it. The same goes for two
  nodes creating one direct pair, or adding one member, at once.
- Round trips: the writer sends a batch's statements in a pipeline, and a plain message's
  append answers later (writer.Later), so a batch of sends is one round trip, not one per send.
- Sets and batches are one statement: ANY(array) and unnest() instead of SQLite's chunks of
  `?` marks, so nothing on a hot path costs a round trip per row.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Literal

import msgspec
import psycopg
from psycopg import errors

from ..invites import invite_refusal
from ..protocol import ChatError, ErrorCode, Message
from . import group_rules, pg_search
from . import search as search_index
from . import sqlite as sql
from .postgres import (
    Connection,
    insert_invite,
    insert_user,
    list_invites,
    list_users,
    note_accounts_changed,
    pipelined,
    reset_password,
    revoke_invite,
    rowcount,
    set_user_disabled,
    set_user_role,
)
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
from .sqlite import Role, new_id, now_ms
from .writer import Later, RunAgain

__all__ = ["TWINS", "insert_invite", "insert_user", "list_invites", "list_users",
           "note_accounts_changed", "reset_password", "revoke_invite", "set_user_disabled",
           "set_user_role"]

_MESSAGE_COLUMNS = sql._MESSAGE_COLUMNS
_M_COLUMNS = ", ".join("m." + c for c in _MESSAGE_COLUMNS.split(", "))
_USER_COLUMNS = (
    "user_id, username, display_name, password_hash, disabled, created_at, last_seen, avatar_id,"
    " role"
)


def _message(row: tuple[Any, ...]) -> Message:
    return Message(*row)


def _user(row: tuple[Any, ...] | None) -> UserRecord | None:
    return None if row is None else UserRecord(*row)


# --- users and devices -----------------------------------------------------------------------

def user_by_name(conn: Connection, username: str) -> UserRecord | None:
    return _user(conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE username = %s", (username.lower(),)
    ).fetchone())


def user_by_id(conn: Connection, user_id: str) -> UserRecord | None:
    return _user(conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,)).fetchone())


def existing_user_ids(conn: Connection, user_ids: Iterable[str]) -> set[str]:
    """The ids among `user_ids` that name an enabled user."""
    return {row[0] for row in conn.execute(
        "SELECT user_id FROM users WHERE NOT disabled AND user_id = ANY(%s::text[])",
        (list(user_ids),))}


def update_user(conn: Connection, user_id: str, disabled: bool | None,
                role: Role | None) -> UserRecord | None:
    """As sqlite.update_user: None leaves that part as it is; None if no such user."""
    conn.execute(
        "UPDATE users SET disabled = coalesce(%s, disabled), role = coalesce(%s, role)"
        " WHERE user_id = %s", (disabled, role, user_id))
    return user_by_id(conn, user_id)


def insert_device(conn: Connection, user_id: str, name: str | None,
                  token_hash: bytes) -> str:
    device_id = new_id("d")
    ts = now_ms()
    conn.execute(
        "INSERT INTO devices (device_id, user_id, token_hash, name, created_at, last_seen)"
        " VALUES (%s, %s, %s, %s, %s, %s)", (device_id, user_id, token_hash, name, ts, ts))
    return device_id


def device_by_token_hash(conn: Connection, token_hash: bytes) -> DeviceAuth | None:
    row = conn.execute(
        "SELECT d.device_id, d.user_id, u.disabled FROM devices AS d JOIN users AS u"
        " USING (user_id) WHERE d.token_hash = %s AND d.revoked_at IS NULL",
        (token_hash,)).fetchone()
    return None if row is None else DeviceAuth(row[0], row[1], bool(row[2]))


def revoke_device(conn: Connection, device_id: str) -> None:
    conn.execute(
        "UPDATE devices SET revoked_at = %s WHERE device_id = %s AND revoked_at IS NULL",
        (now_ms(), device_id))
    conn.execute("DELETE FROM push_targets WHERE device_id = %s", (device_id,))


def devices_of(conn: Connection, user_id: str) -> list[DeviceRecord]:
    return [DeviceRecord(*row) for row in conn.execute(
        "SELECT device_id, name, created_at, last_seen FROM devices"
        " WHERE user_id = %s AND revoked_at IS NULL"
        ' ORDER BY created_at, device_id COLLATE "C"', (user_id,))]


def revoke_device_of(conn: Connection, user_id: str, device_id: str) -> bool:
    """As sqlite.revoke_device_of: False when the device is not theirs or already gone. The
    UPDATE's row lock makes two nodes revoking one device at once answer True only once."""
    revoked = rowcount(conn.execute(
        "UPDATE devices SET revoked_at = %s WHERE device_id = %s AND user_id = %s"
        " AND revoked_at IS NULL", (now_ms(), device_id, user_id))) == 1
    if revoked:
        conn.execute("DELETE FROM push_targets WHERE device_id = %s", (device_id,))
    return revoked


def set_device_last_seen(conn: Connection, device_id: str, ts: int) -> None:
    # Never back: the write at a session's end may commit after a later request's.
    conn.execute("UPDATE devices SET last_seen = GREATEST(coalesce(last_seen, 0), %s)"
                 " WHERE device_id = %s", (ts, device_id))


def change_password(conn: Connection, user_id: str, password_hash: str,
                    keep_device_id: str | None) -> list[str]:
    """As sqlite.change_password: with `keep_device_id`, every other live device is logged
    out in the same transaction; returns their ids."""
    conn.execute("UPDATE users SET password_hash = %s WHERE user_id = %s",
                 (password_hash, user_id))
    if keep_device_id is None:
        return []
    others = sorted(row[0] for row in conn.execute(
        "UPDATE devices SET revoked_at = %s WHERE user_id = %s AND device_id != %s"
        " AND revoked_at IS NULL RETURNING device_id", (now_ms(), user_id, keep_device_id)))
    conn.execute("DELETE FROM push_targets WHERE device_id = ANY(%s::text[])", (others,))
    return others


def accounts_changed(conn: Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'accounts_changed'").fetchone()
    return 0 if row is None else int(row[0])


def working_devices(conn: Connection, device_ids: Iterable[str]) -> set[str]:
    """The ids among `device_ids` whose tokens still work: not logged out, of an enabled
    account."""
    return {row[0] for row in conn.execute(
        "SELECT d.device_id FROM devices AS d JOIN users AS u USING (user_id)"
        " WHERE d.device_id = ANY(%s::text[]) AND d.revoked_at IS NULL AND NOT u.disabled",
        (list(device_ids),))}


# --- profiles --------------------------------------------------------------------------------

def set_display_name(conn: Connection, user_id: str, display_name: str) -> UserRecord:
    user = _user(conn.execute(
        f"UPDATE users SET display_name = %s WHERE user_id = %s RETURNING {_USER_COLUMNS}",
        (display_name, user_id)).fetchone())
    assert user is not None
    return user


def set_avatar(conn: Connection, user_id: str, upload: tuple[str, int, str] | None
               ) -> UserRecord:
    """As sqlite.set_avatar: the new avatar's upload is referenced (the sweeper keeps it), the
    one it replaces is released unless a message of its uploader holds it."""
    old = conn.execute("SELECT avatar_id FROM users WHERE user_id = %s FOR UPDATE",
                       (user_id,)).fetchone()
    avatar_id = None
    if upload is not None:
        sha256, size, content_type = upload
        avatar_id = insert_media(conn, sha256, size, content_type, user_id)
        conn.execute("UPDATE media SET referenced = TRUE WHERE media_id = %s", (avatar_id,))
    user = _user(conn.execute(
        f"UPDATE users SET avatar_id = %s WHERE user_id = %s RETURNING {_USER_COLUMNS}",
        (avatar_id, user_id)).fetchone())
    if old is not None and old[0] is not None:
        conn.execute(
            "UPDATE media SET referenced = FALSE, created_at = %s WHERE media_id = %s"
            " AND NOT EXISTS (SELECT 1 FROM messages WHERE media_id = %s)",
            (now_ms(), old[0], old[0]))
    assert user is not None
    return user


def avatar_file(conn: Connection, avatar_id: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT m.sha256, m.content_type FROM users AS u JOIN media AS m"
        " ON m.media_id = u.avatar_id WHERE u.avatar_id = %s", (avatar_id,)).fetchone()
    return None if row is None else (row[0], row[1])


# --- invites and registration ----------------------------------------------------------------
# insert_invite, list_invites, revoke_invite and set_user_role are postgres.py's, which the
# admin CLI shares.

def invite_by_token_hash(conn: Connection, token_hash: bytes) -> InviteRecord | None:
    row = conn.execute(
        "SELECT i.invite_id, i.max_uses, i.uses, i.makes_admin, u.username, i.created_at,"
        " i.expires_at, i.revoked_at FROM invites AS i LEFT JOIN users AS u"
        " ON u.user_id = i.created_by WHERE i.token_hash = %s", (token_hash,)).fetchone()
    return None if row is None else InviteRecord(*row)


def use_invite(conn: Connection, token_hash: bytes) -> InviteRecord:
    """As sqlite.use_invite. Across nodes the UPDATE is the race's referee: in READ COMMITTED a
    second use waits for the first's row lock, then re-checks `uses < max_uses` on the row the
    first committed, so the last use of an invite is counted once."""
    used = conn.execute(
        "UPDATE invites SET uses = uses + 1 WHERE token_hash = %s AND revoked_at IS NULL"
        " AND uses < max_uses AND expires_at > %s RETURNING invite_id",
        (token_hash, now_ms())).fetchone()
    invite = invite_by_token_hash(conn, token_hash)
    if used is None or invite is None:
        raise ChatError(ErrorCode.FORBIDDEN, invite_refusal(invite, now_ms()))
    return invite


def register_user(conn: Connection, username: str, display_name: str | None,
                  password_hash: str, device_token_hash: bytes, device_name: str | None,
                  invite_hash: bytes | None) -> tuple[UserRecord, str]:
    """As sqlite.register_user. A name taken by another node meanwhile fails insert_user's
    INSERT once that node commits (`conflict`), and the job's savepoint rollback gives the
    invite's use back."""
    role: Role = "user"
    if invite_hash is not None:
        role = "admin" if use_invite(conn, invite_hash).makes_admin else "user"
    user = insert_user(conn, username, display_name, password_hash, role)
    return user, insert_device(conn, user.user_id, device_name, device_token_hash)


# --- push targets ----------------------------------------------------------------------------

_TARGET_COLUMNS = "t.device_id, t.user_id, t.kind, t.endpoint, t.p256dh, t.auth"


def set_push_target(conn: Connection, device_id: str, user_id: str, kind: str,
                    endpoint: str, p256dh: str | None, auth: str | None) -> None:
    """As sqlite.set_push_target: an endpoint registered by another login moves to this one."""
    conn.execute("DELETE FROM push_targets WHERE endpoint = %s AND device_id != %s",
                 (endpoint, device_id))
    conn.execute(
        "INSERT INTO push_targets (device_id, user_id, kind, endpoint, p256dh, auth, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET"
        " kind = excluded.kind, endpoint = excluded.endpoint, p256dh = excluded.p256dh,"
        " auth = excluded.auth, created_at = excluded.created_at",
        (device_id, user_id, kind, endpoint, p256dh, auth, now_ms()))


def delete_push_target(conn: Connection, device_id: str) -> None:
    conn.execute("DELETE FROM push_targets WHERE device_id = %s", (device_id,))


def remove_gone_push_target(conn: Connection, device_id: str, endpoint: str) -> bool:
    return rowcount(conn.execute(
        "DELETE FROM push_targets WHERE device_id = %s AND endpoint = %s",
        (device_id, endpoint))) == 1


def push_target_of(conn: Connection, device_id: str) -> PushTargetRecord | None:
    row = conn.execute(f"SELECT {_TARGET_COLUMNS} FROM push_targets AS t WHERE device_id = %s",
                       (device_id,)).fetchone()
    return None if row is None else PushTargetRecord(*row)


def push_targets_of(conn: Connection, user_id: str) -> list[PushTargetRecord]:
    rows = conn.execute(
        f"SELECT {_TARGET_COLUMNS} FROM push_targets AS t JOIN devices AS d USING (device_id)"
        " JOIN users AS u ON u.user_id = t.user_id WHERE t.user_id = %s"
        ' AND d.revoked_at IS NULL AND NOT u.disabled ORDER BY t.device_id COLLATE "C"',
        (user_id,))
    return [PushTargetRecord(*row) for row in rows]


def users_with_push_targets(conn: Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT DISTINCT user_id FROM push_targets")}


def push_preview_of(conn: Connection, user_id: str) -> str:
    row = conn.execute("SELECT push_preview FROM users WHERE user_id = %s",
                       (user_id,)).fetchone()
    return "full" if row is None else str(row[0])


def push_context(conn: Connection, user_id: str, sender_id: str
                 ) -> tuple[list[PushTargetRecord], str, str]:
    row = conn.execute("SELECT display_name FROM users WHERE user_id = %s",
                       (sender_id,)).fetchone()
    return (push_targets_of(conn, user_id), push_preview_of(conn, user_id),
            sender_id if row is None else row[0])


def set_push_preview(conn: Connection, user_id: str, preview: str) -> None:
    conn.execute("UPDATE users SET push_preview = %s WHERE user_id = %s", (preview, user_id))


def users_info(conn: Connection, user_ids: Iterable[str]) -> dict[str, UserRecord]:
    rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ANY(%s::text[])",
                        (list(user_ids),))
    return {row[0]: UserRecord(*row) for row in rows}


# --- conversations ---------------------------------------------------------------------------

def _members_of(conn: Connection, conversation_id: str) -> list[MemberRecord]:
    return [MemberRecord(*row) for row in conn.execute(
        "SELECT user_id, role, joined_seq, last_delivered_seq, last_read_seq FROM members"
        ' WHERE conversation_id = %s ORDER BY joined_seq, user_id COLLATE "C"',
        (conversation_id,))]


def conversation_by_id(conn: Connection, conversation_id: str) -> ConversationRecord | None:
    row = conn.execute(
        "SELECT conversation_id, kind, name, last_seq, last_activity FROM conversations"
        " WHERE conversation_id = %s", (conversation_id,)).fetchone()
    if row is None:
        return None
    return ConversationRecord(*row, members=_members_of(conn, conversation_id))


def insert_conversation(conn: Connection, kind: str, name: str | None, creator: str,
                        others: list[str]) -> tuple[ConversationRecord, bool]:
    """Create a conversation; for a direct pair that already has one, return that instead."""
    direct_key = sql._direct_key(creator, others[0]) if kind == "direct" else None
    if direct_key is not None:
        row = conn.execute("SELECT conversation_id FROM conversations WHERE direct_key = %s",
                           (direct_key,)).fetchone()
        if row is not None:
            return _record(conn, row[0]), False
    conversation_id = new_id("c")
    ts = now_ms()
    try:
        conn.execute(
            "INSERT INTO conversations (conversation_id, kind, name, direct_key, last_activity,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (conversation_id, kind, name, direct_key, ts, ts))
    except errors.UniqueViolation:
        raise RunAgain("another node created this direct conversation meanwhile") from None
    users = [creator, *others]
    roles = ["admin" if kind == "group" else "member"] + ["member"] * len(others)
    conn.execute(
        "INSERT INTO members (conversation_id, user_id, role)"
        " SELECT %s, u, r FROM unnest(%s::text[], %s::text[]) AS t (u, r)",
        (conversation_id, users, roles))
    return _record(conn, conversation_id), True


def all_conversations(conn: Connection) -> list[ConversationRecord]:
    """Every conversation with its members: the node's in-memory state at start."""
    conversations = {
        row[0]: ConversationRecord(*row, members=[])
        for row in conn.execute(
            "SELECT conversation_id, kind, name, last_seq, last_activity FROM conversations")
    }
    for row in conn.execute(
            "SELECT conversation_id, user_id, role, joined_seq, last_delivered_seq, last_read_seq"
            ' FROM members ORDER BY conversation_id, joined_seq, user_id COLLATE "C"'):
        conversations[row[0]].members.append(MemberRecord(*row[1:]))
    return list(conversations.values())


def last_seqs_of(conn: Connection, user_id: str) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT c.conversation_id, c.last_seq FROM members AS m JOIN conversations AS c"
        " ON c.conversation_id = m.conversation_id WHERE m.user_id = %s", (user_id,)))


# --- messages and markers --------------------------------------------------------------------

def message_by_client_id(conn: Connection, sender_id: str, client_msg_id: str
                         ) -> Message | None:
    row = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender_id = %s AND client_msg_id = %s",
        (sender_id, client_msg_id)).fetchone()
    return None if row is None else _message(row)


# One statement appends a message: it looks for the original of a retry and for the sender's
# membership, takes the seq from the conversation's counter row only when it is a new message
# from a member (the UPDATE holds that row's lock to COMMIT), inserts it, and moves the sender's
# markers, and indexes it for search (words: pg_search.words_of, NULL for nothing to find).
# What it found comes back as one row: (new seq, is a member, the original's columns).
_APPEND = (
    "WITH original AS (SELECT * FROM messages"
    "   WHERE sender_id = %(sender)s AND client_msg_id = %(cmid)s),"
    " member AS (SELECT 1 FROM members WHERE conversation_id = %(cid)s AND user_id = %(sender)s),"
    " c AS (UPDATE conversations SET last_seq = last_seq + 1, last_activity = %(ts)s"
    "   WHERE conversation_id = %(cid)s AND NOT EXISTS (SELECT 1 FROM original)"
    "   AND EXISTS (SELECT 1 FROM member) RETURNING last_seq),"
    f" i AS (INSERT INTO messages ({_MESSAGE_COLUMNS}) SELECT %(cid)s, last_seq, %(sender)s,"
    "   %(cmid)s, %(kind)s, %(body)s, %(ts)s::bigint, %(media)s, %(reply_to)s::bigint,"
    "   %(target)s::bigint FROM c RETURNING seq),"
    " k AS (UPDATE members SET last_delivered_seq = GREATEST(last_delivered_seq, i.seq),"
    "   last_read_seq = GREATEST(last_read_seq, i.seq) FROM i"
    "   WHERE conversation_id = %(cid)s AND user_id = %(sender)s),"
    " s AS (INSERT INTO message_search (conversation_id, seq, words)"
    "   SELECT %(cid)s, seq, %(words)s::tsvector FROM i WHERE %(words)s::tsvector IS NOT NULL)"
    " SELECT (SELECT seq FROM i), EXISTS (SELECT 1 FROM member),"
    f" {_M_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN original AS m ON TRUE"
)


def append_message(conn: Connection, conversation_id: str, sender_id: str,
                   client_msg_id: str, kind: str, body: str, media_id: str | None,
                   reply_to: int | None, target: int | None) -> tuple[Message, bool]:
    """Append to the log; a known (sender, client_msg_id) returns the original message instead.

    A plain message is one round trip (_APPEND); as the writer's job in a pipelined batch it
    answers later (writer.Later). A reaction, edit, delete or media message first checks what
    it refers to, after the same original-and-membership question."""
    return _append(conn, conversation_id, sender_id, client_msg_id,  # type: ignore[return-value]
                   kind, body, media_id, reply_to, target, later=pipelined(conn))


def _append(conn: Connection, conversation_id: str, sender_id: str, client_msg_id: str,
            kind: str, body: str, media_id: str | None, reply_to: int | None,
            target: int | None, *, later: bool) -> tuple[Message, bool] | Later:
    """append_message; `later`: a plain message answers with a Later, read when the writer
    has sent the whole batch."""
    if target is not None or media_id is not None:
        found = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM members WHERE conversation_id = %s AND user_id = %s),"
            f" {_M_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN messages AS m"
            " ON m.sender_id = %s AND m.client_msg_id = %s",
            (conversation_id, sender_id, sender_id, client_msg_id)).fetchone()
        assert found is not None
        if found[1] is not None:
            return _message(found[1:]), False
        _require_member(found[0], client_msg_id)
        if target is not None:
            _check_target(conn, conversation_id, sender_id, client_msg_id, kind, target)
        if media_id is not None:
            _use_media(conn, media_id, sender_id, client_msg_id)
    if kind == "delete":
        body = ""
    ts = now_ms()
    try:
        cursor = conn.execute(_APPEND, {
            "cid": conversation_id, "sender": sender_id, "cmid": client_msg_id, "kind": kind,
            "body": body, "ts": ts, "media": media_id, "reply_to": reply_to,
            "target": target, "words": pg_search.words_of(kind, body, conversation_id)})
    except errors.UniqueViolation:
        raise RunAgain("another node stored this client_msg_id meanwhile") from None
    message = Message(conversation_id, 0, sender_id, client_msg_id, kind, body, ts, media_id,
                      reply_to, target)
    appended = partial(_appended, conn, cursor, message)
    return Later(appended) if later and target is None else appended()


def _appended(conn: Connection, cursor: psycopg.Cursor[Any], message: Message
              ) -> tuple[Message, bool]:
    """What _APPEND answered for `message` (its seq still 0), and what an edit or a delete does
    to its target once the append is known to be a new message from a member."""
    try:
        row = cursor.fetchone()
    except errors.UniqueViolation:
        raise RunAgain("another node stored this client_msg_id meanwhile") from None
    assert row is not None
    if row[2] is not None:
        return _message(row[2:]), False
    _require_member(row[1], message.client_msg_id)
    cid, target = message.conversation_id, message.target
    if message.kind == "edit" and target is not None:
        pg_search.reindex_message(conn, cid, target, message.body)
    if message.kind == "delete":
        # The log stays append-only, but a deleted message's content is gone for everyone.
        conn.execute("UPDATE messages SET body = '', media_id = NULL"
                     " WHERE conversation_id = %s AND seq = %s", (cid, target))
        # Its edits held its words too.
        conn.execute("UPDATE messages SET body = '' WHERE conversation_id = %s AND target = %s"
                     " AND kind = 'edit'", (cid, target))
        pg_search.unindex_message(conn, cid, target)
    return msgspec.structs.replace(message, seq=int(row[0])), True


def _require_member(is_member: bool, client_msg_id: str) -> None:
    if not is_member:
        raise ChatError(ErrorCode.FORBIDDEN, "not a member of this conversation",
                        ref=client_msg_id)


def _check_target(conn: Connection, conversation_id: str, sender_id: str,
                  client_msg_id: str, kind: str, target: int) -> None:
    row = conn.execute(
        "SELECT sender_id, kind, EXISTS (SELECT 1 FROM messages WHERE conversation_id = %s"
        " AND target = %s AND kind = 'delete') FROM messages WHERE conversation_id = %s"
        " AND seq = %s", (conversation_id, target, conversation_id, target)).fetchone()
    if row is None or row[1] not in sql._TARGETABLE[kind] or row[2]:
        raise ChatError(ErrorCode.INVALID, f"target names no message that can take a {kind}",
                        ref=client_msg_id)
    if kind != "reaction" and row[0] != sender_id:
        raise ChatError(ErrorCode.FORBIDDEN, f"only the author may {kind} a message",
                        ref=client_msg_id)


def _use_media(conn: Connection, media_id: str, sender_id: str, client_msg_id: str) -> None:
    cursor = conn.execute(
        "UPDATE media SET referenced = TRUE WHERE media_id = %s AND uploader_id = %s",
        (media_id, sender_id))
    if rowcount(cursor) != 1:
        raise ChatError(ErrorCode.INVALID, "media_id names no upload of yours",
                        ref=client_msg_id)


def insert_media(conn: Connection, sha256: str, size: int, content_type: str,
                 uploader_id: str) -> str:
    media_id = new_id("m")
    conn.execute(
        "INSERT INTO media (media_id, sha256, size, content_type, uploader_id, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (media_id, sha256, size, content_type, uploader_id, now_ms()))
    return media_id


def media_for(conn: Connection, media_id: str, user_id: str) -> tuple[str, str, int] | None:
    row = conn.execute(
        "SELECT sha256, content_type, size FROM media AS d WHERE media_id = %s AND ("
        " uploader_id = %s OR EXISTS (SELECT 1 FROM messages AS m JOIN members AS b"
        " ON b.conversation_id = m.conversation_id AND b.user_id = %s"
        " WHERE m.media_id = d.media_id AND m.seq > b.joined_seq))",
        (media_id, user_id, user_id)).fetchone()
    return None if row is None else (row[0], row[1], int(row[2]))


def sweep_unreferenced_media(conn: Connection, older_than_ms: int) -> list[str]:
    rows = conn.execute(
        "DELETE FROM media WHERE NOT referenced AND created_at < %s RETURNING sha256",
        (older_than_ms,)).fetchall()
    hashes = sorted({row[0] for row in rows})
    return [row[0] for row in conn.execute(
        "SELECT h FROM unnest(%s::text[]) AS h WHERE NOT EXISTS"
        " (SELECT 1 FROM media WHERE sha256 = h)", (hashes,))]


# Groups: the rules are group_rules.py's, shared with SQLite; here are PostgreSQL's statements
# for them.

def change_membership(conn: Connection, conversation_id: str, actor_id: str,
                      action: Literal["add", "remove"], user_id: str, group_members: int
                      ) -> tuple[list[Message], ConversationRecord]:
    """As sqlite.change_membership."""
    return group_rules.change_membership(_GROUP_STATEMENTS, conn, conversation_id, actor_id,
                                         action, user_id, group_members)


def set_member_role(conn: Connection, conversation_id: str, actor_id: str,
                    user_id: str, role: Literal["admin", "member"]
                    ) -> tuple[list[Message], ConversationRecord]:
    """As sqlite.set_member_role."""
    return group_rules.set_member_role(_GROUP_STATEMENTS, conn, conversation_id, actor_id,
                                       user_id, role)


def rename_group(conn: Connection, conversation_id: str, actor_id: str, name: str
                 ) -> tuple[list[Message], ConversationRecord]:
    return group_rules.rename_group(_GROUP_STATEMENTS, conn, conversation_id, actor_id, name)


def _lock_conversation(conn: Connection, conversation_id: str) -> None:
    # FOR UPDATE: two nodes changing one group at once take turns, so each sees the other's
    # members and roles (the rule "a group keeps an admin" holds across nodes).
    conn.execute("SELECT 1 FROM conversations WHERE conversation_id = %s FOR UPDATE",
                 (conversation_id,))


def _append_system_message(conn: Connection, conversation_id: str, actor_id: str,
                           body: str) -> Message:
    # Not append_message: the group rules need the seq now, not when the batch is read.
    appended = _append(conn, conversation_id, actor_id, new_id("sys"), "system", body, None,
                       None, None, later=False)
    assert not isinstance(appended, Later)
    return appended[0]


def _insert_member(conn: Connection, conversation_id: str, user_id: str, start: int) -> None:
    try:
        conn.execute(
            "INSERT INTO members (conversation_id, user_id, role, joined_seq,"
            " last_delivered_seq, last_read_seq) VALUES (%s, %s, 'member', %s, %s, %s)",
            (conversation_id, user_id, start, start, start))
    except errors.UniqueViolation:
        raise RunAgain("another node added this member meanwhile") from None


def _delete_member(conn: Connection, conversation_id: str, user_id: str) -> None:
    conn.execute("DELETE FROM members WHERE conversation_id = %s AND user_id = %s",
                 (conversation_id, user_id))


def _update_member_role(conn: Connection, conversation_id: str, user_id: str,
                        role: Literal["admin", "member"]) -> None:
    conn.execute("UPDATE members SET role = %s WHERE conversation_id = %s AND user_id = %s",
                 (role, conversation_id, user_id))


def _update_group_name(conn: Connection, conversation_id: str, name: str) -> None:
    conn.execute("UPDATE conversations SET name = %s WHERE conversation_id = %s",
                 (name, conversation_id))


_GROUP_STATEMENTS = group_rules.GroupStatements[Connection](
    lock_conversation=_lock_conversation, conversation=conversation_by_id, user=user_by_id,
    append_system_message=_append_system_message, insert_member=_insert_member,
    delete_member=_delete_member, update_member_role=_update_member_role,
    update_group_name=_update_group_name)


def _record(conn: Connection, conversation_id: str) -> ConversationRecord:
    record = conversation_by_id(conn, conversation_id)
    assert record is not None
    return record


def advance_markers(conn: Connection, conversation_id: str, user_id: str,
                    delivered: int, read: int) -> None:
    """Markers only move forward: GREATEST() in SQL, so a late or reordered update is harmless."""
    conn.execute(
        "UPDATE members SET last_delivered_seq = GREATEST(last_delivered_seq, %s, %s),"
        " last_read_seq = GREATEST(last_read_seq, %s) WHERE conversation_id = %s"
        " AND user_id = %s", (delivered, read, read, conversation_id, user_id))


def read_ranges(conn: Connection, ranges: list[CatchupRange]) -> list[Message]:
    """Messages of several (lo, hi] ranges in one statement: the ranges go in as four arrays,
    each an index range read on the primary key, range by range in the order given.

    The LIMIT (exact: a range holds hi - lo messages) keeps the planner from flattening the
    LATERAL subquery into a hash join over the whole log; as it is, each range is one
    parameterised scan of the primary key."""
    if not ranges:
        return []
    rows = conn.execute(
        f"SELECT {_M_COLUMNS} FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::bigint[])"
        f" AS r (i, cid, lo, hi) CROSS JOIN LATERAL (SELECT {_MESSAGE_COLUMNS} FROM messages"
        " WHERE conversation_id = r.cid AND seq > r.lo AND seq <= r.hi ORDER BY seq"
        " LIMIT r.hi - r.lo) AS m ORDER BY r.i, m.seq",
        (list(range(len(ranges))), [r.conversation_id for r in ranges],
         [r.lo for r in ranges], [r.hi for r in ranges])).fetchall()
    return [_message(row) for row in rows]


def history(conn: Connection, conversation_id: str, *, before: int | None,
            after: int | None, limit: int, min_seq: int) -> tuple[list[Message], bool]:
    """As sqlite.history: a page of the log, with whether it stopped short."""
    upper = before if before is not None else 2**62
    if after is not None:
        rows = conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s"
            " AND seq > %s AND seq < %s ORDER BY seq LIMIT %s",
            (conversation_id, max(after, min_seq), upper, limit + 1)).fetchall()
        return [_message(r) for r in rows[:limit]], len(rows) > limit
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s"
        " AND seq > %s AND seq < %s ORDER BY seq DESC LIMIT %s",
        (conversation_id, min_seq, upper, limit + 1)).fetchall()
    return [_message(r) for r in reversed(rows[:limit])], len(rows) > limit


def history_around(conn: Connection, conversation_id: str, *, around: int,
                   limit: int, min_seq: int) -> tuple[list[Message], bool]:
    """As sqlite.history_around: the page that holds `around` in its middle."""
    start = max(around, min_seq + 1)
    newer = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s"
        " AND seq >= %s ORDER BY seq LIMIT %s", (conversation_id, start, limit)).fetchall()
    older, has_more = history(conn, conversation_id, before=start, after=None,
                              limit=limit - min(len(newer), limit - limit // 2),
                              min_seq=min_seq)
    return older + [_message(r) for r in newer[:limit - len(older)]], has_more


def events_targeting(conn: Connection, conversation_id: str, seqs: list[int],
                     kinds: tuple[str, ...]) -> list[Message]:
    return [_message(row) for row in conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s"
        " AND target = ANY(%s::bigint[]) AND kind = ANY(%s::text[]) ORDER BY seq",
        (conversation_id, seqs, list(kinds)))]


def last_messages(conn: Connection, keys: list[tuple[str, int]]) -> dict[str, Message]:
    """The message at `last_seq` of each conversation, in one statement."""
    rows = conn.execute(
        f"SELECT {_M_COLUMNS} FROM unnest(%s::text[], %s::bigint[]) AS k (cid, seq)"
        " JOIN messages AS m ON m.conversation_id = k.cid AND m.seq = k.seq",
        ([cid for cid, _ in keys], [seq for _, seq in keys]))
    return {row[0]: _message(row) for row in rows}


def count_messages(conn: Connection) -> int:
    row = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert row is not None
    return int(row[0])


def set_last_seen(conn: Connection, user_id: str, ts: int) -> None:
    conn.execute("UPDATE users SET last_seen = %s WHERE user_id = %s", (ts, user_id))


def touch_health(conn: Connection) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('health', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(now_ms()),))


# --- the table -------------------------------------------------------------------------------

# sqlite.py's functions that take a connection but are not the node's operations: the schema is
# postgres.py's own business (migrate under an advisory lock, table_columns from the catalog).
NOT_OPERATIONS = frozenset({"migrate", "table_columns"})


def sqlite_operations() -> dict[str, Callable[..., Any]]:
    """Every public function of sqlite.py whose first parameter is a connection."""
    found = {}
    for name, fn in vars(sql).items():
        if (name.startswith("_") or name in NOT_OPERATIONS or not inspect.isfunction(fn)
                or fn.__module__ != sql.__name__):
            continue
        params = list(inspect.signature(fn).parameters)
        if params and params[0] == "conn":
            found[name] = fn
    return found


# search.py's functions that are SQLite's own machinery, with no meaning on PostgreSQL.
NOT_SEARCH_OPERATIONS = frozenset({"register_functions"})


def search_operations() -> dict[str, Callable[..., Any]]:
    """Every public function of search.py whose first parameter is a connection: their twins
    are pg_search.py's."""
    return {name: fn for name, fn in vars(search_index).items()
            if not name.startswith("_") and name not in NOT_SEARCH_OPERATIONS
            and inspect.isfunction(fn) and fn.__module__ == search_index.__name__
            and list(inspect.signature(fn).parameters)[:1] == ["conn"]}


def _build_twins() -> dict[Callable[..., Any], Callable[..., Any]]:
    here = globals()
    missing = sorted(name for name in sqlite_operations() if not callable(here.get(name)))
    missing += sorted(f"search.{name}" for name in search_operations()
                      if not callable(getattr(pg_search, name, None)))
    if missing:
        raise ImportError("chatnode.store.pg_ops has no twin for: " + ", ".join(missing))
    twins = {fn: here[name] for name, fn in sqlite_operations().items()}
    twins.update({fn: getattr(pg_search, name) for name, fn in search_operations().items()})
    return twins


TWINS = _build_twins()

# The operations whose first argument is a conversation whose rows (its counter, its members)
# they write: the writer locks those conversations at the start of each batch, in one order
# on every node (pg_store.PostgresTransactions._lock), so two nodes' batches never deadlock.
WRITE_ONE_CONVERSATION = frozenset({append_message, advance_markers, change_membership,
                                    set_member_role, rename_group})
