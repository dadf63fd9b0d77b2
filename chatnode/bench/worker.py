"""A load process. The bench starts a few of these so that the load is not generated (and
measured) by the process that reads the results.

Protocol on stdin/stdout, one line each: the bench writes the spec (JSON); the worker sets up
(opens its sessions) and prints `ready`; on `go` it runs the measured phase and prints
`result <JSON>`; on `stop` it closes its sessions and exits. Between `result` and `stop` the
sessions stay open, so the bench can read the node's memory with them held.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from trio_websocket import ConnectionClosed

from ..client import RestClient, Session, connect
from .peers import EchoPeer, Peer

Spec = dict[str, Any]
Role = Callable[[Spec, "Control"], Awaitable[dict[str, Any]]]

# After the load stops, everything in flight must arrive, however far behind the node fell:
# a slow node is measured as slow, not as lossy. The wait ends when all has arrived, or when
# nothing at all arrived for DRAIN_STALL_S (then what is missing counts as lost).
DRAIN_STALL_S = 10.0
MARKER_SETTLE_S = 0.5  # then for the last `delivered` acks and their status_updates


class Control:
    """The worker's side of the line protocol."""

    def __init__(self) -> None:
        self.stdin = trio.wrap_file(sys.stdin)

    async def wait_for(self, word: str) -> None:
        line = (await self.stdin.readline()).strip()
        if line != word:
            raise SystemExit(f"worker: expected {word!r}, got {line!r}")

    @staticmethod
    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


async def paced(rate: float, duration: float, actions: list[Callable[[], Awaitable[None]]]
                ) -> None:
    """Run `rate` actions/s in total for `duration` s, round-robin over `actions` (each sends
    one frame). Each tick runs what is due, so a slow tick is caught up rather than lost, and
    the last one runs whatever the run still owes: a busy machine that wakes the pacer late
    must not make it send fewer than `rate * duration` actions."""
    if rate <= 0 or not actions:
        await trio.sleep(duration)
        return
    started = trio.current_time()
    owed = int(rate * duration)
    done = 0
    while done < owed:
        elapsed = trio.current_time() - started
        due = min(int(elapsed * rate), owed) if elapsed < duration else owed
        for turn in range(done, due):
            await actions[turn % len(actions)]()
        done = max(done, due)
        if done < owed:
            await trio.sleep(0.001)


def arrived(peers: list[Peer]) -> int:
    """Frames that tell something arrived: others' messages, and `sent` for one's own."""
    return sum(len(r) for p in peers for r in p.received.values()) + sum(
        len(s) for p in peers for s in p.own.values())


async def drain(peers: list[Peer], settled: Callable[[], bool], stall_s: float = DRAIN_STALL_S
                ) -> float:
    """Wait until `settled()` says everything in flight has arrived, or nothing has arrived
    for `stall_s`. Returns the trio time of the last arrival."""
    last, last_at = arrived(peers), trio.current_time()
    while not settled() and trio.current_time() - last_at < stall_s:
        await trio.sleep(0.02)
        if (now := arrived(peers)) != last:
            last, last_at = now, trio.current_time()
    return last_at


async def pairs(spec: Spec, control: Control) -> dict[str, Any]:
    """Both members of each direct pair send; every `message` is acknowledged with `delivered`
    at once, as a phone does; `sent`, `message` and `status_update` are all checked."""
    async with trio.open_nursery() as nursery:
        peers = []
        # A cluster run puts each pair's two sides on two different nodes.
        urls = spec.get("urls") or [spec["url"], spec["url"]]
        for pair in spec["pairs"]:
            for token, url in zip(pair["tokens"], urls, strict=True):
                peer = Peer(token, ack="each")
                peers.append(peer)
                await nursery.start(peer.run, url)
        couples = [(peers[2 * i], peers[2 * i + 1], pair["conversation_id"])
                   for i, pair in enumerate(spec["pairs"])]
        conversation = {id(p): cid for a, b, cid in couples for p in (a, b)}
        control.say("ready")
        await control.wait_for("go")
        cpu_at_go = time.process_time()
        await paced(spec["rate"], spec["duration"],
                    [partial(p.send_stamped, conversation[id(p)]) for p in peers])
        await drain(peers, lambda: all(p.unacknowledged == 0 for p in peers)
                    and not any(lost_between(*c) for c in couples))
        cpu_s = time.process_time() - cpu_at_go
        await trio.sleep(MARKER_SETTLE_S)
        result = Peer.report(peers)
        result["cpu_s"] = cpu_s
        result["lost"] = sum(lost_between(*c) for c in couples)
        result["wrong_markers"] = sum([await wrong_markers(spec["url"], p, cid)
                                       for a, b, cid in couples for p in (a, b)])
        control.say("result " + json.dumps(result))
        await control.wait_for("stop")
        nursery.cancel_scope.cancel()
    return result


