"""`python -m chatnode.bench [options] SCENARIO...` (or `scripts/bench`): run, check, report."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import click
import trio

from .cluster import ClusterUnderTest, cluster
from .node import NodeUnderTest
from .report import print_report
from .scenarios import SCENARIOS, Options
from .stats import Checks

ORDER = ["pairs", "max", "idle", "catchup", "ingest", "group", "transport", "search"]


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}


@click.command()
@click.argument("scenarios", nargs=-1, type=click.Choice([*ORDER, "all", "cluster"]))
@click.option("--url", help="Drive a running node instead of starting one.")
@click.option("--pid", type=int, help="With --url: the node's process id, for CPU and memory.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every figure.")
@click.option("--workers", default=2, show_default=True, help="Load processes.")
@click.option("--pairs", default=100, show_default=True)
@click.option("--rate", default=2000.0, show_default=True, help="pairs: messages/s in total.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds of load per run.")
@click.option("--sessions", default=10_000, show_default=True, help="idle: sessions.")
@click.option("--conversations", default=50, show_default=True, help="catchup: conversations.")
@click.option("--missed", default=20, show_default=True, help="catchup: missed per conversation.")
@click.option("--backlog", default=100_000, show_default=True, help="catchup: backlog size.")
@click.option("--senders", default=200, show_default=True, help="ingest: senders.")
@click.option("--window", default=8, show_default=True, help="ingest: sends in flight each.")
@click.option("--members", default=256, show_default=True, help="group: members.")
@click.option("--group-senders", default=4, show_default=True)
@click.option("--group-rate", default=200.0, show_default=True, help="group: messages/s.")
@click.option("--max-p99-ms", default=100.0, show_default=True,
              help="max: the climb stops once p99 passes this.")
@click.option("--store-url", help="cluster: the PostgreSQL store both nodes use.")
@click.option("--bus-url", help="cluster: the Redis both nodes use.")
@click.option("--cluster-rate", default=1000.0, show_default=True,
              help="cluster: messages/s in total for the cross-node pairs run.")
@click.option("--messages", default=1_000_000, show_default=True,
              help="search: messages in the store.")
@click.option("--queries", default=500, show_default=True, help="search: queries timed.")
@click.option("--search-users", default=40, show_default=True, help="search: users.")
def main(scenarios: tuple[str, ...], url: str | None, pid: int | None, json_path: str | None,
         store_url: str | None, bus_url: str | None, cluster_rate: float,
         **options: Any) -> None:
    """Load a chatnode and report. SCENARIOS: pairs, max, idle, catchup, ingest, group,
    transport, search, all; and cluster (two nodes on --store-url and --bus-url; not part
    of all)."""
    if "cluster" in scenarios and not (store_url and bus_url):
        raise click.UsageError("cluster needs --store-url (PostgreSQL) and --bus-url (Redis)")
    chosen = ORDER if "all" in scenarios or not scenarios else \
        [s for s in ORDER if s in scenarios]
    o = Options(**options)
    node = NodeUnderTest.attach(url, pid) if url else NodeUnderTest.start()
    figures: dict[str, Any] = {"machine": machine(), "node": {
        "url": node.url, "start_s": None if node.started_in_s is None
        else round(node.started_in_s, 2), "idle_rss_mb": None}}
    rss = node.rss_bytes()
    figures["node"]["idle_rss_mb"] = None if rss is None else round(rss / 2**20, 1)
    checks = Checks()
    try:
        for name in chosen:
            # Each scenario on a fresh node of its own, so one does not pay for another's data.
            if not url and name != chosen[0]:
                node.stop()
                node = NodeUnderTest.start()
            click.echo(f"running {name}…", err=True)
            figures[name] = trio.run(SCENARIOS[name], node, o, checks)
    finally:
        node.stop()
    if "cluster" in scenarios:
        assert store_url is not None and bus_url is not None
        click.echo("running cluster…", err=True)
        nodes = ClusterUnderTest(store_url, bus_url)
        try:
            figures["cluster"] = trio.run(cluster, nodes, o, checks, cluster_rate)
        finally:
            nodes.stop()
    figures["passed"] = checks.passed
    figures["failures"] = checks.failures
    print_report(figures)
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(0 if checks.passed else 1)


if __name__ == "__main__":
    main()
