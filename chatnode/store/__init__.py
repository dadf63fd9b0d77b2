"""The store: the log, the markers, users and devices. Every SQL statement lives here."""

from .records import CatchupRange, ConversationRecord, DeviceAuth, MemberRecord, UserRecord
from .sqlite import SqliteStore, now_ms
from .writer import Job, StoreUnavailable

__all__ = [
    "CatchupRange",
    "ConversationRecord",
    "DeviceAuth",
    "Job",
    "MemberRecord",
    "SqliteStore",
    "StoreUnavailable",
    "UserRecord",
    "now_ms",
]
