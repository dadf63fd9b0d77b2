"""The search index on PostgreSQL: search.py's twins (same names, parameters and results) on a
table of `tsvector`s that follows the log in the same transaction.

The tsvectors are built here, in Python, from search_text.index_text: the folding (case,
accents, compatibility forms, one token per CJK character) is the same code SQLite's index
uses, so both stores find the same messages. Neither the text nor a query goes through
PostgreSQL's parser or a text search configuration: a tsvector is written as a literal of
quoted lexemes with their positions, and a tsquery from search_text's parsed phrases, each
word quoted here (`<->` between a phrase's words, `:*` on a prefix), so no user input is ever
tsquery syntax, and the database's locale cannot split a word differently.

`cursor` (a bigserial, kept across edits) orders hits, newest first, and pages them, as the
message's rowid does on SQLite. `rebuild` locks the table against writes (EXCLUSIVE: searches
go on, sends wait for its COMMIT), so it may run beside running nodes without losing or
doubling what they write meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from ..search_text import Phrase, index_text
from . import search as sqlite_search
from .records import SearchRow
from .search import INDEXED_KINDS

Connection = psycopg.Connection[tuple[Any, ...]]

# PostgreSQL's limits: a longer lexeme is refused (to_tsvector drops it too), a later position
# is stored as this one.
MAX_LEXEME_BYTES = 2046
MAX_POSITION = 16383
REBUILD_CHUNK = 2000

# Migration 4 creates the table; fill_index then indexes the log already there.
CREATE_INDEX = """
    CREATE TABLE message_search (
        cursor          BIGSERIAL PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        seq             BIGINT NOT NULL,
        words           TSVECTOR NOT NULL,
        UNIQUE (conversation_id, seq)
    );
    CREATE INDEX message_search_words ON message_search USING GIN (words);
"""


def _quote(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


# Each row also holds its conversation as one lexeme, as SQLite's index has its `scope` column
# (search.py): for a reader who can read few messages, one GIN scan then intersects the words
# with the reader's conversations. Without it PostgreSQL walked the whole index newest first,
# testing each row until it had enough of the reader's (a common word: 10 times slower). No
# folded word starts with the mark: index_text keeps letters and digits only.
SCOPE_MARK = "~"


def scope_lexeme(conversation_id: str) -> str:
    return SCOPE_MARK + conversation_id


def tsvector_literal(text: str, conversation_id: str) -> str:
    """index_text's tokens as a tsvector literal, each at its position, then the conversation's
    scope lexeme; "" when the text has no token to find."""
    parts = []
    for position, word in enumerate(text.split(), 1):
        if len(word.encode()) <= MAX_LEXEME_BYTES:
            parts.append(f"{_quote(word)}:{min(position, MAX_POSITION)}")
    if not parts:
        return ""
    return " ".join([*parts, _quote(scope_lexeme(conversation_id))])


def words_of(kind: str, body: str, conversation_id: str) -> str | None:
    """The tsvector literal a new message is indexed with, or None when it has nothing to be
    found by (not text or media, or no letters or digits)."""
    if kind not in INDEXED_KINDS:
        return None
    return _words(body, conversation_id)


def _words(body: str, conversation_id: str) -> str | None:
    return tsvector_literal(index_text(body), conversation_id) or None


def tsquery_text(phrases: list[Phrase], within: Iterable[str] | None = None) -> str:
    """Every phrase required; a phrase's words side by side, its last one maybe a prefix. With
    `within`, only rows of those conversations (their scope lexemes) match."""
    parts = []
    for phrase in phrases:
        words = [_quote(word) for word in phrase.words]
        if phrase.prefix:
            words[-1] += ":*"
        parts.append("(" + " <-> ".join(words) + ")")
    if within is not None:
        parts.append("(" + " | ".join(_quote(scope_lexeme(cid)) for cid in within) + ")")
    return " & ".join(parts)


def index_message(conn: Connection, rowid: int, conversation_id: str, seq: int,
                  kind: str, body: str) -> None:
    """A new message (pg_ops.append_message does this inside its own statement; `rowid` has
    no meaning here: the table numbers its rows itself)."""
    words = words_of(kind, body, conversation_id)
    if words is not None:
        conn.execute("INSERT INTO message_search (conversation_id, seq, words)"
                     " VALUES (%s, %s, %s::tsvector)", (conversation_id, seq, words))


def unindex_message(conn: Connection, conversation_id: str, seq: int) -> None:
    conn.execute("DELETE FROM message_search WHERE conversation_id = %s AND seq = %s",
                 (conversation_id, seq))


def reindex_message(conn: Connection, conversation_id: str, seq: int, body: str) -> None:
    """An edit: the new text is found, the old one no longer; the hit keeps its place."""
    words = _words(body, conversation_id)
    if words is None:
        unindex_message(conn, conversation_id, seq)
        return
    conn.execute(
        "INSERT INTO message_search (conversation_id, seq, words) VALUES (%s, %s, %s::tsvector)"
        " ON CONFLICT (conversation_id, seq) DO UPDATE SET words = excluded.words",
        (conversation_id, seq, words))


_LATEST_EDIT = """(SELECT e.body FROM messages AS e
    WHERE e.conversation_id = m.conversation_id AND e.target = m.seq AND e.kind = 'edit'
    ORDER BY e.seq DESC LIMIT 1)"""

# The current text of every searchable message, in the order they were written.
_CURRENT_TEXT = f"""
    SELECT m.conversation_id, m.seq, coalesce({_LATEST_EDIT}, m.body) FROM messages AS m
    WHERE m.kind IN ('text', 'media') AND NOT EXISTS (
        SELECT 1 FROM messages AS d
        WHERE d.conversation_id = m.conversation_id AND d.target = m.seq AND d.kind = 'delete')
    ORDER BY m.ts, m.conversation_id COLLATE "C", m.seq