def lost_between(a: Peer, b: Peer, cid: str) -> int:
    """Messages one side committed that the other never got."""
    return len(set(a.own[cid]) - b.received[cid]) + len(set(b.own[cid]) - a.received[cid])


async def wrong_markers(url: str, peer: Peer, cid: str) -> int:
    """1 if what the peer was shown of the other side's `delivered` marker disagrees with the
    log: the node must hold it at the conversation's last seq (the other side acknowledged
    every message, or wrote after it), and a live `status_update` must never have claimed more
    than the node holds. A live marker below the log's is allowed: PROTOCOL.md moves a sender's
    marker implicitly, without a status_update, and a `delivered` below it changes nothing."""
    async with RestClient(url, peer.token) as rest:
        info = next(c for c in await rest.conversations() if c["conversation_id"] == cid)
    shown = peer.marker.get(cid, 0)
    return int(info["last_delivered_seq"] != info["last_seq"]
               or shown > info["last_delivered_seq"])


async def group(spec: Spec, control: Control) -> dict[str, Any]:
    """Members of one big group: a few send, everyone receives; acknowledgements are
    cumulative, one per member per 200 ms, as clients batch them."""
    async with trio.open_nursery() as nursery:
        peers = []
        for token in spec["tokens"]:
            peer = Peer(token, ack="batched")
            peers.append(peer)
            await nursery.start(peer.run, spec["url"])
        senders = peers[:spec["senders"]]
        control.say("ready")
        await control.wait_for("go")
        started = trio.current_time()
        cpu_at_go = time.process_time()
        await paced(spec["rate"], spec["duration"],
                    [partial(p.send_stamped, spec["conversation_id"]) for p in senders])
        await drain(peers, lambda: all(p.unacknowledged == 0 for p in senders))
        # Messages from other workers' senders: wait until they stop coming.
        last_at = await drain(peers, lambda: False, stall_s=spec["settle_s"])
        result = Peer.report(peers)
        result["active_s"] = last_at - started  # from go to the last arrival
        # What receiving costs the load itself: the machine's cores are shared with the node.
        result["cpu_s"] = time.process_time() - cpu_at_go
        control.say("result " + json.dumps(result))
        await control.wait_for("stop")
        nursery.cancel_scope.cancel()
    return result


async def ingest(spec: Spec, control: Control) -> dict[str, Any]:
    """Senders each keep `window` sends in flight into their own conversation (whose other
    member is offline): the commit path alone, durable commits on."""
    async with trio.open_nursery() as nursery:
        peers = []
        for sender in spec["senders"]:
            peer = Peer(sender["token"], ack="none")
            peers.append(peer)
            await nursery.start(peer.run, spec["url"])
        control.say("ready")
        await control.wait_for("go")
        with trio.move_on_after(spec["duration"]):
            async with trio.open_nursery() as senders:
                for peer, sender in zip(peers, spec["senders"], strict=True):
                    senders.start_soon(peer.pipeline, sender["conversation_id"], spec["window"])
        await drain(peers, lambda: all(p.unacknowledged == 0 for p in peers))
        result = Peer.report(peers)
        control.say("result " + json.dumps(result))
        await control.wait_for("stop")
        nursery.cancel_scope.cancel()
    return result


