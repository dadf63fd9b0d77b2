"""The node's store, SQLite on a real file and PostgreSQL on a real server (one suite: the
`store` and `db` fixtures run each test on both): group commit, gap-free seqs, idempotent
sends, forward-only markers, direct-pair uniqueness, history paging and the catch-up range
reads. The tests of SQLite's own machinery (its WAL, its query plans, its migrations) run on
SQLite only."""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from chatnode.protocol import ChatError, ErrorCode, Message
from chatnode.store import CatchupRange, Job, SqliteStore, StoreUnavailable
from chatnode.store import sqlite as sql

SETTINGS = settings(max_examples=150, deadline=None)


# --- both stores ------------------------------------------------------------------------------

STORES = ["sqlite", "postgres"]


def ops_for(conn: Any) -> ModuleType:
    """The module of operations for a connection: sqlite.py, or its PostgreSQL twins."""
    if isinstance(conn, sqlite3.Connection):
        return sql
    from chatnode.store import pg_ops

    return pg_ops


def query(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A test's own probe on either store: SQLite's ? marks become psycopg's %s."""
    if not isinstance(conn, sqlite3.Connection):
        statement = statement.replace("?", "%s")
    return [tuple(row) for row in conn.execute(statement, params).fetchall()]


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    """Builds the node's store of the test's kind (SqliteStore or PostgresStore)."""
    if request.param == "sqlite":
        return lambda **kw: SqliteStore(tmp_path / "data", **kw)
    url = request.getfixturevalue("pg_url")
    from chatnode.store.pg_store import PostgresStore

    return lambda **kw: PostgresStore(url, **kw)


@pytest.fixture(params=STORES)
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store's connection, in autocommit mode, for the plain operations."""
    if request.param == "sqlite":
        connection: Any = sql.open_database(tmp_path, "normal")
    else:
        from chatnode.store import postgres

        connection = postgres.open_migrated(request.getfixturevalue("pg_url"))
    yield connection
    connection.close()


# --- helpers ----------------------------------------------------------------------------------

def add_user(conn: Any, username: str) -> str:
    return ops_for(conn).insert_user(conn, username, None, "not-a-real-hash").user_id


def append(conn: Any, conversation_id: str, sender_id: str, client_msg_id: str,
           body: str = "hello") -> tuple[Message, bool]:
    return ops_for(conn).append_message(conn, conversation_id, sender_id, client_msg_id,  # type: ignore[no-any-return]
                                        "text", body, None, None, None)


def seed(conn: Any, counts: dict[str, int]) -> dict[str, str]:
    """Two users and one group per entry of `counts`, holding that many messages; returns
    name -> conversation_id. One transaction, so seeding costs one fsync."""
    ops = ops_for(conn)
    conn.execute("BEGIN")
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob")
    ids = {}
    for name, count in counts.items():
        record, _ = ops.insert_conversation(conn, "group", name, alice, [bob])
        ids[name] = record.conversation_id
        for i in range(count):
            append(conn, record.conversation_id, alice if i % 2 else bob, f"{name}-{i}")
    conn.execute("COMMIT")
    return ids


def marker_row(conn: Any, conversation_id: str, user_id: str) -> tuple[int, int]:
    (row,) = query(conn, "SELECT last_delivered_seq, last_read_seq FROM members"
                   " WHERE conversation_id = ? AND user_id = ?", (conversation_id, user_id))
    return row  # type: ignore[return-value]


def last_seq(conn: Any, conversation_id: str) -> int:
    (row,) = query(conn, "SELECT last_seq FROM conversations WHERE conversation_id = ?",
                   (conversation_id,))
    return int(row[0])


def log_of(conn: Any, conversation_id: str) -> list[tuple[int, str]]:
    return query(conn, "SELECT seq, client_msg_id FROM messages WHERE conversation_id = ?"  # type: ignore[return-value]
                 " ORDER BY seq", (conversation_id,))


def seqs_of(messages: list[Message]) -> list[tuple[str, int]]:
    return [(m.conversation_id, m.seq) for m in messages]


def seqs_in(ranges: list[CatchupRange]) -> list[tuple[str, int]]:
    return [(r.conversation_id, s) for r in ranges for s in range(r.lo + 1, r.hi + 1)]


class Store:
    """A started store (of either kind) with two users (and a stranger) and one group,
    recording the size of every batch the writer commits."""

    def __init__(self, make_store: Callable[..., Any]) -> None:
        self.batches: list[int] = []
        self.store = make_store(on_batch=lambda size, seconds: self.batches.append(size))

    async def __aenter__(self) -> Store:
        self.store.start()
        self.alice = (await self.store.write(sql.insert_user, "alice", None, "h")).user_id
        self.bob = (await self.store.write(sql.insert_user, "bob", None, "h")).user_id
        self.mallory = (await self.store.write(sql.insert_user, "mallory", None, "h")).user_id
        record, _ = await self.store.write(sql.insert_conversation, "group", "g", self.alice,
                                           [self.bob])
        self.cid = record.conversation_id
        self.batches.clear()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()

    def submit_append(self, sender: str, client_msg_id: str, conversation_id: str | None = None,
                      **kwargs: Any) -> Job:
        return self.store.submit(sql.append_message, conversation_id or self.cid, sender,
                                 client_msg_id, "text", f"body of {client_msg_id}", None, None,
                                 None, **kwargs)

    async def gate(self) -> threading.Event:
        """Hold the writer inside a batch of its own until the returned event is set, so that
        everything submitted meanwhile is committed together in the next batch."""
        started, release = threading.Event(), threading.Event()

        def hold(conn: Any) -> None:
            started.set()
            release.wait(10)

        self.store.submit(hold)
        assert await trio.to_thread.run_sync(started.wait, 10)
        return release


# --- group commit -----------------------------------------------------------------------------

async def test_group_commit_puts_concurrent_sends_in_few_batches(
        make_store: Callable[..., Any]) -> None:
    async with Store(make_store) as s:
        jobs = [s.submit_append(s.alice, f"m{i}") for i in range(500)]
        results = [await job.wait() for job in jobs]
        log = await s.store.read(log_of, s.cid)
    assert sum(s.batches) == 500
    assert len(s.batches) <= 10, f"500 queued sends took {len(s.batches)} commits"
    assert [m.seq for m, _ in results] == list(range(1, 501))
    assert all(created for _, created in results)
    assert log == [(i + 1, f"m{i}") for i in range(500)]


async def test_seqs_follow_submission_order_per_conversation(
        make_store: Callable[..., Any]) -> None:
    async with Store(make_store) as s:
        other, _ = await s.store.write(sql.insert_conversation, "group", "h", s.bob,
                                       [s.alice])
        jobs = [(cid, s.submit_append(s.alice, f"{cid}-{i}", cid))
                for i in range(200) for cid in (s.cid, other.conversation_id)]
        results = [(cid, (await job.wait())[0]) for cid, job in jobs]
    for cid in (s.cid, other.conversation_id):
        assert [m.seq for c, m in results if c == cid] == list(range(1, 201))


async def test_a_failing_job_fails_alone_and_leaves_no_seq_gap(
        make_store: Callable[..., Any]) -> None:
    def append_then_fail(conn: Any, conversation_id: str, sender: str) -> None:
        append(conn, conversation_id, sender, "doomed")
        raise RuntimeError("boom after writing")

    async with Store(make_store) as s:
        release = await s.gate()
        jobs = [s.submit_append(s.alice, f"a{i}") for i in range(3)]
        stranger = s.submit_append(s.mallory, "intruder")
        jobs += [s.submit_append(s.bob, f"b{i}") for i in range(2)]
        doomed = s.store.submit(append_then_fail, s.cid, s.alice)
        jobs += [s.submit_append(s.bob, f"c{i}") for i in range(3)]
        release.set()
        results = [await job.wait() for job in jobs]
        with pytest.raises(ChatError) as exc:
            await stranger.wait()
        with pytest.raises(RuntimeError):
            await doomed.wait()
        log = await s.store.read(log_of, s.cid)
        doomed_row = await s.store.read(sql.message_by_client_id, s.alice, "doomed")
        top = await s.store.read(last_seq, s.cid)
    assert s.batches == [1, 10], "the failing jobs were not in the same batch as the others"
    assert exc.value.code == ErrorCode.FORBIDDEN
    assert [m.seq for m, _ in results] == list(range(1, 9))
    assert [seq for seq, _ in log] == list(range(1, 9))
    assert doomed_row is None, "a failed job's writes were committed"
    assert top == 8


class StatementLog:
    """Jobs that start and stop recording what the writer's connection sends, on either store:
    SQLite's trace callback, libpq's protocol trace on PostgreSQL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sqlite: list[str] = []

    def start(self, conn: Any) -> None:
        if isinstance(conn, sqlite3.Connection):
            conn.set_trace_callback(self.sqlite.append)
        else:
            self._file = self.path.open("w")
            conn.pgconn.trace(self._file.fileno())

    def stop(self, conn: Any) -> None:
        if isinstance(conn, sqlite3.Connection):
            conn.set_trace_callback(None)
        else:
            conn.pgconn.untrace()
            self._file.close()

    def savepoints(self) -> int:
        text = "\n".join(self.sqlite) if self.sqlite else self.path.read_text()
        return text.upper().count("SAVEPOINT JOB")


async def test_a_batch_takes_savepoints_only_when_one_of_its_jobs_failed(
        make_store: Callable[..., Any], tmp_path: Path) -> None:
    """On PostgreSQL a savepoint is a round trip: a batch where nothing fails takes none."""
    runs: list[str] = []

    def counted(conn: Any, name: str) -> None:
        runs.append(name)

    async with Store(make_store) as s:
        for failing in (False, True):
            runs.clear()
            trace = StatementLog(tmp_path / f"trace-{failing}")
            release = await s.gate()
            s.store.submit(trace.start)
            jobs = [s.submit_append(s.alice, f"{failing}-{i}") for i in range(5)]
            s.store.submit(counted, "counted")
            # A group change appends its system message in the middle of the batch.
            renamed = s.store.submit(sql.rename_group, s.cid, s.alice, f"g-{failing}")
            stranger = s.submit_append(s.mallory, f"{failing}-intruder") if failing else None
            s.store.submit(trace.stop)
            release.set()
            assert [(await job.wait())[1] for job in jobs] == [True] * 5
            assert (await renamed.wait())[1].name == f"g-{failing}"
            if stranger is not None:
                with pytest.raises(ChatError):
                    await stranger.wait()
            if failing:  # run plainly, rolled back, then again with a savepoint per job
                assert runs == ["counted", "counted"]
                assert trace.savepoints() >= 8
            else:
                assert runs == ["counted"]
                assert trace.savepoints() == 0
        log = await s.store.read(log_of, s.cid)
    assert [seq for seq, _ in log] == list(range(1, 13))


async def test_a_job_the_disk_fails_is_store_unavailable_and_the_others_commit(
        make_store: Callable[..., Any]) -> None:
    def disk_full(conn: Any) -> None:
        if isinstance(conn, sqlite3.Connection):
            raise sqlite3.OperationalError("database or disk is full")
        import psycopg

        raise psycopg.errors.DiskFull("could not extend file: No space left on device")

    async with Store(make_store) as s:
        release = await s.gate()
        before = s.submit_append(s.alice, "before")
        failed = s.store.submit(disk_full)
        after = s.submit_append(s.alice, "after")
        release.set()
        with pytest.raises(StoreUnavailable):  # answered 503 `internal`, "retry later"
            await failed.wait()
        assert [(await j.wait())[0].seq for j in (before, after)] == [1, 2]


async def test_on_done_callbacks_run_in_submission_order(
        make_store: Callable[..., Any]) -> None:
    calls: list[tuple[int, bool]] = []
    async with Store(make_store) as s:
        jobs = []
        for i in range(300):
            sender = s.mallory if i % 7 == 3 else s.alice
            jobs.append(s.submit_append(
                sender, f"m{i}",
                on_done=lambda job, i=i: calls.append((i, job.error is None))))
        for job in jobs:
            await job.done.wait()
    assert [i for i, _ in calls] == list(range(300))
    assert [ok for _, ok in calls] == [i % 7 != 3 for i in range(300)]


async def test_on_done_runs_before_the_waiter_wakes(
        make_store: Callable[..., Any]) -> None:
    seen: list[int] = []
    async with Store(make_store) as s:
        job = s.submit_append(s.alice, "m1", on_done=lambda job: seen.append(job.result[0].seq))
        message, _ = await job.wait()
        assert seen == [message.seq] == [1]


# --- idempotency and markers ------------------------------------------------------------------

async def test_resending_a_client_msg_id_returns_the_original(
        make_store: Callable[..., Any]) -> None:
    async with Store(make_store) as s:
        first, created = await s.store.write(sql.append_message, s.cid, s.alice, "m1", "text",
                                             "original", None, None, None)
        again, created_again = await s.store.write(sql.append_message, s.cid, s.alice, "m1",
                                                   "text", "retry", None, None, None)
        top_after_retry = await s.store.read(last_seq, s.cid)
        # the same id from another sender is another message
        bobs, bob_created = await s.store.write(sql.append_message, s.cid, s.bob, "m1", "text",
                                                "bob's", None, None, None)
    assert created and not created_again
    assert again == first
    assert again.body == "original"
    assert top_after_retry == 1
    assert bob_created and bobs.seq == 2


async def test_a_retry_in_the_same_batch_is_not_a_second_message(
        make_store: Callable[..., Any]) -> None:
    async with Store(make_store) as s:
        release = await s.gate()
        one, two = s.submit_append(s.alice, "m1"), s.submit_append(s.alice, "m1")
        release.set()
        (first, created), (second, created_again) = await one.wait(), await two.wait()
        log = await s.store.read(log_of, s.cid)
    assert created and not created_again
    assert first == second
    assert log == [(1, "m1")]


def test_append_moves_the_senders_own_markers(conn: Any) -> None:
    ops = ops_for(conn)
    ids = seed(conn, {"g": 0})
    alice = ops.user_by_name(conn, "alice")
    assert alice is not None
    message, _ = append(conn, ids["g"], alice.user_id, "x")
    assert marker_row(conn, ids["g"], alice.user_id) == (message.seq, message.seq)


def test_markers_never_move_backwards_in_the_store(conn: Any) -> None:
    ops = ops_for(conn)
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob")
    record, _ = ops.insert_conversation(conn, "group", "g", alice, [bob])
    cid = record.conversation_id
    for i in range(10):
        append(conn, cid, alice, f"m{i}")
    assert marker_row(conn, cid, bob) == (0, 0)
    ops.advance_markers(conn, cid, bob, 8, 5)
    assert marker_row(conn, cid, bob) == (8, 5)
    ops.advance_markers(conn, cid, bob, 2, 1)
    assert marker_row(conn, cid, bob) == (8, 5)
    ops.advance_markers(conn, cid, bob, 0, 0)
    assert marker_row(conn, cid, bob) == (8, 5)
    # read implies delivered
    ops.advance_markers(conn, cid, bob, 0, 9)
    assert marker_row(conn, cid, bob) == (9, 9)
    assert marker_row(conn, cid, alice) == (10, 10)


# --- conversations ----------------------------------------------------------------------------

def test_a_direct_pair_has_one_conversation_whoever_asks(conn: Any) -> None:
    ops = ops_for(conn)
    alice, bob, carol = (add_user(conn, n) for n in ("alice", "bob", "carol"))
    first, created = ops.insert_conversation(conn, "direct", None, alice, [bob])
    again, created_again = ops.insert_conversation(conn, "direct", None, alice, [bob])
    reverse, created_reverse = ops.insert_conversation(conn, "direct", None, bob, [alice])
    other, created_other = ops.insert_conversation(conn, "direct", None, alice, [carol])
    assert created and not created_again and not created_reverse and created_other
    assert again.conversation_id == reverse.conversation_id == first.conversation_id
    assert other.conversation_id != first.conversation_id
    assert sorted(m.user_id for m in reverse.members) == sorted([alice, bob])
    count = conn.execute("SELECT count(*) FROM conversations WHERE kind = 'direct'").fetchone()
    assert count == (2,)


def test_groups_of_the_same_people_are_distinct(conn: Any) -> None:
    ops = ops_for(conn)
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob")
    one, _ = ops.insert_conversation(conn, "group", "a", alice, [bob])
    two, created = ops.insert_conversation(conn, "group", "a", alice, [bob])
    assert created and one.conversation_id != two.conversation_id
    roles = {m.user_id: m.role for m in one.members}
    assert roles == {alice: "admin", bob: "member"}


def test_all_conversations_reloads_members_and_markers(conn: Any) -> None:
    ops = ops_for(conn)
    ids = seed(conn, {"g": 3, "h": 0})
    loaded = {r.conversation_id: r for r in ops.all_conversations(conn)}
    assert {cid: r.last_seq for cid, r in loaded.items()} == {ids["g"]: 3, ids["h"]: 0}
    assert all(len(r.members) == 2 for r in loaded.values())


# --- history ----------------------------------------------------------------------------------

def test_history_pages_backwards_and_forwards(conn: Any) -> None:
    ops = ops_for(conn)
    cid = seed(conn, {"g": 30})["g"]

    def page(**kw: Any) -> tuple[list[int], bool]:
        kw = {"before": None, "after": None, "min_seq": 0, **kw}
        messages, has_more = ops.history(conn, cid, **kw)
        return [m.seq for m in messages], has_more

    assert page(limit=10) == (list(range(21, 31)), True)
    assert page(before=21, limit=10) == (list(range(11, 21)), True)
    assert page(before=11, limit=10) == (list(range(1, 11)), False)
    assert page(after=0, limit=10) == (list(range(1, 11)), True)
    assert page(after=20, limit=10) == (list(range(21, 31)), False)
    assert page(after=25, limit=10) == (list(range(26, 31)), False)
    assert page(after=5, before=10, limit=10) == (list(range(6, 10)), False)
    assert page(limit=50, min_seq=12) == (list(range(13, 31)), False)
    assert page(before=15, limit=10, min_seq=12) == ([13, 14], False)
    assert page(after=0, limit=3, min_seq=12) == ([13, 14, 15], True)


def test_history_pages_match_a_brute_force_filter(conn: Any) -> None:
    ops = ops_for(conn)
    cid = seed(conn, {"g": 40})["g"]
    bounds = st.none() | st.integers(0, 45)

    @SETTINGS
    @given(before=bounds, after=bounds, limit=st.integers(1, 50), min_seq=st.integers(0, 42))
    def check(before: int | None, after: int | None, limit: int, min_seq: int) -> None:
        messages, has_more = ops.history(conn, cid, before=before, after=after, limit=limit,
                                         min_seq=min_seq)
        candidates = [s for s in range(1, 41) if s > min_seq
                      and (after is None or s > after) and (before is None or s < before)]
        expected = candidates[:limit] if after is not None else candidates[-limit:]
        assert [m.seq for m in messages] == expected
        assert has_more == (len(candidates) > limit)

    check()


# --- catch-up reads ---------------------------------------------------------------------------

COUNTS = {"g": 25, "h": 40, "i": 7, "empty": 0}


@st.composite
def range_lists(draw: st.DrawFn, ids: dict[str, str]) -> list[CatchupRange]:
    ranges = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(sorted(COUNTS)))
        lo = draw(st.integers(0, COUNTS[name]))
        hi = draw(st.integers(lo, COUNTS[name]))
        ranges.append(CatchupRange(ids[name], lo, hi))
    return ranges


def test_read_ranges_returns_each_range_ascending_in_the_order_given(conn: Any) -> None:
    ops = ops_for(conn)
    ids = seed(conn, COUNTS)

    @SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        ranges = data.draw(range_lists(ids).filter(bool))
        messages = ops.read_ranges(conn, ranges)
        assert seqs_of(messages) == seqs_in(ranges)

    check()


def test_plan_chunks_cuts_ranges_into_bounded_chunks_covering_the_same_seqs(conn: Any) -> None:
    ops = ops_for(conn)
    ids = seed(conn, COUNTS)

    @SETTINGS
    @given(st.data(), st.integers(1, 30))
    def check(data: st.DataObject, rows: int) -> None:
        ranges = data.draw(range_lists(ids))
        chunks = sql.plan_chunks(ranges, rows)
        total = len(seqs_in(ranges))
        assert len(chunks) == math.ceil(total / rows), "more statements than needed"
        for chunk in chunks:
            assert chunk, "an empty chunk"
            assert 0 < len(seqs_in(chunk)) <= rows
        assert [s for chunk in chunks for s in seqs_in(chunk)] == seqs_in(ranges)
        read = [m for chunk in chunks for m in ops.read_ranges(conn, chunk)]
        assert seqs_of(read) == seqs_in(ranges)

    check()


def test_a_full_chunk_of_one_row_ranges_is_one_statement(conn: Any) -> None:
    """A user with a thousand conversations each one message behind: the chunk has a thousand
    ranges (four thousand parameters), still one statement."""
    ops = ops_for(conn)
    cid = seed(conn, {"g": 1500})["g"]
    ranges = [CatchupRange(cid, s - 1, s) for s in range(1, 1501)]
    chunks = sql.plan_chunks(ranges)
    assert [len(c) for c in chunks] == [sql.READ_CHUNK_ROWS, 1500 - sql.READ_CHUNK_ROWS]
    read = [m for chunk in chunks for m in ops.read_ranges(conn, chunk)]
    assert [m.seq for m in read] == list(range(1, 1501))


async def test_stream_ranges_yields_every_missing_message_in_order(
        make_store: Callable[..., Any]) -> None:
    async with Store(make_store) as s:
        for i in range(30):
            await s.store.write(sql.append_message, s.cid, s.alice, f"m{i}", "text", "x",
                                None, None, None)
        ranges = [CatchupRange(s.cid, 20, 30), CatchupRange(s.cid, 0, 5)]
        got = [m async for chunk in s.store.stream_ranges(ranges) for m in chunk]
    assert [m.seq for m in got] == [*range(21, 31), *range(1, 6)]


class _Recording:
    """A connection (of either store) that remembers the statements run on it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Any]] = []

    def execute(self, statement: str, params: Any = ()) -> Any:
        self.statements.append((statement, params))
        return self.conn.execute(statement, params)


