"""The search index without a node: no query can be FTS5 syntax, the index follows the log in
its transaction, a migration indexes the messages already there, and a rebuild gives the same
index the log's own writes gave. The store's half runs on SQLite (FTS5) and on PostgreSQL
(pg_search.py's tsvectors), which must find the same messages."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatnode.search_text import (
    Phrase,
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


def test_a_lone_combining_accent_is_no_word() -> None:
    """It folds to nothing, in the index and in a query: an empty word would be a tsquery
    syntax error on PostgreSQL (a 500)."""
    assert parse_query('"x \u0301 y"') == [Phrase(("x", "y"))]
    with pytest.raises(QueryError, match="no letters or digits"):
        parse_query("\u0301")


def test_a_prefix_needs_two_letters_but_a_cjk_character_is_enough() -> None:
    with pytest.raises(QueryError):
        parse_query("a*")
    assert match_expression(parse_query("東*")) == '"東" *'


# --- the index in the store, on both stores ----------------------------------------------

STORES = ["sqlite", "postgres"]


@pytest.fixture(params=STORES)
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store's connection in autocommit mode: SQLite's, or PostgreSQL's."""
    if request.param == "sqlite":
        connection: Any = sql.open_database(tmp_path)
    else:
        from chatnode.store import postgres

        connection = postgres.open_migrated(request.getfixturevalue("pg_url"))
    yield connection
    connection.close()


def on_sqlite(conn: Any) -> bool:
    return isinstance(conn, sqlite3.Connection)


def ops(conn: Any) -> ModuleType:
    """sqlite.py, or its PostgreSQL twins."""
    if on_sqlite(conn):
        return sql
    from chatnode.store import pg_ops

    return pg_ops


def index_ops(conn: Any) -> ModuleType:
    """search.py, or its PostgreSQL twins."""
    if on_sqlite(conn):
        return search_index
    from chatnode.store import pg_search

    return pg_search


def in_one_transaction(conn: Any, fn: Callable[[Any], Any]) -> Any:
    if on_sqlite(conn):
        conn.execute("BEGIN")
        result = fn(conn)
        conn.execute("COMMIT")
        return result
    with conn.transaction():
        return fn(conn)


def conversation(conn: Any) -> tuple[str, str]:
    users = [ops(conn).insert_user(conn, name, None, "x").user_id for name in ("ann", "ben")]
    record, _ = ops(conn).insert_conversation(conn, "direct", None, users[0], users[1:])
    return record.conversation_id, users[0]


def sender(conn: Any, conversation_id: str, user_id: str) -> Callable[..., int]:
    """send(kind, body, target=None) -> the new message's seq."""
    ids = itertools.count()

    def send(kind: str, body: str, target: int | None = None) -> int:
        return ops(conn).append_message(conn, conversation_id, user_id, f"m{next(ids)}", kind,
                                        body, None, None, target)[0].seq

    return send


def indexed(conn: Any) -> list[tuple[str, int, list[str]]]:
    """Each indexed message with its words (sorted: a tsvector keeps no order), oldest first."""
    if on_sqlite(conn):
        rows = conn.execute(
            "SELECT conversation_id, seq, text FROM message_search ORDER BY rowid").fetchall()
        return [(cid, seq, sorted(set(text.split()))) for cid, seq, text in rows]
    rows = conn.execute("SELECT conversation_id, seq, tsvector_to_array(words)"
                        " FROM message_search ORDER BY cursor").fetchall()
    # PostgreSQL's rows also hold their conversation as one lexeme (pg_search.SCOPE_MARK).
    assert all(f"~{cid}" in words for cid, _, words in rows)
    return [(cid, seq, sorted(w for w in words if w != f"~{cid}")) for cid, seq, words in rows]


def found(conn: Any, user: str, query: str, conversation_id: str | None = None
          ) -> list[tuple[str, int]]:
    rows = index_ops(conn).search(conn, user, parse_query(query),
                                  conversation_id=conversation_id, before=None, limit=10)
    return [(r.conversation_id, r.seq) for r in rows]


