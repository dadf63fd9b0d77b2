"""What the node asks of its store, SqliteStore and PostgresStore alike.

Operations are named by sqlite.py's functions (`store.write(sql.append_message, ...)`); a
PostgresStore runs their twins (pg_ops.py). SQLite's WAL checkpoint is SQLite's own business
and not part of this interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ..protocol import Message
from .records import CatchupRange, ConversationRecord
from .writer import Job


class NodeStore(Protocol):
    def start(self) -> None: ...

    async def close(self) -> None: ...

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_done: Callable[[Job], None] | None = None) -> Job:
        """Queue a write for the group-commit writer; never blocks."""
        ...

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def stream_ranges(self, ranges: list[CatchupRange]) -> AsyncIterator[list[Message]]: ...

    def load_conversations(self) -> list[ConversationRecord]: ...

    def load_push_users(self) -> set[str]: ...

    def free_bytes(self) -> int | None:
        """Room left where the store writes, if the node can see it (None: it cannot)."""
        ...
