"""Moving a single node's SQLite store into a cluster's PostgreSQL store, whole.

Everything a device relies on crosses unchanged: user, device and conversation ids, token
hashes (so every logged-in device stays logged in), every message with its seq, both markers of
every member, uploads and push targets. A client reconnecting to the cluster with the sync map
it had is therefore sent exactly what it missed, as if the node had only restarted.

The copy is one PostgreSQL transaction (COPY per table, in the order the foreign keys need),
then counted and checked against the source, and the search index rebuilt from the copied log
(each store builds its own index), before it commits: an interrupted or mismatched
move leaves the PostgreSQL store as empty as it was. It refuses a PostgreSQL store that already
holds users or messages, so two deployments are never merged by accident.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from . import pg_search
from .errors import StoreError
from .postgres import Connection

# Parents before children, as the foreign keys need. Every table of the SQLite schema is either
# here or in NOT_COPIED: tests/cluster/test_migrate.py fails when a new table is neither.
COPIED_TABLES = ["users", "invites", "devices", "conversations", "members", "messages", "media",
                 "push_targets"]
# The schema version is the target's own, written when its schema was made. The search index
# is SQLite's FTS5 table and its shadow tables: PostgreSQL's is rebuilt from the copied log.
NOT_COPIED = {"meta", "message_search", "message_search_config", "message_search_content",
              "message_search_data", "message_search_docsize", "message_search_idx"}
COPY_BATCH_ROWS = 5000


@dataclass
class TransferReport:
    rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{count} {table}" for table, count in self.rows.items())


def sqlite_tables(source: sqlite3.Connection) -> set[str]:
    return {row[0] for row in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def _columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({table})")]


def _rows(source: sqlite3.Connection, table: str, columns: list[str]
          ) -> Iterator[list[tuple[Any, ...]]]:
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while batch := cursor.fetchmany(COPY_BATCH_ROWS):
        yield batch


def _refuse_unless_empty(target: Connection) -> None:
    for table in ("users", "messages"):
        row = target.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
        if row is not None and row[0]:
            raise StoreError(
                f"the PostgreSQL store already holds {table}: chatnode migrate moves a node"
                " into an empty store only, so that two deployments are never mixed")


def _boolean_columns(target: Connection, table: str) -> set[str]:
    """SQLite keeps flags as 0/1; PostgreSQL's BOOLEAN wants them as booleans."""
    return {row[0] for row in target.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = %s AND data_type = 'boolean'", (table,))}


def _copy_table(source: sqlite3.Connection, target: Connection, table: str) -> int:
    columns = _columns(source, table)
    flags = [i for i, name in enumerate(columns) if name in _boolean_columns(target, table)]
    count = 0
    with target.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for batch in _rows(source, table, columns):
            for row in batch:
                if flags:
                    values = list(row)
                    for i in flags:
                        values[i] = None if values[i] is None else bool(values[i])
                    row = tuple(values)
                copy.write_row(row)
            count += len(batch)
    return count


def _verify(source: sqlite3.Connection, target: Connection, report: TransferReport) -> None:
    """Counted on both sides before the commit: what arrived is what was there."""
    for table, copied in report.rows.items():
        (expected,) = source.execute(f"SELECT count(*) FROM {table}").fetchone()
        row = target.execute(f"SELECT count(*) FROM {table}").fetchone()
        if row is None or row[0] != expected or copied != expected:
            raise StoreError(f"the copy of {table} does not match its source: nothing was moved")
    row = target.execute(
        "SELECT count(*) FROM conversations c WHERE c.last_seq <> COALESCE("
        " (SELECT max(seq) FROM messages m WHERE m.conversation_id = c.conversation_id), 0)"
    ).fetchone()
    if row is None or row[0] != 0:
        raise StoreError("a conversation's last_seq does not match its log after the copy:"
                         " nothing was moved; run chatnode check on the data directory")


def transfer(source: sqlite3.Connection, target: Connection) -> TransferReport:
    """Copy the whole SQLite store into the (migrated, empty) PostgreSQL store, in one
    transaction that commits only once the copy is counted and checked."""
    unknown = sqlite_tables(source) - set(COPIED_TABLES) - NOT_COPIED
    if unknown:
        raise StoreError(f"this chatnode does not know how to move {', '.join(sorted(unknown))}")
    report = TransferReport()
    try:
        with target.transaction():
            _refuse_unless_empty(target)
            for table in COPIED_TABLES:
                report.rows[table] = _copy_table(source, target, table)
            _verify(source, target, report)
            pg_search.rebuild(target)
    except psycopg.Error as exc:
        raise StoreError(f"the move into PostgreSQL failed, nothing was moved:"
                         f" {' '.join(str(exc).split())}") from None
    return report