def test_read_ranges_uses_the_messages_primary_key(tmp_path: Path) -> None:
    conn = sql.open_database(tmp_path, "normal")
    ids = seed(conn, COUNTS)
    conn.execute("ANALYZE")
    recording = _Recording(conn)
    sql.read_ranges(recording, [CatchupRange(ids["g"], 3, 20),  # type: ignore[arg-type]
                                CatchupRange(ids["h"], 0, 40)])
    [(statement, params)] = recording.statements
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
    pk_index = next(row[1] for row in conn.execute("PRAGMA index_list(messages)")
                    if row[3] == "pk")
    searches = [d for d in plan if d.startswith("SEARCH m ")]
    assert searches, plan
    assert all(f"USING INDEX {pk_index} (conversation_id=? AND seq>? AND seq<?)" in d
               for d in searches), plan
    assert not any(d.startswith(("SCAN m", "SCAN messages")) for d in plan), plan


def test_read_ranges_on_postgresql_reads_each_range_from_the_primary_key(pg_url: str) -> None:
    """On a log of real size (planner statistics and all), each range is a parameterised scan of
    the messages' primary key, never a scan of the whole log."""
    from chatnode.store import pg_ops, postgres

    conn = postgres.open_migrated(pg_url)
    alice = add_user(conn, "alice")
    cids = [pg_ops.insert_conversation(conn, "group", f"g{i}", alice, [])[0].conversation_id
            for i in range(20)]
    conn.execute("INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, kind,"
                 " body, ts) SELECT c, s, %s, c || s, 'text', 'x', 0"
                 " FROM unnest(%s::text[]) AS c, generate_series(1, 2000) AS s", (alice, cids))
    conn.execute("ANALYZE messages")
    recording = _Recording(conn)
    ranges = [CatchupRange(cid, 1990, 2000) for cid in cids[:10]]
    read = pg_ops.read_ranges(recording, ranges)  # type: ignore[arg-type]
    assert seqs_of(read) == seqs_in(ranges)
    [(statement, params)] = recording.statements
    plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {statement}", params))
    assert "Seq Scan on messages" not in plan, plan
    assert "messages_pkey" in plan and "(conversation_id = r.cid)" in plan, plan
    conn.close()


