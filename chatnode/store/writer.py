"""The one writer thread: group commit for every write the node makes.

Jobs are queued from trio without blocking. The thread takes whatever is queued, runs the jobs
in one transaction (each in a savepoint of its own if one of them fails), commits once (one
fsync for the whole batch), and then hands the batch back to trio, where each job's `on_done`
runs in commit order and its waiter wakes. Running `on_done` in the trio thread, in order, is
what lets fan-out keep seq order without any lock: a job's effects are published before the next
job's.

The SQL around the batch and its savepoints comes from the store (transactions.py), so SQLite
and PostgreSQL share this loop. On PostgreSQL another node's writer can deadlock with this one
(X then Y against Y then X): PostgreSQL aborts one of the two transactions, and that batch runs
again from the start, since nothing of it was committed."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from ..logs import fields
from .transactions import Failure, Transactions

log = logging.getLogger("chatnode.store")

MAX_BATCH = 2000
# A batch that deadlocks or hits a serialization failure this many times in a row fails;
# between tries a short random pause lets the other node's transaction finish first.
BATCH_ATTEMPTS = 5
RETRY_PAUSE_S = 0.02


class StoreUnavailable(Exception):
    """The store could not commit (disk full, I/O error, database unreachable): nothing in the
    batch was written."""


class RunAgain(Exception):
    """Raised by a job that lost a race to a row another node committed meanwhile (the same
    client_msg_id, the same direct pair): its savepoint is rolled back and it runs once more,
    and then it finds that row and answers with it."""


class _BatchAborted(Exception):
    def __init__(self, cause: BaseException, failure: Failure) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.failure = failure


class Later:
    """A job's result still on its way from the database. On PostgreSQL a plain batch sends its
    statements in a pipeline, without waiting for each answer; a job whose statement needs no
    answer to go on returns a Later, and the writer reads every answer once all the batch's
    statements are on their way: one round trip for the batch, not one per job."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read

    def result(self) -> Any:
        return self._read()


class Job:
    __slots__ = ("args", "done", "error", "fn", "lock", "on_done", "result")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        on_done: Callable[[Job], None] | None,
        lock: str | None = None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.on_done = on_done
        self.lock = lock  # the conversation whose rows the job writes, if any
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
    def __init__(self, transactions: Transactions,
                 on_batch: Callable[[int, float], None]) -> None:
        self._transactions = transactions
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
               on_done: Callable[[Job], None] | None = None, lock: str | None = None) -> Job:
        """Queue `fn(conn, *args)`; never blocks. Jobs commit in the order they were submitted,
        and `on_done(job)` runs in the trio thread, in that order, committed or failed.
        `lock`: the conversation the job writes (see Transactions.batch)."""
        job = Job(fn, args, on_done, lock)
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
        # A batch first runs plainly, with no savepoint per job: on PostgreSQL a savepoint is a
        # round trip, as many as the jobs themselves. Jobs almost never fail (what a client
        # sends is checked before it is queued), and when one does the whole transaction is
        # rolled back and the batch runs again carefully, each job in a savepoint, so that the
        # failing job fails alone. Jobs can run twice: nothing of a rolled-back try is kept.
        careful = False
        attempt = 1
        locks = list({job.lock for job in batch if job.lock is not None})
        while True:
            for job in batch:
                job.result, job.error = None, None
            try:
                with self._transactions.batch(not careful, locks) as conn:
                    if careful:
                        for job in batch:
                            self._run_job(conn, job)
                    else:
                        for job in batch:
                            job.result = job.fn(conn, *job.args)
                        for job in batch:
                            if isinstance(job.result, Later):
                                job.result = job.result.result()
                self.commits += 1
                return
            except Exception as exc:
                cause = exc.cause if isinstance(exc, _BatchAborted) else exc
                failure = (exc.failure if isinstance(exc, _BatchAborted)
                           else self._transactions.classify(exc))
                if failure is Failure.RETRY_BATCH and attempt < BATCH_ATTEMPTS:
                    log.info("store batch rolled back by a conflict; running it again",
                             extra=fields(jobs=len(batch), attempt=attempt, error=str(cause)))
                    attempt += 1
                    time.sleep(random.uniform(0, RETRY_PAUSE_S * (attempt - 1)))
                    continue
                if failure in (Failure.JOB, Failure.JOB_STORE) and not careful:
                    # A job failed, or the commit did: which one, the careful run will tell
                    # (in a pipeline, a statement's error may only come out at the COMMIT).
                    careful = True
                    continue
                # A full disk, an I/O error, a lost database: every job of the batch is
                # refused, nothing is lost silently, and the admin sees why.
                log.error("store commit failed", extra=fields(jobs=len(batch),
                                                              error=" ".join(str(cause).split())))
                for job in batch:
                    job.error = StoreUnavailable(" ".join(str(cause).split()))
                    job.result = None
                return

    def _run_job(self, conn: Any, job: Job) -> None:
        for last_try in (False, True):
            try:
                with self._transactions.savepoint(conn):
                    result = job.fn(conn, *job.args)
                    job.result = result.result() if isinstance(result, Later) else result
                return
            except RunAgain as exc:
                if last_try:
                    job.error = StoreUnavailable(f"a write kept conflicting: {exc}")
                    return
            except Exception as exc:  # one bad job must not sink the batch
                failure = self._transactions.classify(exc)
                if failure in (Failure.RETRY_BATCH, Failure.LOST_BATCH):
                    raise _BatchAborted(exc, failure) from exc
                job.error = StoreUnavailable(str(exc)) if failure is Failure.JOB_STORE else exc
                return

    @staticmethod
    def _complete(batch: list[Job]) -> None:
        for job in batch:
            if job.on_done is not None:
                try:
                    job.on_done(job)
                except Exception:
                    log.exception("on_done failed")
            job.done.set()
