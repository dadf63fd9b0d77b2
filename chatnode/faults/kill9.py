"""kill -9 at random moments under steady load, over and over (scripts/kill9).

Devices chat through the node the whole time. At a random moment the node gets SIGKILL; with it
down, the file is checked: every message that got a `sent` is there with the same seq, seqs
have no gap, markers are in range and never went back. Then it restarts on the same port and the
devices come back by themselves. Every fifth stop, and the last, is a SIGTERM under the same load
instead: the graceful shutdown must lose nothing either, and exit 0. Finally the load stops,
the node is restarted once more so every device says hello with its sync map, and each device's
replica and ticks must equal the log.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..store.sqlite import count_messages
from .crowd import gather_crowd
from .device import Load
from .node import NodeProcess
from .settle import converge
from .verify import Markers, open_log, verify_log

# Every this many stops, and the last, is a SIGTERM: graceful shutdown under the same load.
TERM_EVERY = 5


@dataclass
class Kill9Result:
    rounds: int = 0
    acked: int = 0
    messages_in_log: int = 0
    reconnects: int = 0
    problems: list[str] = field(default_factory=list)


async def run_kill9(data_dir: Path, *, rounds: int, users: int, rate: float, up_s: tuple[float,
                    float], seed: int, say: Callable[[str], None] = print) -> Kill9Result:
    rng = random.Random(seed)
    node = NodeProcess(data_dir).start()
    result = Kill9Result()
    markers: Markers = {}
    try:
        devices = await gather_crowd(node.url, users, rng)
        load = Load(sends_per_s=rate / len(devices))
        say(f"{len(devices)} devices of {users} users, {rate:g} msg/s in all, {rounds} stops"
            f" (every {TERM_EVERY}th and the last SIGTERM), node up {up_s[0]:g}-{up_s[1]:g} s"
            " between them")
        say(f"{'stop':>5} {'signal':>7} {'up s':>5} {'acked':>7} {'in log':>7} {'online':>7}"
            f" {'problems':>8}")
        async with trio.open_nursery() as nursery:
            for device in devices:
                nursery.start_soon(device.run, node.url, load)
            for stop in range(1, rounds + 1):
                up = rng.uniform(*up_s)
                await trio.sleep(up)
                online = sum(d.connected for d in devices)
                graceful = stop % TERM_EVERY == 0 or stop == rounds
                # In a thread: the devices keep sending while the node goes down.
                if graceful:
                    if await trio.to_thread.run_sync(node.stop) != 0:
                        result.problems.append("SIGTERM: the node exited with an error")
                else:
                    await trio.to_thread.run_sync(node.kill)
                conn = open_log(node.db_path)
                try:
                    problems, markers = verify_log(conn, devices, markers)
                    in_log = count_messages(conn)
                finally:
                    conn.close()
                result.problems += problems
                acked = sum(len(d.acked) for d in devices)
                say(f"{stop:>5} {'TERM' if graceful else 'KILL':>7} {up:>5.1f} {acked:>7}"
                    f" {in_log:>7} {online:>7} {len(problems):>8}")
                for problem in problems[:10]:
                    say(f"      {problem}")
                await trio.to_thread.run_sync(node.start)
                result.rounds = stop

            load.sending = False

            async def restart() -> None:  # every device comes back with its sync map
                await trio.to_thread.run_sync(node.stop)
                await trio.to_thread.run_sync(node.start)

            problems, result.messages_in_log = await converge(devices, node.db_path, markers,
                                                              restart)
            result.problems += problems
            load.stopping = True
            nursery.cancel_scope.cancel()
        result.acked = sum(len(d.acked) for d in devices)
        result.reconnects = sum(d.connections for d in devices) - len(devices)
        say(f"converged: {len(devices)} devices, {result.messages_in_log} messages in the log,"
            f" {result.acked} acknowledged, {result.reconnects} reconnections;"
            f" {len(result.problems)} problems")
        for problem in result.problems[:20]:
            say(f"  {problem}")
        return result
    finally:
        if node.running():
            node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/kill9", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50, help="stops of the node (default 50)")
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--rate", type=float, default=300, help="messages/s, all devices")
    parser.add_argument("--up", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"),
                        help="seconds the node stays up between stops (uniform)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the data here (default: a temporary directory)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed}")
    with tempfile.TemporaryDirectory(prefix="chatnode-kill9-") as tmp:
        result = trio.run(lambda: run_kill9(
            args.data_dir or Path(tmp), rounds=args.rounds, users=args.users, rate=args.rate,
            up_s=tuple(args.up), seed=seed))
    print("OK" if not result.problems else "FAILED")
    return 0 if not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
