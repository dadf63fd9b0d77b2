"""Waiting for a crowd of devices to come to rest before the log is compared with them."""

from __future__ import annotations

import trio

from .device import Device


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
