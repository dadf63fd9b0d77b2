"""The node's watch for the admin CLI's account changes (account_watch.py), on a real SQLite
store and a real hub: a session whose hello passed its token check just before the change may
register well after the node's first re-check, and must still be closed."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from chatnode.account_watch import watch_account_changes
from chatnode.hub import CLOSE_UNAUTHENTICATED, Hub, Session
from chatnode.store import SqliteStore
from chatnode.store import sqlite as sql

POLL_S = 0.01


async def device_of(store: SqliteStore, username: str) -> tuple[str, str]:
    user = await store.write(sql.insert_user, username, None, "not-a-real-hash")
    device_id = await store.write(sql.insert_device, user.user_id, None,
                                  username.encode().ljust(32, b"."))
    return user.user_id, device_id


def registered(hub: Hub, user_id: str, device_id: str) -> Session:
    session = Session(user_id, device_id, "json", 8)
    hub.register(session)
    return session


async def closed(session: Session) -> int | None:
    with trio.move_on_after(10):
        while session.close_code is None:
            await trio.sleep(POLL_S)
    return session.close_code


async def test_a_session_registered_well_after_a_disable_is_closed_and_others_stay(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    store.start()
    try:
        hub = Hub()
        mia, ned = await device_of(store, "mia"), await device_of(store, "ned")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(watch_account_changes, store, hub, poll_every_s=POLL_S))
            early = registered(hub, *mia)
            with trio.fail_after(10):
                # Disabled again until the watch, once it has read the count it starts from,
                # sees the count move: each disable counts as a change.
                while early.close_code is None:
                    await store.write(sql.set_user_disabled, "mia", True)
                    await trio.sleep(2 * POLL_S)
            assert early.close_code == CLOSE_UNAUTHENTICATED
            await trio.sleep(30 * POLL_S)  # many polls after the change
            late, bystander = registered(hub, *mia), registered(hub, *ned)
            assert await closed(late) == CLOSE_UNAUTHENTICATED
            await trio.sleep(10 * POLL_S)
            assert bystander.close_code is None
            nursery.cancel_scope.cancel()
    finally:
        await store.close()
