"""The search index without a node: no query can be FTS5 syntax, the index follows the log in
its transaction, a migration indexes the messages already there, and a rebuild gives the same
index the log's own writes gave."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatnode.search_text import (
    QueryError,
    index_text,
    marks,
    match_expression,
    parse_query,
    snippet,
)
from chatnode.store import search as search_index
from chatnode.store import sqlite as sql


def fts_table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5 (text,"
                 " tokenize = 'unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO t (text) VALUES (?)", (index_text('a "quoted" NEAR(x) text'),))
    return conn


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60) | st.lists(st.sampled_from(
    ['"', "*", "(", ")", ":", "^", "-", "+", "NEAR", "AND", "OR", "NOT", "a", "b", " ",
     "東京", "é", "{", "}", ",", "'"]), max_size=12).map("".join))
def test_no_query_reaches_fts5_as_syntax(query: str) -> None:
    """Whatever a user types either is refused with a reason (a 400) or is a MATCH expression
    FTS5 accepts: never an FTS5 syntax error (a 500)."""
    try:
        phrases = parse_query(query)
    except QueryError as exc:
        assert str(exc)
        return
    fts_table().execute("SELECT rowid FROM t WHERE t MATCH ?",
                        (match_expression(phrases),)).fetchall()


@pytest.mark.parametrize("query, text, want", [
    ("cafe", "Un CAFÉ, merci", ["CAFÉ"]),
    ('"new york"', "New York, new jersey, York New", ["New York"]),
    ("pho*", "Photos of phones", ["Photos", "phones"]),
    ("東京", "私は東京に行った", ["東京"]),
    ("καλημερα", "Καλημέρα!", ["Καλημέρα"]),
])
def test_marks_cover_what_matched(query: str, text: str, want: list[str]) -> None:
    assert [text[a:b] for a, b in marks(text, parse_query(query))] == want


def test_a_snippet_keeps_its_marks_in_place() -> None:
    text = "x" * 300 + " needle " + "y" * 300
    cut, spans = snippet(text, parse_query("needle"))
    assert [cut[a:b] for a, b in spans] == ["needle"]
    assert len(cut) <= 162


def test_a_prefix_needs_two_letters_but_a_cjk_character_is_enough() -> None:
    with pytest.raises(QueryError):
        parse_query("a*")
    assert match_expression(parse_query("東*")) == '"東" *'


# --- the index in the store ---------------------------------------------------------------

def conversation(conn: sqlite3.Connection) -> tuple[str, str]:
    users = [sql.insert_user(conn, name, None, "x").user_id for name in ("ann", "ben")]
    record, _ = sql.insert_conversation(conn, "direct", None, users[0], users[1:])
    return record.conversation_id, users[0]


def indexed(conn: sqlite3.Connection) -> list[tuple[str, int, str]]:
    return conn.execute(
        "SELECT conversation_id, seq, text FROM message_search ORDER BY rowid").fetchall()


def test_rebuild_gives_the_index_the_log_built(tmp_path: Path) -> None:
    conn = sql.open_database(tmp_path)
    cid, ann = conversation(conn)

    ids = itertools.count()

    def send(kind: str, body: str, target: int | None = None) -> int:
        return sql.append_message(conn, cid, ann, f"m{next(ids)}", kind, body, None, None,
                                  target)[0].seq

    kept = send("text", "Grüße aus Köln")
    edited = send("text", "first draft")
    send("edit", "second draft", edited)
    gone = send("text", "regrettable")
    send("reaction", "👍", kept)
    send("delete", "", gone)
    by_the_log = indexed(conn)
    assert by_the_log == [(cid, kept, "grusse aus koln"), (cid, edited, "second draft")]
    conn.execute("BEGIN")
    assert search_index.rebuild(conn) == 2
    conn.execute("COMMIT")
    assert indexed(conn) == by_the_log
    conn.close()


def test_a_store_from_before_search_is_indexed_when_migrated(tmp_path: Path) -> None:
    """Messages written before search existed are found after the upgrade."""
    conn = sql.open_database(tmp_path)
    cid, ann = conversation(conn)
    sql.append_message(conn, cid, ann, "old", "text", "written before search", None, None,
                       None)
    # Back to version 3: as if this store came from the release before search (migration 4).
    conn.executescript("BEGIN; DROP TABLE message_search; PRAGMA user_version = 3; COMMIT;")
    conn.close()
    conn = sql.open_database(tmp_path)
    assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    assert indexed(conn) == [(cid, 1, "written before search")]
    rows = search_index.search(conn, ann, parse_query("before"), conversation_id=None,
                               before=None, limit=10)
    assert [(r.seq, r.body) for r in rows] == [(1, "written before search")]
    conn.close()


@pytest.mark.parametrize("scoped_up_to", [0, search_index.SCOPED_UP_TO])
def test_both_ways_of_searching_keep_to_the_readers_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scoped_up_to: int) -> None:
    """Narrowed in FTS5 to the reader's conversations or not (a reader of many messages), a
    search finds only messages of the reader's conversations, written after they joined."""
    monkeypatch.setattr(search_index, "SCOPED_UP_TO", scoped_up_to)
    conn = sql.open_database(tmp_path)
    ann, ben, cat = (sql.insert_user(conn, name, None, "x").user_id
                     for name in ("ann", "ben", "cat"))
    group, _ = sql.insert_conversation(conn, "group", "g", ann, [ben])
    other, _ = sql.insert_conversation(conn, "direct", None, ann, [cat])
    gid = group.conversation_id
    ids = itertools.count()

    def say(cid: str, sender: str, body: str) -> int:
        return sql.append_message(conn, cid, sender, f"m{next(ids)}", "text", body, None,
                                  None, None)[0].seq

    early = say(gid, ann, "otter early")
    say(other.conversation_id, ann, "otter elsewhere")
    sql.change_membership(conn, gid, ann, "add", cat, 10)
    late = say(gid, ben, "otter late")
    otter = parse_query("otter")

    def found(user: str, conversation_id: str | None = None) -> list[tuple[str, int]]:
        rows = search_index.search(conn, user, otter, conversation_id=conversation_id,
                                   before=None, limit=10)
        return [(r.conversation_id, r.seq) for r in rows]

    assert found(ben) == [(gid, late), (gid, early)]
    assert found(cat) == [(gid, late), (other.conversation_id, 1)]
    assert found(cat, gid) == [(gid, late)]
    assert found(ben, other.conversation_id) == []
    conn.close()
