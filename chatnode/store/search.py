"""The search index on SQLite: an FTS5 table that follows the log in the same transaction.

One row per text or media message that has text, holding its current text (the latest edit's,
once edited) as `search_text.index_text` gives it. Its rowid is the message's rowid in
`messages`, which only grows, so rowid order is commit order: newest first is rowid
descending, and a rowid is the paging cursor. Reactions, edits, deletes and system messages
are never rows of their own; an edit replaces its target's row and a delete removes it.
(A VACUUM may renumber the rowids of `messages`, which has no INTEGER PRIMARY KEY: chatnode
never runs one, and after one run by hand, `chatnode reindex` puts the index right.)

`scope` holds the conversation as one token, so a query is narrowed to the caller's
conversations inside FTS5 itself: a common word is then cheap for someone who can read few of
its messages. That narrowing costs in proportion to the messages of those conversations, so
above SCOPED_UP_TO of them it is left out: such a reader finds hits densely anyway. Either way
the members table decides what may be read (joined_seq included).

A PostgreSQL store implements the same functions (index_message, reindex_message,
unindex_message, rebuild, search, index_bytes) on its own full-text search; `search` takes
the parsed phrases, so each store writes its own query syntax from them.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from ..search_text import Phrase, index_text, match_expression
from .records import SearchRow

INDEXED_KINDS = ("text", "media")
# Readers of at most this many messages get their query narrowed to their conversations in
# FTS5 (measured on 200,000 messages: from 20 ms to 1 ms for a reader of two direct chats).
SCOPED_UP_TO = 100_000
_NOT_ALNUM = re.compile("[^0-9A-Za-z]")

# The migration that adds the index (appended to sqlite.MIGRATIONS, with FILL_INDEX).
CREATE_INDEX = """
    CREATE VIRTUAL TABLE message_search USING fts5 (
        text, scope, conversation_id UNINDEXED, seq UNINDEXED,
        tokenize = "unicode61 remove_diacritics 2"
    );
"""


def scope_token(conversation_id: str) -> str:
    """A conversation id as one token (unicode61 would split `c_12ab` at the underscore)."""
    return _NOT_ALNUM.sub("", conversation_id)


def register_functions(conn: sqlite3.Connection) -> None:
    """`index_text(body)` and `scope_token(id)` in SQL, so a migration and `rebuild` index
    exactly as Python does."""
    conn.create_function("index_text", 1, index_text, deterministic=True)
    conn.create_function("scope_token", 1, scope_token, deterministic=True)


def _insert(conn: sqlite3.Connection, rowid: int, conversation_id: str, seq: int,
            text: str) -> None:
    conn.execute("INSERT INTO message_search (rowid, text, scope, conversation_id, seq)"
                 " VALUES (?, ?, ?, ?, ?)",
                 (rowid, text, scope_token(conversation_id), conversation_id, seq))


def index_message(conn: sqlite3.Connection, rowid: int, conversation_id: str, seq: int,
                  kind: str, body: str) -> None:
    """A new message: only text and media (a caption) are searchable."""
    if kind in INDEXED_KINDS:
        text = index_text(body)
        if text:
            _insert(conn, rowid, conversation_id, seq, text)


def _rowid_of(conn: sqlite3.Connection, conversation_id: str, seq: int) -> int | None:
    row = conn.execute("SELECT rowid FROM messages WHERE conversation_id = ? AND seq = ?",
                       (conversation_id, seq)).fetchone()
    return None if row is None else int(row[0])


def unindex_message(conn: sqlite3.Connection, conversation_id: str, seq: int) -> None:
    """A deleted message is no longer found."""
    rowid = _rowid_of(conn, conversation_id, seq)
    if rowid is not None:
        conn.execute("DELETE FROM message_search WHERE rowid = ?", (rowid,))


def reindex_message(conn: sqlite3.Connection, conversation_id: str, seq: int,
                    body: str) -> None:
    """An edit: the new text is found, the old one no longer."""
    rowid = _rowid_of(conn, conversation_id, seq)
    if rowid is None:
        return
    conn.execute("DELETE FROM message_search WHERE rowid = ?", (rowid,))
    text = index_text(body)
    if text:
        _insert(conn, rowid, conversation_id, seq, text)


# A message's latest edit. INDEXED BY: without statistics the planner would walk the whole
# conversation backwards by seq to find it (or learn there is none).
_LATEST_EDIT = """(SELECT e.body FROM messages AS e INDEXED BY messages_by_target
    WHERE e.conversation_id = m.conversation_id AND e.target = m.seq AND e.kind = 'edit'
    ORDER BY e.seq DESC LIMIT 1)"""

# The current text of every searchable message: the latest edit's body, or its own; deleted
# messages (a `delete` targets them) have none.
_CURRENT_TEXT = f"""
    SELECT m.rowid AS rowid, m.conversation_id AS conversation_id, m.seq AS seq,
           coalesce({_LATEST_EDIT}, m.body) AS body
    FROM messages AS m
    WHERE m.kind IN ('text', 'media') AND NOT EXISTS (
        SELECT 1 FROM messages AS d INDEXED BY messages_by_target
        WHERE d.conversation_id = m.conversation_id AND d.target = m.seq AND d.kind = 'delete')
