"""How the group-commit writer opens a batch's transaction and each job's savepoint, and what a
failure means, for one kind of store.

The writer (writer.py) is the same for SQLite and PostgreSQL: take what is queued, run the jobs
in one transaction (each in a savepoint when a batch has to run again because one failed),
commit once, hand the results back to trio in order. What
differs is only the SQL that brackets the work and how errors are read, so that is all a store
gives the writer: a small object following `Transactions`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from enum import Enum
from typing import Any, Protocol

log = logging.getLogger("chatnode.store")


class Failure(Enum):
    """What an exception raised by a job means for the batch it is in."""

    JOB = "job"                  # the job's own error (a ChatError, a bug): it fails alone
    JOB_STORE = "job_store"      # the store refused this job (a full disk): StoreUnavailable,
                                 # the rest of the batch goes on
    RETRY_BATCH = "retry_batch"  # a deadlock or serialization failure with another node: roll
                                 # the whole batch back and run it again
    LOST_BATCH = "lost_batch"    # the connection is gone: the whole batch fails


class Transactions(Protocol):
    def batch(self, plain: bool, locks: list[str]) -> AbstractContextManager[Any]:
        """Open one transaction and give its connection; commit when the block ends normally,
        roll back when an exception leaves it. `plain`: the jobs run without savepoints, so
        the store may send their statements without waiting for each answer. `locks`: the
        conversations the jobs write; where several writers share the database, the batch
        locks them first, all in one order, so that two batches never wait for each other."""
        ...

    def savepoint(self, conn: Any) -> AbstractContextManager[None]:
        """One job's savepoint: released when the block ends normally, rolled back to (and the
        exception passed on) when one leaves it."""
        ...

    def classify(self, exc: BaseException) -> Failure:
        ...

    def close(self) -> None: ...


class SqliteTransactions:
    """BEGIN IMMEDIATE takes SQLite's write lock at once, so a batch never fails halfway for
    want of it; each job is a SAVEPOINT. An OperationalError (a full disk, an I/O error) is the
    store failing, not the job."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @contextmanager
    def batch(self, plain: bool, locks: list[str]) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed")
            raise

    @contextmanager
    def savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("SAVEPOINT job")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            raise
        conn.execute("RELEASE job")

    def classify(self, exc: BaseException) -> Failure:
        return Failure.JOB_STORE if isinstance(exc, sqlite3.OperationalError) else Failure.JOB

    def close(self) -> None:
        """The connection belongs to the store, which closes it."""