async def idle(spec: Spec, control: Control) -> dict[str, Any]:
    """Open `sessions` authenticated sessions (hello, empty catch-up, synced) and hold them."""
    control.say("ready")
    await control.wait_for("go")
    tokens = spec["tokens"]
    opened: list[float] = []
    failures: list[str] = []
    limit = trio.CapacityLimiter(spec.get("concurrency", 64))
    stop = trio.Event()

    async def hold(i: int, all_open: Callable[[], None]) -> None:
        try:
            async with limit:
                cm = connect(spec["url"], tokens[i % len(tokens)])
                session, _ = await cm.__aenter__()
            opened.append(time.monotonic())
            all_open()
            await keep_alive(session, stop)
            await cm.__aexit__(None, None, None)
        except (ConnectionClosed, OSError, trio.TooSlowError) as exc:
            failures.append(repr(exc))
            all_open()

    started = time.monotonic()
    everyone = trio.Event()

    def all_open() -> None:
        if len(opened) + len(failures) == spec["sessions"]:
            everyone.set()

    async with trio.open_nursery() as nursery:
        for i in range(spec["sessions"]):
            nursery.start_soon(hold, i, all_open)
        await everyone.wait()
        seconds = (max(opened) - started) if opened else 0.0
        result = {"opened": len(opened), "failures": failures[:5], "failed": len(failures),
                  "connect_s": seconds}
        control.say("result " + json.dumps(result))
        await control.wait_for("stop")
        stop.set()
    return result


async def keep_alive(session: Session, stop: trio.Event) -> None:
    """Idle, but alive: a ping now and then, as any client must send."""
    heartbeat = session.welcome.get("heartbeat_s", 30)
    while not stop.is_set():
        with trio.move_on_after(heartbeat / 2):
            await stop.wait()
        if not stop.is_set():
            await session.send({"type": "ping"})


async def echo(spec: Spec, control: Control) -> dict[str, Any]:
    """Sessions of the echo server (echo.py), in one of three modes:
    `round_trips`: paced frames shaped like a chat `send`, each back once, in order, timed;
    `bursts`: paced requests for `burst` message-shaped frames each, outbound only;
    `connects`: on go, open the sessions (one round trip each) and hold them."""
    async with trio.open_nursery() as nursery:
        sockets = [EchoPeer() for _ in range(spec["sessions"])]
        limit = trio.CapacityLimiter(64)

        async def open_one(socket: EchoPeer) -> None:
            async with limit:
                await nursery.start(socket.run, spec["url"])

        connect_s = 0.0
        if spec["mode"] != "connects":
            for socket in sockets:
                await open_one(socket)
        control.say("ready")
        await control.wait_for("go")
        if spec["mode"] == "connects":
            started = time.monotonic()
            async with trio.open_nursery() as openers:
                for socket in sockets:
                    openers.start_soon(open_one, socket)
            connect_s = time.monotonic() - started
        elif spec["mode"] == "bursts":
            burst = spec["burst"]
            await paced(spec["rate"] / burst, spec["duration"],
                        [partial(s.ask_burst, burst) for s in sockets])
            with trio.move_on_after(DRAIN_STALL_S):
                while any(s.burst_frames < s.bursts * burst for s in sockets):
                    await trio.sleep(0.02)
        else:
            await paced(spec["rate"], spec["duration"], [s.send for s in sockets])
            with trio.move_on_after(DRAIN_STALL_S):
                while any(s.waiting for s in sockets):
                    await trio.sleep(0.02)
        result = {"sent": sum(s.sent for s in sockets), "echoed": sum(s.echoed for s in sockets),
                  "wrong": sum(s.wrong for s in sockets),
                  "burst_frames": sum(s.burst_frames for s in sockets),
                  "burst_frames_asked": sum(s.bursts for s in sockets) * spec.get("burst", 0),
                  "opened": sum(s.ws is not None for s in sockets), "connect_s": connect_s,
                  "rtt_ns": [x for s in sockets for x in s.rtt_ns]}
        control.say("result " + json.dumps(result))
        await control.wait_for("stop")
        nursery.cancel_scope.cancel()
    return result


ROLES: dict[str, Role] = {"pairs": pairs, "group": group, "ingest": ingest, "idle": idle,
                          "echo": echo}


async def main() -> None:
    control = Control()
    spec = json.loads(await control.stdin.readline())
    await ROLES[spec["role"]](spec, control)


if __name__ == "__main__":
    trio.run(main)
