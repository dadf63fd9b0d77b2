"""Two PostgresStores on one database, as two nodes are: each with its own group-commit writer.
Batches of sends and markers lock their conversations first, in one order, and never deadlock;
batches of writes the store cannot foresee deadlock for real and are retried until every job
commits; they append into one
conversation at once and the log is still 1..N with no gap and no duplicate; the same
client_msg_id sent through both, or the same direct pair created through both, while the first
is still uncommitted, is one message, one conversation."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio

from chatnode.protocol import Message
from chatnode.store import Job
from chatnode.store import sqlite as sql

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")

from chatnode.store.pg_store import PostgresStore


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    one, two = PostgresStore(pg_url), PostgresStore(pg_url)
    one.start()
    two.start()
    yield one, two
    await one.close()
    await two.close()


async def hold(store: PostgresStore) -> threading.Event:
    """Hold the store's writer in a batch of its own until the returned event is set, so that
    what is submitted meanwhile is committed together in its next batch."""
    started, release = threading.Event(), threading.Event()

    def wait_for_release(conn: Any) -> None:
        started.set()
        release.wait(10)

    store.submit(wait_for_release)
    assert await trio.to_thread.run_sync(started.wait, 10)
    return release


def send(store: PostgresStore, cid: str, sender: str, client_msg_id: str) -> Job:
    return store.submit(sql.append_message, cid, sender, client_msg_id, "text",
                        f"body of {client_msg_id}", None, None, None)


def log_of(conn: Any, cid: str) -> list[tuple[int, str]]:
    return [tuple(row) for row in conn.execute(  # type: ignore[misc]
        "SELECT seq, client_msg_id FROM messages WHERE conversation_id = %s ORDER BY seq",
        (cid,))]


async def setup(store: PostgresStore, groups: int) -> tuple[str, str, list[str]]:
    alice = (await store.write(sql.insert_user, "alice", None, "h")).user_id
    bob = (await store.write(sql.insert_user, "bob", None, "h")).user_id
    cids = []
    for i in range(groups):
        record, _ = await store.write(sql.insert_conversation, "group", f"g{i}", alice, [bob])
        cids.append(record.conversation_id)
    return alice, bob, cids


def first_run_meets(me: threading.Event, other: threading.Event) -> Callable[[Any], None]:
    """A job that, the first time it runs, waits until the other writer's batch has reached
    its own meeting point or waits on a lock of ours; a retried batch goes straight through."""
    def meet(conn: Any) -> None:
        if me.is_set():
            return
        with conn.pipeline():  # leaving it waits until what the batch sent so far has run,
            pass               # so its first write really holds its lock before we meet
        me.set()
        for _ in range(500):
            if other.is_set() or lock_waiters(conn):
                return
            threading.Event().wait(0.02)
    return meet


def lock_waiters(conn: Any) -> int:
    with conn.pipeline():  # in the writer's pipelined batch: the answer now
        (waiting,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()").fetchone()
    return int(waiting)


def send_unannounced(store: PostgresStore, cid: str, sender: str, client_msg_id: str) -> Job:
    """An append the writer cannot lock ahead (a job it does not know), as any write the
    store does not announce: such batches can still deadlock with another node's."""
    from chatnode.store import pg_ops

    def append(conn: Any) -> Any:
        return pg_ops.append_message(conn, cid, sender, client_msg_id, "text",
                                     f"body of {client_msg_id}", None, None, None)
    return store.submit(append)


async def opposite_orders(nodes: tuple[PostgresStore, PostgresStore],
                          send: Callable[[PostgresStore, str, str, str], Job]) -> list[Any]:
    """One node's batch writes X then Y while the other's writes Y then X, each pausing in the
    middle until the other has got that far (or waits on its lock)."""
    one, two = nodes
    alice, bob, (x, y) = await setup(one, 2)
    release_one, release_two = await hold(one), await hold(two)
    here_one, here_two = threading.Event(), threading.Event()
    jobs = [send(one, x, alice, "one-x"), one.submit(first_run_meets(here_one, here_two)),
            send(one, y, alice, "one-y"),
            send(two, y, bob, "two-y"), two.submit(first_run_meets(here_two, here_one)),
            send(two, x, bob, "two-x")]
    release_one.set()
    release_two.set()
    with trio.fail_after(30):
        results = [await job.wait() for job in jobs]
    created = [r for r in results if r is not None]
    assert all(was_new for _, was_new in created)
    for cid in (x, y):
        log = await one.read(log_of, cid)
        assert [seq for seq, _ in log] == [1, 2]
        assert sorted(m for _, m in log) == sorted(
            m.client_msg_id for m, _ in created if m.conversation_id == cid)
    return results


