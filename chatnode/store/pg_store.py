"""The node's store on PostgreSQL: the interface of SqliteStore (submit, write, read,
stream_ranges, load_conversations, load_push_users, start, close) over psycopg.

Writes go through the same group-commit writer as on SQLite (writer.py), with one connection of
their own: whatever is queued runs in one transaction (with savepoints only when a job fails),
one COMMIT with `synchronous_commit` on, so `sent` means the message is on PostgreSQL's disk.
Reads take a connection from psycopg_pool's pool in a worker thread (trio.to_thread.run_sync),
as SQLite's readers do, because psycopg's async API runs only on asyncio.

Callers name operations by sqlite.py's functions; this store runs their twins (pg_ops.TWINS). A
callable that is not one of sqlite.py's (a test's probe, a job written for this store) gets the
psycopg connection as it is.

When PostgreSQL cannot be reached, a batch fails as a whole with StoreUnavailable (clients get
`internal`, nothing is acknowledged), reads fail the same way, and the writer connects again on
the next batch: the node recovers by itself when the database is back. SQLite's WAL checkpoint
has no meaning here, so the store has none (server.py runs it only for SQLite)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

import psycopg
import trio
from psycopg_pool import ConnectionPool

from ..logs import fields
from ..protocol import ChatError, ErrorCode, Message
from . import pg_ops
from . import sqlite as sql
from .errors import StoreError
from .postgres import CONNECT_TIMEOUT_S, Connection, connect, describe, open_migrated
from .records import CatchupRange, ConversationRecord
from .sqlite import Durability, plan_chunks
from .transactions import Failure
from .writer import GroupCommitWriter, Job, StoreUnavailable

log = logging.getLogger("chatnode.store")

# How long a read waits for a pooled connection before it is StoreUnavailable: while the
# database is down the pool cannot make one, and a request should say so, not hang.
POOL_WAIT_S = 3.0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def twin_of(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The PostgreSQL operation for what a caller named by sqlite.py's function."""
    twin = pg_ops.TWINS.get(fn)
    if twin is not None:
        return twin
    if getattr(fn, "__module__", None) == sql.__name__:
        raise LookupError(f"sqlite.{fn.__name__} has no PostgreSQL twin in pg_ops")
    return fn


