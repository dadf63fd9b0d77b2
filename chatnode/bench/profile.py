"""`python -m chatnode.bench.profile [--seconds S] SCENARIO [bench options]` (scripts/profile):
where the node's time goes under a bench scenario.

It starts a node, runs `scripts/bench SCENARIO --url … --pid …` against it, and when the
measured phase begins samples the node with py-spy for S seconds, counting only samples where
a thread holds the GIL (Python running, not waiting). Each sample is charged to the innermost
package on its stack (chatnode, chatnode.store, trio, wsproto, hypercorn, h11, starlette, …),
so the table says how much of the node's Python time is chatnode's own and how much is the
stack it stands on. The raw samples are kept for a flame graph (--raw FILE).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import click

from .node import NodeUnderTest

# Most specific first: chatnode/store/ is counted apart from the rest of chatnode.
PACKAGES = ["chatnode/store", "chatnode/bench", "chatnode", "wsproto", "h11", "hypercorn",
            "starlette", "anyio", "trio", "msgspec", "prometheus_client", "sqlite3"]
FRAME_FILE = re.compile(r"\(([^()]*?):\d+\)$")


def package_of(frame: str) -> str | None:
    match = FRAME_FILE.search(frame)
    path = match.group(1) if match else ""
    for package in PACKAGES:
        if path.startswith(package + "/") or f"/{package}/" in path or path == package + ".py":
            return package
    return None


def shares(raw: str) -> tuple[int, Counter[str]]:
    """(samples, samples per package) from py-spy's raw (collapsed stack) output."""
    total = 0
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        frames = stack.split(";")
        owner = next((p for f in reversed(frames) if (p := package_of(f))), "other")
        counts[owner] += int(count)
    return total, counts


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--seconds", default=15.0, show_default=True, help="How long to sample.")
@click.option("--raw", "raw_path", type=click.Path(dir_okay=False),
              help="Keep py-spy's raw samples here.")
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def main(seconds: float, raw_path: str | None, bench_args: tuple[str, ...]) -> None:
    """Profile the node under `scripts/bench BENCH_ARGS` (one scenario)."""
    node = NodeUnderTest.start()
    raw_file = Path(raw_path) if raw_path else Path(tempfile.mkstemp(suffix=".txt")[1])
    try:
        bench = subprocess.Popen(
            [sys.executable, "-m", "chatnode.bench", *bench_args, "--url", node.url,
             "--pid", str(node.pid)], stderr=subprocess.PIPE, text=True)
        assert bench.stderr is not None
        for line in bench.stderr:
            sys.stderr.write(line)
            if line.startswith("measuring"):
                break
        subprocess.run(["py-spy", "record", "--pid", str(node.pid), "--duration",
                        str(int(seconds)), "--rate", "250", "--gil", "--format", "raw",
                        "--output", str(raw_file)], check=True, capture_output=True)
        for line in bench.stderr:
            sys.stderr.write(line)
        bench.wait()
    finally:
        node.stop()
    total, counts = shares(raw_file.read_text())
    click.echo(f"\nnode Python time by package ({total} samples holding the GIL):")
    for package, count in counts.most_common():
        click.echo(f"  {100 * count / max(total, 1):5.1f}%  {package}")
    click.echo(f"raw samples: {raw_file}")


if __name__ == "__main__":
    main()
