"""What the fault scripts check against the log: the file itself is the truth.

Read straight from the SQLite file (after a kill the node is down; otherwise through WAL, which
shows only committed state), with the store's own statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..store.check import check_store
from ..store.records import CatchupRange, ConversationRecord
from ..store.sqlite import all_conversations, message_by_client_id, read_ranges
from .device import Device, Status

# (conversation_id, user_id) -> (last_delivered_seq, last_read_seq)
Markers = dict[tuple[str, str], tuple[int, int]]


def open_log(db_path: Path) -> sqlite3.Connection:
    # Not read-only: after a kill -9 the first connection rebuilds the WAL index.
    return sqlite3.connect(db_path, isolation_level=None, timeout=10)


def verify_log(conn: sqlite3.Connection, devices: Iterable[Device], before: Markers
               ) -> tuple[list[str], Markers]:
    """Every acknowledged message present where its `sent` said, no seq gap, markers in range
    and never behind `before`. Returns the problems and the markers now."""
    problems = list(check_store(conn).problems)
    for device in devices:
        for cmid, where in device.acked.items():
            stored = message_by_client_id(conn, device.account.user_id, cmid)
            if stored is None or (stored.conversation_id, stored.seq) != where:
                problems.append(f"{device.name}: {cmid} was acked at {where}, the log has"
                                f" {None if stored is None else stored.seq}")
    markers: Markers = {(c.conversation_id, m.user_id): (m.last_delivered_seq, m.last_read_seq)
                        for c in all_conversations(conn) for m in c.members}
    for key, (delivered, read) in before.items():
        now = markers.get(key, (-1, -1))
        if now[0] < delivered or now[1] < read:
            problems.append(f"markers of {key} went back from {(delivered, read)} to {now}")
    return problems, markers


def expected_status(conv: ConversationRecord, user_id: str) -> Status:
    """The status_update a member should hold: the lowest markers of the *other* members."""
    others = [m for m in conv.members if m.user_id != user_id]
    own = next(m for m in conv.members if m.user_id == user_id)
    return (conv.last_seq, min(m.last_delivered_seq for m in others),
            min(m.last_read_seq for m in others), own.last_read_seq)


def verify_converged(conn: sqlite3.Connection, device: Device) -> list[str]:
    """The device's replica is the log, message for message, and its ticks are the markers."""
    problems = []
    conversations = {c.conversation_id: c for c in all_conversations(conn)}
    for cid in device.conversations:
        conv = conversations[cid]
        log = {m.seq: (m.sender_id, m.client_msg_id, m.kind, m.body)
               for m in read_ranges(conn, [CatchupRange(cid, 0, conv.last_seq)])}
        replica = device.replica[cid]
        if replica != log:
            missing = sorted(log.keys() - replica.keys())
            wrong = sorted(s for s in log.keys() & replica.keys() if log[s] != replica[s])
            extra = sorted(replica.keys() - log.keys())
            problems.append(f"{device.name}: {cid} differs from the log: missing {missing[:5]}"
                            f" ({len(missing)}), wrong {wrong[:5]}, not in the log {extra[:5]}")
        expected = expected_status(conv, device.account.user_id)
        if device.status.get(cid) != expected:
            problems.append(f"{device.name}: ticks of {cid} are {device.status.get(cid)},"
                            f" the markers say {expected}")
    return problems
