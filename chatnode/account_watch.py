"""Account changes the admin CLI makes beside a running node reach its live sessions.

`chatnode user disable` and `chatnode user password` write the store from their own process:
the node hears nothing, and the tokens they kill are refused only at the next request or
hello. A session already open would stay up until it reconnected. So the CLI counts each such
change in the store (sql.note_accounts_changed, in the change's own transaction), every node
polls that count, and when it moves the node asks the store which of its live sessions'
devices still work and closes the others with 4001, as an admin's REST change does at once.

The poll is one indexed read a second; the re-check runs only after a change. On a cluster
every node polls the shared store, so each closes its own sessions and the bus is not needed.
"""

from __future__ import annotations

import logging
import sqlite3

import trio

from .hub import CLOSE_UNAUTHENTICATED, Hub
from .logs import fields
from .store import StoreUnavailable
from .store import sqlite as sql
from .store.interface import NodeStore

log = logging.getLogger("chatnode.accounts")

POLL_EVERY_S = 1.0


async def watch_account_changes(store: NodeStore, hub: Hub,
                                poll_every_s: float = POLL_EVERY_S) -> None:
    """Runs for the node's life. A hello whose token was checked just before a change may
    register its session just after the re-check: the poll after a change re-checks once
    more, so that session ends a second later rather than never."""
    seen: int | None = None
    recheck_next = False
    failing = False
    while True:
        try:
            count = await store.read(sql.accounts_changed)
            if seen is not None and (count != seen or recheck_next):
                recheck_next = count != seen
                await close_dead_sessions(store, hub)
            seen = count
        except (StoreUnavailable, sqlite3.Error) as exc:  # the next poll tries again
            if not failing:
                log.warning("account changes cannot be read", extra=fields(error=str(exc)))
            failing = True
        else:
            failing = False
        await trio.sleep(poll_every_s)


async def close_dead_sessions(store: NodeStore, hub: Hub) -> None:
    live = hub.live_devices()
    if not live:
        return
    working = await store.read(sql.working_devices, live)
    for device_id in live - working:
        log.info("session closed, token no longer works", extra=fields(device=device_id))
        # Not remembered as revoked (hub.revoke_device_here): a disabled account enabled
        # again a moment later must be able to reconnect with the same token.
        hub.close_device(device_id, CLOSE_UNAUTHENTICATED)
