"""A long run with connection churn, reconnect storms and steady traffic (scripts/soak).

Devices chat at a steady rate; each connection lives a random while (exponential, mean
--churn s) and then leaves on its own; every --storm s every device drops at once and they all
come back together. Every --every s a row shows the node's memory, descriptors, sessions, WAL
size and the send -> sent latency of that interval. Memory and descriptors must stay flat: after
the warm-up (the first fifth of the run), neither may grow past what the warm-up reached by
more than a small slack. At the end the load stops and every device must equal the log, as in
kill9.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from .crowd import gather_crowd
from .device import Device, Load
from .node import NodeProcess
from .settle import converge

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
RSS_SLACK = 1.10  # flat: at most 10 % above the warm-up's highest ...
RSS_SLACK_BYTES = 4 * 1024 * 1024  # ... or 4 MiB, whichever is more
FD_SLACK = 16


@dataclass
class Sample:
    at_s: float
    rss_bytes: int
    fds: int
    sessions: int
    wal_bytes: int
    acked: int
    reconnects: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _gauge(http: httpx.AsyncClient, name: str) -> int:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    return -1


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def flatness_problems(samples: list[Sample], warmup: int) -> list[str]:
    """Memory and descriptors after the warm-up must not climb past what it reached."""
    if len(samples) <= warmup:
        return ["the run was too short to tell whether memory stays flat"]
    before, after = samples[:warmup], samples[warmup:]
    rss_bound = max(max(s.rss_bytes for s in before) * RSS_SLACK,
                    max(s.rss_bytes for s in before) + RSS_SLACK_BYTES)
    fd_bound = max(s.fds for s in before) + FD_SLACK
    problems = []
    if max(s.rss_bytes for s in after) > rss_bound:
        problems.append(f"memory grew: {max(s.rss_bytes for s in after) / 2**20:.1f} MiB after"
                        f" the warm-up, bound {rss_bound / 2**20:.1f} MiB")
    if max(s.fds for s in after) > fd_bound:
        problems.append(f"descriptors grew: {max(s.fds for s in after)}, bound {fd_bound}")
    return problems


async def _storms(devices: list[Device], storm_s: float) -> None:
    """Every `storm_s`, every device drops its connection at once and all come back together."""
    while True:
        await trio.sleep(storm_s)
        for device in devices:
            device.drop()


async def run_soak(data_dir: Path, *, seconds: float, users: int, rate: float, churn_s: float,
                   storm_s: float, every_s: float, seed: int, judge_flatness: bool = True,
                   say: Callable[[str], None] = print) -> SoakResult:
    rng = random.Random(seed)
    node = NodeProcess(data_dir).start()
    result = SoakResult()
    try:
        devices = await gather_crowd(node.url, users, rng)
        load = Load(sends_per_s=rate / len(devices), churn_s=churn_s)
        say(f"{len(devices)} devices of {users} users, {rate:g} msg/s, connections live"
            f" ~{churn_s:g} s, a reconnect storm every {storm_s:g} s, for {seconds:g} s")
        say(f"{'t s':>6} {'rss MiB':>8} {'fds':>5} {'sessions':>8} {'wal KiB':>8} {'acked':>7}"
            f" {'reconn':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
        async with httpx.AsyncClient(base_url=node.url) as http, trio.open_nursery() as nursery:
            for device in devices:
                nursery.start_soon(device.run, node.url, load)
            nursery.start_soon(_storms, devices, storm_s)
            started = trio.current_time()
            acked_before = reconnects_before = 0
            for tick in range(1, int(seconds // every_s) + 1):
                await trio.sleep_until(started + tick * every_s)
                latencies = [x for d in devices for x in d.latencies_s]
                for device in devices:
                    device.latencies_s.clear()
                acked = sum(len(d.acked) for d in devices)
                reconnects = sum(d.connections for d in devices)
                sample = Sample(
                    tick * every_s, _rss(node.pid), _fds(node.pid),
                    await _gauge(http, "chatnode_sessions"),
                    await _gauge(http, "chatnode_wal_bytes"),
                    acked - acked_before, reconnects - reconnects_before,
                    _percentile(latencies, 0.5) * 1000, _percentile(latencies, 0.99) * 1000,
                    max(latencies, default=0) * 1000)
                acked_before, reconnects_before = acked, reconnects
                result.samples.append(sample)
                say(f"{sample.at_s:>6.0f} {sample.rss_bytes / 2**20:>8.1f} {sample.fds:>5}"
                    f" {sample.sessions:>8} {sample.wal_bytes / 1024:>8.0f} {sample.acked:>7}"
                    f" {sample.reconnects:>6} {sample.p50_ms:>7.1f} {sample.p99_ms:>7.1f}"
                    f" {sample.max_ms:>7.1f}")

            load.sending = False
            load.churn_s = None

            async def drop_all() -> None:
                for device in devices:
                    device.drop()

            result.problems += (await converge(devices, node.db_path, {}, drop_all))[0]
            load.stopping = True
            nursery.cancel_scope.cancel()
        if judge_flatness:
            result.problems += flatness_problems(result.samples,
                                                 max(1, len(result.samples) // 5))
        p99s = [s.p99_ms for s in result.samples]
        say(f"total: {sum(len(d.acked) for d in devices)} messages acknowledged,"
            f" {sum(d.connections for d in devices)} connections;"
            f" p99 per interval median {statistics.median(p99s) if p99s else 0:.1f} ms;"
            f" {len(result.problems)} problems")
        for problem in result.problems[:20]:
            say(f"  {problem}")
        return result
    finally:
        if node.running():
            node.stop()


def _duration(text: str) -> float:
    """`90`, `90s`, `10m` or `2h` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--time", type=_duration, default=600.0,
                        help="how long: 90s, 10m, 2h (default 10m)")
    parser.add_argument("--users", type=int, default=40)
    # Steady, not saturating: with the crowd's groups of 40 and 21 every message fans out to
    # about 15 people, each of whom acknowledges and reads it.
    parser.add_argument("--rate", type=float, default=25, help="messages/s, all devices")
    parser.add_argument("--churn", type=float, default=30,
                        help="mean life of one connection, s (default 30)")
    parser.add_argument("--storm", type=_duration, default=120.0,
                        help="every device drops at once this often (default 2m)")
    parser.add_argument("--every", type=_duration, default=30.0,
                        help="one row of figures this often (default 30s)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed}")
    with tempfile.TemporaryDirectory(prefix="chatnode-soak-") as tmp:
        result = trio.run(lambda: run_soak(
            Path(tmp), seconds=args.time, users=args.users, rate=args.rate,
            churn_s=args.churn, storm_s=args.storm, every_s=args.every, seed=seed))
    print("OK: memory and descriptors flat, every device equals the log"
          if not result.problems else "FAILED")
    return 0 if not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
