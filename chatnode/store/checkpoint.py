"""WAL checkpoints off the send path, and a WAL that stays bounded.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: in the writer
thread, so every send of that batch waits while pages are copied and the database file is
fsynced. The node turns it off on the write connection and checkpoints from a connection of its
own in a worker thread instead. PASSIVE mode takes no lock a writer or reader needs, so sends
go on meanwhile. Once a checkpoint has copied every frame, the next commit starts the WAL over
from its beginning, and journal_size_limit cuts the file back to the limit.

Under writes that never pause, a passive checkpoint never finds the WAL fully copied, and the
WAL would only grow. So once the file is past the limit, the checkpoint is RESTART instead: it
waits for the writer's current batch and the readers' current statements, copies the little
the passive rounds left, and makes the next commit start the WAL over. Sends wait for that
copy (milliseconds, once per limit's worth of writes): the price of a WAL that stays bounded.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

# A checkpoint every second there was a commit: the WAL holds about a second of writes.
CHECKPOINT_EVERY_S = 1.0
# After a WAL reset the file is truncated back to this size.
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointResult:
    mode: str  # PASSIVE, or RESTART once the WAL is past its limit
    busy: bool  # a reader or writer kept some frames from being copied: the next one finishes
    wal_frames: int
    copied_frames: int

    @property
    def complete(self) -> bool:
        return not self.busy and self.copied_frames == self.wal_frames


def tune_write_connection(conn: sqlite3.Connection, wal_limit_bytes: int) -> None:
    """No checkpoint inside a commit; a reset WAL is cut back to `wal_limit_bytes`."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA journal_size_limit = {int(wal_limit_bytes)}")


def checkpoint(conn: sqlite3.Connection, db_path: Path, wal_limit_bytes: int
               ) -> CheckpointResult:
    """Copy what the WAL holds into the database file: without blocking anyone while the WAL is
    within its limit, and making sure it starts over once it is past it."""
    mode = "RESTART" if wal_bytes(db_path) > wal_limit_bytes else "PASSIVE"
    busy, wal_frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return CheckpointResult(mode, bool(busy), wal_frames, copied)


def wal_bytes(db_path: Path) -> int:
    try:
        return (db_path.parent / f"{db_path.name}-wal").stat().st_size
    except FileNotFoundError:
        return 0