def test_rebuild_gives_the_index_the_log_built(conn: Any) -> None:
    cid, ann = conversation(conn)
    send = sender(conn, cid, ann)
    kept = send("text", "Grüße aus Köln")
    edited = send("text", "first draft")
    send("edit", "second draft", edited)
    gone = send("text", "regrettable")
    send("reaction", "👍", kept)
    send("delete", "", gone)
    by_the_log = indexed(conn)
    assert by_the_log == [(cid, kept, ["aus", "grusse", "koln"]),
                          (cid, edited, ["draft", "second"])]
    assert in_one_transaction(conn, index_ops(conn).rebuild) == 2
    assert indexed(conn) == by_the_log
    assert found(conn, ann, "draft") == [(cid, edited)]
    assert found(conn, ann, "first") == []


def test_edits_and_deletes_reach_the_index_with_the_log(conn: Any) -> None:
    """An edit is found by its new words only and keeps its place in the order (even one of a
    message that had no words); a delete is found by none of its words, nor its edits'."""
    cid, ann = conversation(conn)
    send = sender(conn, cid, ann)
    first = send("text", "otter one")
    second = send("text", "otter two")
    send("edit", "otter changed", first)
    assert found(conn, ann, "otter") == [(cid, second), (cid, first)]
    assert found(conn, ann, "one") == []
    assert found(conn, ann, "changed") == [(cid, first)]
    blank = send("text", "?!")
    assert found(conn, ann, "nothing") == []
    send("edit", "from nothing", blank)
    assert found(conn, ann, "nothing") == [(cid, blank)]
    send("delete", "", first)
    assert found(conn, ann, "changed") == []
    assert found(conn, ann, "otter") == [(cid, second)]


@pytest.mark.parametrize("query, text", [
    ("cafe", "Un CAFÉ, merci"),
    ("CAFÉ", "un cafe"),
    ('"new york"', "New York, new jersey"),
    ("new-yo*", "New York"),
    ("pho*", "Photos of phones"),
    ("東京", "私は東京に行った"),
    ("京", "私は東京に行った"),
    ("καλημερα", "Καλημέρα!"),
    ("ПРИВЕТ", "привет, мир"),
    ("ﬁle", "the FILE"),
    ("नमस्ते", "नमस्ते दुनिया"),
])
def test_both_stores_find_by_the_same_folding(conn: Any, query: str, text: str) -> None:
    cid, ann = conversation(conn)
    sender(conn, cid, ann)("text", text)
    assert found(conn, ann, query) == [(cid, 1)]


@pytest.mark.parametrize("query, text", [
    ('"york new"', "New York"),
    ('"new york"', "new jersey, York"),
    ("東京", "京東"),
    ("phones", "phone"),
    ("ph* zebra", "phones"),
])
def test_both_stores_miss_the_same(conn: Any, query: str, text: str) -> None:
    cid, ann = conversation(conn)
    sender(conn, cid, ann)("text", text)
    assert found(conn, ann, query) == []


HOSTILE = ["'", "\\", "a'b", "x:*", "a & b", "a | b", "!a", "a <-> b", "(a", "a)", "''''",
           "\\'", "a:1", "-a", '"a \\" b"', "<2>", "a:*B", "NEAR(a b)", "{text}:a", "a\\:*",
           "a:*zzz", "\u0301", '"x \u0301 y"', "\u0301*"]


def test_no_query_is_syntax_for_the_store(conn: Any) -> None:
    """Whatever a user types is refused with a reason or searched for as words: never a
    syntax error of FTS5 or of tsquery (a 500)."""
    cid, ann = conversation(conn)
    sender(conn, cid, ann)("text", "a b x text")
    for query in HOSTILE:
        try:
            parse_query(query)
        except QueryError:
            continue
        found(conn, ann, query)
    assert found(conn, ann, "a:*zzz") == []
    assert found(conn, ann, "a & b") == [(cid, 1)]


