"""Waiting for a crowd of devices to come to rest, then comparing them with the log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..store.sqlite import count_messages
from .device import Device
from .verify import Markers, open_log, verify_converged, verify_log


async def settle(devices: list[Device], deadline_s: float) -> bool:
    """Wait until every device is connected with nothing left unacknowledged."""
    with trio.move_on_after(deadline_s):
        while not all(d.connected and not d.outbox for d in devices):
            await trio.sleep(0.1)
        return True
    return False


async def quiet(devices: list[Device], quiet_s: float = 1.0) -> None:
    """Wait until no device has received a frame for `quiet_s`: the markers have landed."""
    while trio.current_time() - max(d.last_frame_at for d in devices) < quiet_s:
        await trio.sleep(0.1)


async def all_reconnected(devices: list[Device], connections_before: dict[str, int],
                          deadline_s: float) -> bool:
    """Wait until every device has made a new connection (and read its catch-up) since
    `connections_before` was taken."""
    with trio.move_on_after(deadline_s):
        while not all(d.connected and d.connections > connections_before[d.name]
                      for d in devices):
            await trio.sleep(0.1)
        return True
    return False


async def converge(devices: list[Device], db_path: Path, markers: Markers,
                   reconnect_everyone: Callable[[], Awaitable[None]]
                   ) -> tuple[list[str], int]:
    """With the load off: every send acknowledged, every device back once more with its sync
    map (a live session is not told of a sender's own implicit marker move: the catch-up
    carries it), then each device's replica and ticks against the log. Returns every problem
    found (the devices' own broken promises included) and how many messages the log holds."""
    problems = []
    if not await settle(devices, 60):
        problems.append("devices did not get every send acknowledged in 60 s")
    await quiet(devices)
    connections = {d.name: d.connections for d in devices}
    await reconnect_everyone()
    if not await all_reconnected(devices, connections, 60):
        problems.append("devices did not reconnect within 60 s")
    await quiet(devices)
    conn = open_log(db_path)
    try:
        problems += verify_log(conn, devices, markers)[0]
        for device in devices:
            problems += verify_converged(conn, device)
        messages = count_messages(conn)
    finally:
        conn.close()
    for device in devices:
        problems += device.violations
    return problems, messages