"""

FILL_INDEX = f"""
    INSERT INTO message_search (rowid, text, scope, conversation_id, seq)
    SELECT rowid, text, scope_token(conversation_id), conversation_id, seq FROM (
        SELECT rowid, index_text(body) AS text, conversation_id, seq FROM ({_CURRENT_TEXT}))
    WHERE text != '';
"""


def rebuild(conn: sqlite3.Connection) -> int:
    """Empty the index and fill it again from the log; the number of messages indexed. The
    caller holds the transaction, so readers see the old index or the new one, never half."""
    conn.execute("DELETE FROM message_search")
    conn.execute(FILL_INDEX)
    (count,) = conn.execute("SELECT count(*) FROM message_search").fetchone()
    return int(count)


def search(conn: sqlite3.Connection, user_id: str, phrases: list[Phrase], *,
           conversation_id: str | None, before: int | None, limit: int) -> list[SearchRow]:
    """Hits newest first that `user_id` may read: in a conversation they are a member of, past
    the seq they joined at. `phrases` (search_text.parse_query) must all match; `before` is a
    cursor: only hits older than it."""
    readable = dict(conn.execute(
        "SELECT m.conversation_id, c.last_seq - m.joined_seq FROM members AS m"
        " JOIN conversations AS c USING (conversation_id) WHERE m.user_id = ?", (user_id,)))
    if conversation_id is not None:
        readable = {conversation_id: readable[conversation_id]} \
            if conversation_id in readable else {}
    if not readable:
        return []
    expression = f"{{text}} : ({match_expression(phrases)})"
    if sum(readable.values()) <= SCOPED_UP_TO:
        within = " OR ".join(f'"{scope_token(cid)}"' for cid in readable)
        expression += f" AND {{scope}} : ({within})"
    params: list[Any] = [expression, user_id]
    narrower = ""
    if conversation_id is not None:
        narrower += " AND s.conversation_id = ?"
        params.append(conversation_id)
    if before is not None:
        narrower += " AND s.rowid < ?"
        params.append(before)
    params.append(limit)
    # Driven by FTS5 in rowid order, newest first, so LIMIT stops the scan early; only then
    # are the hits' messages (and latest edits) read.
    rows = conn.execute(
        "WITH hits AS MATERIALIZED (SELECT s.rowid AS cursor, s.conversation_id, s.seq"
        " FROM message_search AS s WHERE message_search MATCH ? AND EXISTS (SELECT 1"
        " FROM members AS b WHERE b.conversation_id = s.conversation_id AND b.user_id = ?"
        f" AND b.joined_seq < s.seq){narrower} ORDER BY s.rowid DESC LIMIT ?)"
        " SELECT h.cursor, m.conversation_id, m.seq, m.sender_id, m.ts, m.kind,"
        f" coalesce({_LATEST_EDIT}, m.body) FROM hits AS h JOIN messages AS m"
        " ON m.conversation_id = h.conversation_id AND m.seq = h.seq ORDER BY h.cursor DESC",
        params).fetchall()
    return [SearchRow(*row) for row in rows]


def index_bytes(conn: sqlite3.Connection) -> int:
    """The index's size on disk: its shadow tables' pages (needs the dbstat table)."""
    (size,) = conn.execute(
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'message_search%'"
    ).fetchone()
    return int(size)