@lru_cache(maxsize=512)
def _nul_refused(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, with a text holding NUL refused as `invalid`. SQLite keeps NUL in TEXT and
    PostgreSQL cannot (psycopg refuses to send it, before anything is written), so on this
    store such input is bad input: a clear error that changes nothing, not an internal one."""
    def run(conn: Connection, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(conn, *args, **kwargs)
        except psycopg.DataError as exc:
            if "NUL" not in str(exc):
                raise
            raise ChatError(ErrorCode.INVALID, "text must not contain NUL (U+0000) characters;"
                            " nothing changed") from None
    return run


class PostgresTransactions:
    """writer.Transactions on one psycopg connection of the writer's own, made again on the
    next batch after it is lost. `full` durability commits with synchronous_commit on (COMMIT
    returns once the WAL is flushed); `normal` turns it off, so a crash of PostgreSQL itself
    may lose the last moment of commits, as a power cut may on SQLite's `normal`."""

    def __init__(self, url: str, durability: Durability = "full") -> None:
        self._url = url
        self._synchronous_commit = "on" if durability == "full" else "off"
        self._conn: Connection | None = None
        self._savepoint_open = False

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self.close()
        try:
            conn = connect(self._url)
        except StoreError as exc:
            # The address and libpq's words go to the log; what the batch's callers (and
            # /healthz, which anyone may ask) are told names nothing of the network.
            log.error("the writer cannot connect", extra=fields(error=str(exc)))
            raise StoreUnavailable("the PostgreSQL store cannot be reached") from None
        conn.execute(f"SET synchronous_commit = {self._synchronous_commit}")
        self._conn = conn
        return conn

    @contextmanager
    def batch(self, plain: bool, locks: list[str]) -> Iterator[Connection]:
        conn = self._connection()
        self._savepoint_open = False
        if not plain:
            with conn.transaction():
                self._lock(conn, locks)
                yield conn
            return
        # A plain batch is one pipeline: BEGIN, every job's statements and COMMIT go out
        # without waiting for each other's answers (a job that needs an answer to go on reads
        # it, and waits only then). Leaving the pipeline waits for them all, the COMMIT's too.
        with conn.pipeline(), conn.transaction():
            self._lock(conn, locks)
            yield conn

    @staticmethod
    def _lock(conn: Connection, conversation_ids: list[str]) -> None:
        # Appending takes the conversation's counter row, and markers its members' rows, each
        # held to COMMIT. Taken job by job, two nodes' batches would take them in different
        # orders and deadlock (PostgreSQL sees it only after deadlock_timeout, a second by
        # default, then one batch runs again). Taken first, in one order on every node, a
        # batch waits at most for the other node's batch to commit.
        if conversation_ids:
            conn.execute("SELECT 1 FROM conversations WHERE conversation_id = ANY(%s)"
                         ' ORDER BY conversation_id COLLATE "C" FOR UPDATE', (conversation_ids,))

    @contextmanager
    def savepoint(self, conn: Connection) -> Iterator[None]:
        # A job's savepoint is released by the next job's, in the same round trip as it is
        # made ("RELEASE; SAVEPOINT", one simple query), or by the COMMIT: one round trip per
        # job instead of two, and never more than one savepoint deep (PostgreSQL slows every
        # session down when a transaction holds many subtransactions).
        conn.execute("RELEASE SAVEPOINT job; SAVEPOINT job" if self._savepoint_open
                     else "SAVEPOINT job")
        self._savepoint_open = True
        try:
            yield
        except BaseException:
            if not conn.broken:
                conn.execute("ROLLBACK TO SAVEPOINT job")
            raise

    def classify(self, exc: BaseException) -> Failure:
        conn = self._conn
        if (isinstance(exc, StoreUnavailable | StoreError) or conn is None or conn.closed
                or conn.broken):
            return Failure.LOST_BATCH
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith("40"):  # serialization failure, deadlock: another node won
            return Failure.RETRY_BATCH
        if sqlstate.startswith("08"):  # connection exception
            return Failure.LOST_BATCH
        if isinstance(exc, psycopg.OperationalError):  # disk full, cancelled, out of memory
            return Failure.JOB_STORE
        return Failure.JOB

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresStore:
    def __init__(self, url: str, pool_size: int = 10, durability: Durability = "full",
                 on_batch: Callable[[int, float], None] = lambda size, seconds: None) -> None:
        self.where = describe(url)
        # Creates or migrates the schema, then serves load_conversations and load_push_users
        # (both run before start); start closes it, so a node holds pool_size + 1 connections.
        self._start_conn: Connection | None = open_migrated(url)
        self._transactions = PostgresTransactions(url, durability)
        self._writer = GroupCommitWriter(self._transactions, on_batch)
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, timeout=POOL_WAIT_S,
            name="chatnode-read",
            kwargs={"autocommit": True, "application_name": "chatnode",
                    "connect_timeout": CONNECT_TIMEOUT_S})
        self._read_limiter = trio.CapacityLimiter(pool_size)

    def start(self) -> None:
        self._close_start_conn()
        self._pool.open(wait=False)
        self._writer.start()

    async def close(self) -> None:
        await self._writer.stop()
        self._transactions.close()
        await trio.to_thread.run_sync(self._pool.close)
        self._close_start_conn()

    def _close_start_conn(self) -> None:
        if self._start_conn is not None:
            self._start_conn.close()
            self._start_conn = None

    # writes

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_done: Callable[[Job], None] | None = None) -> Job:
        twin = twin_of(fn)
        lock = args[0] if twin in pg_ops.WRITE_ONE_CONVERSATION else None
        return self._writer.submit(_nul_refused(twin), *args, on_done=on_done, lock=lock)

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.submit(fn, *args).wait()

    # reads

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await trio.to_thread.run_sync(partial(self._read, _nul_refused(twin_of(fn)),
                                                     args, kwargs),
                                             limiter=self._read_limiter)

    def _read(self, fn: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        for first_try in (True, False):
            conn: Connection | None = None
            try:
                with self._pool.connection() as conn:
                    return fn(conn, *args, **kwargs)
            except psycopg.OperationalError as exc:
                if first_try and conn is not None and conn.broken:
                    # Pooled connections from before the database restarted: drop every dead
                    # one, then try once more on a fresh connection.
                    self._pool.check()
                    continue
                raise StoreUnavailable(
                    f"the PostgreSQL store at {self.where} cannot be read: {_one_line(exc)}"
                ) from None
        raise AssertionError("unreachable")

    async def stream_ranges(self, ranges: list[CatchupRange]) -> AsyncIterator[list[Message]]:
        for chunk in plan_chunks(ranges):
            yield await self.read(sql.read_ranges, chunk)

    def load_conversations(self) -> list[ConversationRecord]:
        """Synchronous: used once at start, before anything is served."""
        assert self._start_conn is not None, "load before start"
        return pg_ops.all_conversations(self._start_conn)

    def free_bytes(self) -> int | None:
        return None  # the database server's disk is its own to watch

    def load_push_users(self) -> set[str]:
        assert self._start_conn is not None, "load before start"
        return pg_ops.users_with_push_targets(self._start_conn)