def test_unreferenced_uploads_are_swept_and_shared_files_kept(conn: Any) -> None:
    ops = ops_for(conn)
    user = ops.insert_user(conn, "uploader", None, "x")
    sent = ops.insert_media(conn, "aaa", 1, "text/plain", user.user_id)
    ops.insert_media(conn, "aaa", 1, "text/plain", user.user_id)  # same bytes, never sent
    ops.insert_media(conn, "bbb", 1, "text/plain", user.user_id)  # never sent
    query(conn, "UPDATE media SET referenced = TRUE WHERE media_id = ? RETURNING 1", (sent,))
    assert ops.sweep_unreferenced_media(conn, sql.now_ms() - 60_000) == []  # too recent
    assert ops.sweep_unreferenced_media(conn, sql.now_ms() + 1) == ["bbb"]  # aaa still used
    assert query(conn, "SELECT media_id FROM media") == [(sent,)]


# --- the WAL ----------------------------------------------------------------------------------

async def test_commits_never_checkpoint_and_the_wal_stays_bounded(tmp_path: Path) -> None:
    limit = 256 * 1024
    store = SqliteStore(tmp_path / "data", wal_limit_bytes=limit)
    store.start()
    alice = (await store.write(sql.insert_user, "alice", None, "h")).user_id
    record, _ = await store.write(sql.insert_conversation, "group", "g", alice, [])

    async def append_2kb_messages(count: int, prefix: str) -> None:
        jobs = [store.submit(sql.append_message, record.conversation_id, alice, f"{prefix}{i}",
                             "text", "x" * 2000, None, None, None) for i in range(count)]
        for job in jobs:
            await job.wait()

    await append_2kb_messages(5000, "a")
    # 10 MB committed and all of it still in the WAL: the commits themselves never checkpointed
    # (SQLite's automatic checkpoint would have, every 4 MB, stalling the sends of that batch).
    assert store.wal_bytes() > 9 * 1024 * 1024
    result = await store.checkpoint()  # past the limit: RESTART, the WAL starts over
    assert result is not None and result.mode == "RESTART" and result.complete
    assert await store.checkpoint() is None  # nothing new: no work, no thread hop
    await store.write(sql.touch_health)  # the first commit after it starts the WAL over
    assert store.wal_bytes() <= limit
    # Within the limit (each text also writes its search index row): a passive round copies it.
    await append_2kb_messages(10, "b")
    result = await store.checkpoint()
    assert result is not None and result.mode == "PASSIVE" and result.complete

    # Writes that never pause: a passive checkpoint never finds the WAL fully copied, so the
    # WAL would only grow; past the limit the RESTART rounds keep it near it.
    writing = True

    async def write_without_pause() -> None:
        n = 0
        while writing:
            n += 1
            await append_2kb_messages(50, f"c{n}-")

    sizes = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_without_pause)
        for _ in range(20):
            await trio.sleep(0.05)
            await store.checkpoint()
            sizes.append(store.wal_bytes())
        writing = False
    # Each RESTART makes the WAL start over (cut back to the limit): its size falls again and
    # again, where passive rounds alone would see it only grow.
    assert sum(now < before for before, now in itertools.pairwise(sizes)) >= 5, sizes
    await store.checkpoint()
    await store.write(sql.touch_health)
    assert store.wal_bytes() <= limit
    (last,) = [seq for seq, _ in await store.read(log_of, record.conversation_id)][-1:]
    assert [seq for seq, _ in await store.read(log_of, record.conversation_id)] == list(
        range(1, last + 1))
    await store.close()


def test_a_version_1_data_directory_is_migrated_and_keeps_its_users(tmp_path: Path) -> None:
    """A node from before push opens its old data: each user gets push_preview `full`, and the
    push_targets table appears, in one step per version."""
    conn = sqlite3.connect(tmp_path / sql.DB_FILE, isolation_level=None)
    schema = resources.files("chatnode.store").joinpath("schema.sql").read_text()
    conn.executescript(f"BEGIN; {schema}; PRAGMA user_version = 1; COMMIT;")
    conn.execute("INSERT INTO users (user_id, username, display_name, password_hash,"
                 " created_at) VALUES ('u_old', 'old', 'Old', 'x', 0)")
    conn.close()

    conn = sql.open_database(tmp_path)
    assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    assert sql.push_preview_of(conn, "u_old") == "full"
    assert sql.push_targets_of(conn, "u_old") == []
    assert sql.user_by_id(conn, "u_old") is not None
    conn.close()
    conn = sql.open_database(tmp_path)  # opening again migrates nothing
    assert conn.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
    conn.close()
