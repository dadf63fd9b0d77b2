"""Account changes the admin CLI makes beside a running node reach its live sessions.

`chatnode user disable` and `chatnode user password` write the store from their own process:
the node hears nothing, and the tokens they kill are refused only at the next request or
hello. A session already open would stay up until it reconnected. So the CLI counts each such
change in the store (sql.note_accounts_changed, in the change's own transaction), every node
polls that count, and when it moves the node asks the store which of its live sessions'
devices still work and closes the others with 4001, as an admin's REST change does at once.

The poll is one indexed read a second; the re-check runs only in the minute after a change,
and each device is read once unless its token no longer works. On a cluster
every node polls the shared store, so each closes its own sessions and the bus is not needed.
"""

from __future__ import annotations

import logging
import math
import sqlite3

import trio

from .hub import CLOSE_UNAUTHENTICATED, REVOKED_MEMORY_S, Hub
from .logs import fields
from .store import StoreUnavailable
from .store import sqlite as sql
from .store.interface import NodeStore

log = logging.getLogger("chatnode.accounts")

POLL_EVERY_S = 1.0
# How long after a change the sessions that go live are checked too: a hello whose token was
# checked before the change may register its session this much later (a cluster's catch-up, a
# busy store), as for a device logged out over REST (hub.REVOKED_MEMORY_S).
RECHECK_FOR_S = REVOKED_MEMORY_S


async def watch_account_changes(store: NodeStore, hub: Hub,
                                poll_every_s: float = POLL_EVERY_S,
                                recheck_for_s: float = RECHECK_FOR_S) -> None:
    """Runs for the node's life. After a change every live session's device is checked, and
    for `recheck_for_s` each poll checks the devices that went live since (the others were
    found working after the change), so a session whose hello passed just before the change
    ends a poll after it registers rather than never."""
    seen: int | None = None
    recheck_until = -math.inf
    working: set[str] = set()  # devices found working since the last change
    failing = False
    while True:
        try:
            count = await store.read(sql.accounts_changed)
            if seen is not None and count != seen:
                working = set()
                recheck_until = trio.current_time() + recheck_for_s
            if trio.current_time() < recheck_until:
                working |= await close_dead_sessions(store, hub, hub.live_devices() - working)
            seen = count
        except (StoreUnavailable, sqlite3.Error) as exc:  # the next poll tries again
            if not failing:
                log.warning("account changes cannot be read", extra=fields(error=str(exc)))
            failing = True
        else:
            failing = False
        await trio.sleep(poll_every_s)


async def close_dead_sessions(store: NodeStore, hub: Hub, devices: set[str]) -> set[str]:
    """Closes the live sessions of those of `devices` whose tokens no longer work; returns
    the others."""
    if not devices:
        return set()
    working: set[str] = await store.read(sql.working_devices, devices)
    for device_id in devices - working:
        log.info("session closed, token no longer works", extra=fields(device=device_id))
        # Not remembered as revoked (hub.revoke_device_here): a disabled account enabled
        # again a moment later must be able to reconnect with the same token.
        hub.close_device(device_id, CLOSE_UNAUTHENTICATED)
    return working