async def test_two_writers_that_deadlock_retry_their_batch_until_every_job_commits(
        nodes: tuple[PostgresStore, PostgresStore], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chatnode.store")
    await opposite_orders(nodes, send_unannounced)
    assert any("rolled back by a conflict" in r.getMessage() for r in caplog.records), \
        "the two batches never deadlocked"


async def test_batches_lock_their_conversations_first_in_one_order_and_never_deadlock(
        nodes: tuple[PostgresStore, PostgresStore], caplog: pytest.LogCaptureFixture) -> None:
    """Sends and markers name their conversation, and the writer locks those first, in one
    order on every node: the second batch waits for the first to commit, nothing is undone."""
    caplog.set_level(logging.INFO, logger="chatnode.store")
    await opposite_orders(nodes, send)
    assert not any("rolled back by a conflict" in r.getMessage() for r in caplog.records)


async def test_two_writers_appending_into_one_conversation_make_one_gapless_log(
        nodes: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = nodes
    alice, bob, (cid,) = await setup(one, 1)
    per_node = 150
    release_one, release_two = await hold(one), await hold(two)
    jobs = [send(store, cid, sender, f"{name}-{i}")
            for i in range(per_node)
            for store, sender, name in ((one, alice, "one"), (two, bob, "two"))]
    release_one.set()
    release_two.set()
    with trio.fail_after(60):
        results: list[tuple[Message, bool]] = [await job.wait() for job in jobs]
    assert sorted(m.seq for m, _ in results) == list(range(1, 2 * per_node + 1))
    log = await two.read(log_of, cid)
    assert [seq for seq, _ in log] == list(range(1, 2 * per_node + 1))
    # each node's own sends keep their submission order in the log
    for name in ("one", "two"):
        mine = [m for _, m in log if m.startswith(f"{name}-")]
        assert mine == [f"{name}-{i}" for i in range(per_node)]


def wait_until_the_other_node_waits_on_our_lock(written: threading.Event
                                                ) -> Callable[[Any], None]:
    """A job that waits for what its batch has sent so far (a pipelined batch sends without
    waiting), says it has written, then keeps the batch open until the other node's
    transaction waits on one of its locks, so the two really race."""
    def wait(conn: Any) -> None:
        with conn.pipeline():  # leaving it waits for every answer so far
            pass
        written.set()
        for _ in range(500):
            if lock_waiters(conn):
                return
            threading.Event().wait(0.02)
        raise AssertionError("the other node never waited for this transaction")
    return wait


async def race(one: PostgresStore, two: PostgresStore, first: Callable[[], Job],
               second: Callable[[], Job]) -> tuple[Any, Any]:
    """Run `first` on one node, then `second` on the other while the first is uncommitted:
    the other node's batch starts only once the first has written (and holds its locks)."""
    written = threading.Event()
    release_one, release_two = await hold(one), await hold(two)
    first_job = first()
    one.submit(wait_until_the_other_node_waits_on_our_lock(written))
    release_one.set()
    assert await trio.to_thread.run_sync(written.wait, 10)
    second_job = second()
    release_two.set()
    with trio.fail_after(30):
        return await first_job.wait(), await second_job.wait()


async def test_one_direct_pair_created_through_two_nodes_at_once_is_one_conversation(
        nodes: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = nodes
    alice, bob, _ = await setup(one, 0)
    (made, created), (found, created_again) = await race(
        one, two, lambda: one.submit(sql.insert_conversation, "direct", None, alice, [bob]),
        lambda: two.submit(sql.insert_conversation, "direct", None, bob, [alice]))
    assert created and not created_again
    assert found.conversation_id == made.conversation_id
    assert await one.read(count_direct) == 1


def count_direct(conn: Any) -> int:
    (count,) = conn.execute("SELECT count(*) FROM conversations WHERE kind = 'direct'"
                            ).fetchone()
    return int(count)


async def test_the_same_client_msg_id_through_two_nodes_at_once_is_one_message(
        nodes: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = nodes
    alice, _, (cid,) = await setup(one, 1)
    # the second is the client's retry, reaching the other node
    (original, created), (again, created_again) = await race(
        one, two, lambda: send(one, cid, alice, "retry-me"),
        lambda: send(two, cid, alice, "retry-me"))
    assert created and not created_again
    assert again == original
    assert await two.read(log_of, cid) == [(1, "retry-me")]
    conversation = await one.read(sql.conversation_by_id, cid)
    assert conversation.last_seq == 1, "the lost race left a seq behind"
