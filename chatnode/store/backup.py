"""`chatnode backup` and `chatnode restore`: SQLite's online backup API, both ways.

A backup reads one consistent snapshot of the database while the node keeps writing (WAL lets
a reader see the last commit without stopping the writer). A restore checks the file first
(integrity, a schema this chatnode knows), then copies it page by page into the data
directory's database, so a half-written or foreign file never replaces a working store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .sqlite import SCHEMA_VERSION


class BackupError(Exception):
    """Said to the admin as it is: what is wrong and nothing was changed."""


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def counts(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(users, conversations, messages) in a store."""
    return tuple(conn.execute(  # type: ignore[return-value]
        "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM conversations),"
        " (SELECT COUNT(*) FROM messages)").fetchone())


def backup(database: Path, target: Path) -> tuple[int, int, int]:
    """Copy the live database to `target` (which must not exist); what the copy holds."""
    if target.exists():
        raise BackupError(f"{target} already exists; nothing was written")
    source = _open_read_only(database)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # all pages in one step: one snapshot
        return counts(copy)
    finally:
        copy.close()
        source.close()


def verify(path: Path) -> tuple[int, int, int]:
    """Refuse anything that is not a sound chatnode store of a known schema version."""
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    try:
        conn = _open_read_only(path)
        try:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if integrity != ["ok"]:
                raise BackupError(f"{path} is damaged ({integrity[0]}); nothing was restored")
            if not 1 <= version <= SCHEMA_VERSION:
                raise BackupError(f"{path} is not a chatnode store this version knows"
                                  f" (schema version {version}); nothing was restored")
            return counts(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a chatnode backup ({exc}); nothing was restored"
                          ) from None


def restore(backup_file: Path, database: Path) -> tuple[int, int, int]:
    """Replace the database with the backup's contents (the node must be stopped)."""
    held = verify(backup_file)
    source = _open_read_only(backup_file)
    target = sqlite3.connect(database)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return held
