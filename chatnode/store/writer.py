"""The one writer thread: group commit for every write the node makes.

Jobs are queued from trio without blocking. The thread takes whatever is queued, runs each job
in a savepoint of one transaction, commits once (one fsync for the whole batch), and then hands
the batch back to trio, where each job's `on_done` runs in commit order and its waiter wakes.
Running `on_done` in the trio thread, in order, is what lets fan-out keep seq order without
any lock: a job's effects are published before the next job's.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from ..logs import fields

log = logging.getLogger("chatnode.store")

MAX_BATCH = 2000


class StoreUnavailable(Exception):
    """The store could not commit (disk full, I/O error): nothing in the batch was written."""


class Job:
    __slots__ = ("args", "done", "error", "fn", "on_done", "result")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        on_done: Callable[[Job], None] | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.on_done = on_done
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = trio.Event()

    async def wait(self) -> Any:
        """The job's result once it is durably committed; re-raises what the job raised."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommitWriter:
    def __init__(self, conn: sqlite3.Connection, on_batch: Callable[[int, float], None]) -> None:
        self._conn = conn
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._on_batch = on_batch
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stopped = trio.Event()
        self.commits = 0  # written by the writer thread only; read by the checkpointer

    def start(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name="chatnode-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_done: Callable[[Job], None] | None = None) -> Job:
        """Queue `fn(conn, *args)`; never blocks. Jobs commit in the order they were submitted,
        and `on_done(job)` runs in the trio thread, in that order, committed or failed."""
        job = Job(fn, args, on_done)
        self._queue.put(job)
        return job

    async def stop(self) -> None:
        """Commit everything already queued, then end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        await self._stopped.wait()
        await trio.to_thread.run_sync(self._thread.join)
        self._thread = None

    def _run(self) -> None:
        assert self._token is not None
        running = True
        while running:
            first = self._queue.get()
            batch: list[Job] = []
            if first is None:
                running = False
            else:
                batch.append(first)
                while len(batch) < MAX_BATCH:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        running = False
                        break
                    batch.append(job)
            if batch:
                started = time.perf_counter()
                self._commit(batch)
                self._on_batch(len(batch), time.perf_counter() - started)
                self._token.run_sync_soon(self._complete, batch)
        self._token.run_sync_soon(self._stopped.set)

    def _commit(self, batch: list[Job]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn, *job.args)
                except sqlite3.OperationalError as exc:  # a full disk, an I/O error: the store
                    conn.execute("ROLLBACK TO job")     # failed, not the job
                    job.error = StoreUnavailable(str(exc))
                except Exception as exc:  # one bad job must not sink the batch
                    conn.execute("ROLLBACK TO job")
                    job.error = exc
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            # A full disk or an I/O error: every job of the batch is refused, nothing is lost
            # silently, and the admin sees why.
            log.error("store commit failed", extra=fields(jobs=len(batch), error=str(exc)))
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed")
            for job in batch:
                job.error = StoreUnavailable(str(exc))
                job.result = None

    @staticmethod
    def _complete(batch: list[Job]) -> None:
        for job in batch:
            if job.on_done is not None:
                try:
                    job.on_done(job)
                except Exception:
                    log.exception("on_done failed")
            job.done.set()
