"""`chatnode check`: the store's promises, verified and said in words.

What the node relies on and a damaged or hand-edited file could break: SQLite's own integrity,
every conversation's log numbered 1..last_seq with no gap, and every member's markers within
the log (read never ahead of delivered, neither beyond last_seq). Read-only: it runs beside a
live node.

The log's checks are plain SQL that SQLite and PostgreSQL both run (only the parameter mark
differs), so a cluster's store is checked by the same code (postgres.check_store).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckReport:
    conversations: int = 0
    messages: int = 0
    members: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(conn: sqlite3.Connection) -> CheckReport:
    report = CheckReport()
    _integrity(conn, report)
    if report.problems:
        return report  # the file itself is damaged: what follows would read garbage
    check_log(conn, report, "?")
    return report


def check_log(conn: Any, report: CheckReport, mark: str) -> None:
    """Seqs, markers and orphans on a connection of either store; `mark` is its parameter
    placeholder (? for sqlite3, %s for psycopg)."""
    _seqs(conn, report, mark)
    _markers(conn, report)
    _orphans(conn, report)


def _integrity(conn: sqlite3.Connection, report: CheckReport) -> None:
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if rows != ["ok"]:
        report.problems += [f"SQLite integrity check: {row}" for row in rows[:20]]


def _seqs(conn: Any, report: CheckReport, mark: str) -> None:
    rows = conn.execute(
        "SELECT c.conversation_id, c.last_seq, COUNT(m.seq), MIN(m.seq), MAX(m.seq)"
        " FROM conversations AS c LEFT JOIN messages AS m USING (conversation_id)"
        " GROUP BY c.conversation_id").fetchall()
    report.conversations = len(rows)
    for cid, last_seq, count, lowest, highest in rows:
        report.messages += count
        if count == last_seq and (count == 0 or (lowest, highest) == (1, last_seq)):
            continue
        missing = _missing_seqs(conn, cid, last_seq, mark)
        if missing:
            shown = ", ".join(str(s) for s in missing[:10]) + (" …" if len(missing) > 10 else "")
            report.problems.append(
                f"conversation {cid}: {len(missing)} seq(s) missing from its log of"
                f" 1..{last_seq}: {shown}")
        if highest is not None and highest > last_seq:
            report.problems.append(
                f"conversation {cid}: the log reaches seq {highest} but last_seq is {last_seq}"
                " (the next message would take a seq that exists)")
        if lowest is not None and lowest < 1:
            report.problems.append(f"conversation {cid}: a message has seq {lowest} (below 1)")


def _missing_seqs(conn: Any, cid: str, last_seq: int, mark: str) -> list[int]:
    present = {row[0] for row in conn.execute(
        f"SELECT seq FROM messages WHERE conversation_id = {mark}", (cid,))}
    return [seq for seq in range(1, last_seq + 1) if seq not in present]


def _markers(conn: Any, report: CheckReport) -> None:
    rows = conn.execute(
        "SELECT m.conversation_id, m.user_id, m.last_delivered_seq, m.last_read_seq,"
        " m.joined_seq, c.last_seq FROM members AS m JOIN conversations AS c"
        " USING (conversation_id)").fetchall()
    report.members = len(rows)
    for cid, uid, delivered, read, joined, last_seq in rows:
        where = f"conversation {cid}, member {uid}"
        if delivered > last_seq:
            report.problems.append(f"{where}: delivered marker {delivered} is beyond the"
                                   f" conversation's last seq {last_seq}")
        if read > delivered:
            report.problems.append(f"{where}: read marker {read} is ahead of the delivered"
                                   f" marker {delivered}")
        if min(delivered, read, joined) < 0:
            report.problems.append(f"{where}: a negative marker (delivered {delivered},"
                                   f" read {read}, joined at {joined})")
        if joined > last_seq:
            report.problems.append(f"{where}: joined at seq {joined}, beyond the last seq"
                                   f" {last_seq}")


def _orphans(conn: Any, report: CheckReport) -> None:
    for (cid, count) in conn.execute(
            "SELECT conversation_id, COUNT(*) FROM messages WHERE conversation_id NOT IN"
            " (SELECT conversation_id FROM conversations) GROUP BY conversation_id"):
        report.problems.append(f"{count} message(s) belong to conversation {cid},"
                               " which does not exist")
    for (uid,) in conn.execute(
            "SELECT DISTINCT user_id FROM members WHERE user_id NOT IN"
            " (SELECT user_id FROM users)"):
        report.problems.append(f"user {uid} is a member of a conversation but has no account")