"""


def _chunks(rows: Iterable[tuple[Any, ...]]) -> Iterable[list[tuple[str, int, str]]]:
    chunk: list[tuple[str, int, str]] = []
    for conversation_id, seq, body in rows:
        words = _words(body, conversation_id)
        if words is not None:
            chunk.append((conversation_id, seq, words))
            if len(chunk) == REBUILD_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def fill_index(conn: Connection) -> int:
    """Index every message of the log into the (empty) table; the number indexed. Inside the
    caller's transaction: the log is read through a server-side cursor, chunk by chunk."""
    count = 0
    with conn.cursor(name="chatnode_reindex") as source, conn.cursor() as target:
        source.itersize = REBUILD_CHUNK
        source.execute(_CURRENT_TEXT)
        for chunk in _chunks(source):
            target.executemany("INSERT INTO message_search (conversation_id, seq, words)"
                               " VALUES (%s, %s, %s::tsvector)", chunk)
            count += len(chunk)
    return count


def create_index(conn: Connection) -> None:
    """Migration 4: the table, filled from the log already there."""
    conn.execute(CREATE_INDEX)
    fill_index(conn)


def rebuild(conn: Connection) -> int:
    """Empty the index and fill it again from the log; the number of messages indexed. The
    caller holds the transaction. The lock waits for the writers' open batches, then holds
    new writes until COMMIT, so every message is indexed exactly once, with its latest text."""
    conn.execute("LOCK TABLE message_search IN EXCLUSIVE MODE")
    conn.execute("DELETE FROM message_search")
    return fill_index(conn)


def search(conn: Connection, user_id: str, phrases: list[Phrase], *,
           conversation_id: str | None, before: int | None, limit: int) -> list[SearchRow]:
    """As search.search: hits newest first inside the reader's membership windows, narrowed
    to the reader's conversations inside the index when they can read few messages."""
    readable = dict(conn.execute(
        "SELECT m.conversation_id, c.last_seq - m.joined_seq FROM members AS m"
        " JOIN conversations AS c USING (conversation_id) WHERE m.user_id = %s",
        (user_id,)).fetchall())
    if conversation_id is not None:
        readable = {conversation_id: readable[conversation_id]} \
            if conversation_id in readable else {}
    if not readable:
        return []
    # As on SQLite, and with its threshold: above it, hits come densely anyway.
    scoped = sum(readable.values()) <= sqlite_search.SCOPED_UP_TO
    params: list[Any] = [user_id, tsquery_text(phrases, sorted(readable) if scoped else None)]
    narrower = ""
    if conversation_id is not None:
        narrower += " AND s.conversation_id = %s"
        params.append(conversation_id)
    if before is not None:
        narrower += " AND s.cursor < %s"
        params.append(before)
    params.append(limit)
    rows = conn.execute(
        "SELECT s.cursor, m.conversation_id, m.seq, m.sender_id, m.ts, m.kind,"
        f" coalesce({_LATEST_EDIT}, m.body) FROM message_search AS s"
        " JOIN members AS b ON b.conversation_id = s.conversation_id AND b.user_id = %s"
        " AND b.joined_seq < s.seq"
        " JOIN messages AS m ON m.conversation_id = s.conversation_id AND m.seq = s.seq"
        f" WHERE s.words @@ %s::tsquery{narrower} ORDER BY s.cursor DESC LIMIT %s",
        params).fetchall()
    return [SearchRow(*row) for row in rows]


def index_bytes(conn: Connection) -> int:
    """The index's size on disk: the table, its GIN index and its TOAST."""
    row = conn.execute("SELECT pg_total_relation_size('message_search')").fetchone()
    return 0 if row is None else int(row[0])