def test_long_and_repetitive_messages_are_indexed(conn: Any) -> None:
    """A word repeated past PostgreSQL's 256 positions per lexeme, and a word longer than its
    lexemes may be (dropped there, as to_tsvector drops it), do not fail the send."""
    cid, ann = conversation(conn)
    sender(conn, cid, ann)("text", "spam " * 600 + "x" * 3000 + " tail end")
    assert found(conn, ann, "spam") == [(cid, 1)]
    assert found(conn, ann, '"tail end"') == [(cid, 1)]


def test_pages_go_newest_first_by_the_cursor(conn: Any) -> None:
    cid, ann = conversation(conn)
    send = sender(conn, cid, ann)
    for n in range(5):
        send("text", f"page {n}")
    search = index_ops(conn).search
    rows = search(conn, ann, parse_query("page"), conversation_id=None, before=None, limit=3)
    assert [r.seq for r in rows] == [5, 4, 3]
    rest = search(conn, ann, parse_query("page"), conversation_id=None,
                  before=rows[-1].cursor, limit=3)
    assert [(r.seq, r.body) for r in rest] == [(2, "page 1"), (1, "page 0")]


def test_a_store_from_before_search_is_indexed_when_migrated(conn: Any, tmp_path: Path
                                                             ) -> None:
    """Messages written before search existed are found after the upgrade."""
    cid, ann = conversation(conn)
    sender(conn, cid, ann)("text", "written before search")
    # Back to version 3: as if this store came from the release before search (migration 4);
    # migration 5 (invites and roles) is undone too, since it runs again after 4.
    if on_sqlite(conn):
        conn.executescript(
            "BEGIN; DROP TABLE message_search; DROP TABLE invites;"
            " ALTER TABLE users DROP COLUMN role; PRAGMA user_version = 3; COMMIT;")
        conn.close()
        conn = sql.open_database(tmp_path)
        assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    else:
        from chatnode.store import postgres

        with conn.transaction():
            conn.execute("DROP TABLE message_search")
            conn.execute("DROP TABLE invites")
            conn.execute("ALTER TABLE users DROP COLUMN role")
            conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        assert postgres.migrate(conn) == 3
        assert postgres.schema_version(conn) == postgres.SCHEMA_VERSION
    try:
        assert indexed(conn) == [(cid, 1, ["before", "search", "written"])]
        assert found(conn, ann, "before") == [(cid, 1)]
    finally:
        if on_sqlite(conn):
            conn.close()


def test_a_postgresql_index_from_before_scope_lexemes_is_found_after_migration_6(
        pg_url: str) -> None:
    """Rows written by a release before migration 6 had no scope lexeme: a search narrowed to
    the reader's conversations would miss them. Migration 6 gives each row its own."""
    from chatnode.store import postgres

    conn = postgres.open_migrated(pg_url)
    try:
        cid, ann = conversation(conn)
        sender(conn, cid, ann)("text", "an old otter")
        with conn.transaction():  # back to version 5: the rows as that release wrote them
            conn.execute("UPDATE message_search"
                         " SET words = ts_delete(words, '~' || conversation_id)")
            conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
        assert found(conn, ann, "otter") == []  # what a scoped search made of such rows
        assert postgres.migrate(conn) == 5
        assert indexed(conn) == [(cid, 1, ["an", "old", "otter"])]  # with its scope lexeme
        assert found(conn, ann, "otter") == [(cid, 1)]
    finally:
        conn.close()


