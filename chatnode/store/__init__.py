"""The store: the log, the markers, users and devices. Every SQL statement lives here."""

from .records import (
    CatchupRange,
    ConversationRecord,
    DeviceAuth,
    MemberRecord,
    PushTargetRecord,
    UserRecord,
)
from .sqlite import SqliteStore, now_ms
from .writer import Job, StoreUnavailable

__all__ = [
    "CatchupRange",
    "ConversationRecord",
    "DeviceAuth",
    "Job",
    "MemberRecord",
    "PushTargetRecord",
    "SqliteStore",
    "StoreUnavailable",
    "UserRecord",
    "now_ms",
]