@pytest.mark.parametrize("scoped_up_to", [0, search_index.SCOPED_UP_TO])
def test_both_ways_of_searching_keep_to_the_readers_window(
        conn: Any, monkeypatch: pytest.MonkeyPatch, scoped_up_to: int) -> None:
    """Narrowed in the index to the reader's conversations (FTS5's scope column, PostgreSQL's
    scope lexemes) or not (a reader of many messages), a search finds only messages of the
    reader's conversations, written after they joined; a member removed from a group finds
    nothing of it any more."""
    monkeypatch.setattr(search_index, "SCOPED_UP_TO", scoped_up_to)
    ann, ben, cat = (ops(conn).insert_user(conn, name, None, "x").user_id
                     for name in ("ann", "ben", "cat"))
    group, _ = ops(conn).insert_conversation(conn, "group", "g", ann, [ben])
    other, _ = ops(conn).insert_conversation(conn, "direct", None, ann, [cat])
    gid = group.conversation_id
    ids = itertools.count()

    def say(cid: str, sender: str, body: str) -> int:
        return ops(conn).append_message(conn, cid, sender, f"m{next(ids)}", "text", body,
                                        None, None, None)[0].seq

    early = say(gid, ann, "otter early")
    say(other.conversation_id, ann, "otter elsewhere")
    ops(conn).change_membership(conn, gid, ann, "add", cat, 10)
    late = say(gid, ben, "otter late")

    assert found(conn, ben, "otter") == [(gid, late), (gid, early)]
    assert found(conn, cat, "otter") == [(gid, late), (other.conversation_id, 1)]
    assert found(conn, cat, "otter", gid) == [(gid, late)]
    assert found(conn, ben, "otter", other.conversation_id) == []
    ops(conn).change_membership(conn, gid, ann, "remove", ben, 10)
    assert found(conn, ben, "otter") == []


@pytest.fixture
def pg(pg_url: str) -> Iterator[Any]:
    from chatnode.store import postgres

    connection = postgres.connect(pg_url)
    yield connection
    connection.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80) | st.lists(st.sampled_from(
    ["'", "\\", ":", "*", "&", "|", "!", "<->", "(", ")", '"', " ", "a", "東京", "é", "ﬁ",
     "Ꙃ", "\u0301", "\U0002a6a5", "1", "_"]), max_size=14).map("".join))
def test_any_text_and_any_query_are_valid_tsvector_and_tsquery(pg: Any, text: str) -> None:
    """Whatever a message or a query holds, PostgreSQL takes what pg_search builds from it (a
    send never fails on its index, a search is never a 500), and finds the text by its words."""
    from chatnode.store import pg_search

    words = pg_search.words_of("text", text, "c_here") or ""
    try:
        phrases = parse_query(text)
    except QueryError:
        pg.execute("SELECT %s::tsvector", (words,))
        return
    for within, matches in ((None, True), (["c_here"], True), (["c_else", "c_here"], True),
                            (["c_else"], False)):
        row = pg.execute("SELECT %s::tsvector @@ %s::tsquery",
                         (words, pg_search.tsquery_text(phrases, within))).fetchone()
        assert row == (matches,), within


def test_a_rebuild_beside_a_writer_loses_and_doubles_nothing(pg_url: str) -> None:
    """`chatnode reindex` on PostgreSQL while nodes write: a send and an edit made during the
    rebuild wait for its COMMIT, then land in the rebuilt index with their own words."""
    from chatnode.store import pg_ops, pg_search, postgres

    writer = postgres.open_migrated(pg_url)
    other_writer = postgres.connect(pg_url)
    rebuilder = postgres.connect(pg_url)
    try:
        cid, ann = conversation(writer)
        draft = sender(writer, cid, ann)("text", "draft words")
        writes = [(writer, "m-new", "text", "sent meanwhile", None),
                  (other_writer, "m-edit", "edit", "edited meanwhile", draft)]
        threads = [threading.Thread(target=pg_ops.append_message,
                                    args=(conn, cid, ann, cmid, kind, body, None, None, target))
                   for conn, cmid, kind, body, target in writes]
        with rebuilder.transaction():
            assert pg_search.rebuild(rebuilder) == 1
            for thread in threads:
                thread.start()
            time.sleep(0.3)  # not a timing assertion: only gives the writes time to block
            assert all(thread.is_alive() for thread in threads)
        for thread in threads:
            thread.join(10)
        new = pg_ops.message_by_client_id(writer, ann, "m-new")
        assert new is not None
        assert sorted(indexed(writer)) == sorted([(cid, draft, ["edited", "meanwhile"]),
                                                  (cid, new.seq, ["meanwhile", "sent"])])
        assert sorted(found(writer, ann, "meanwhile")) == sorted([(cid, draft), (cid, new.seq)])
    finally:
        for conn in (writer, other_writer, rebuilder):
            conn.close()
