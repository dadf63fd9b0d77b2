"""The printed report: one readable table of every figure, then the verdict."""

from __future__ import annotations

from typing import Any

import click

ROWS: list[tuple[str, str, str]] = [
    ("node", "start_s", "node start (s)"),
    ("node", "idle_rss_mb", "idle node RSS (MB)"),
    ("pairs", "delivered_per_s", "pairs: delivered msg/s"),
    ("pairs", "latency_ms.p50", "pairs: end-to-end p50 (ms)"),
    ("pairs", "latency_ms.p99", "pairs: end-to-end p99 (ms)"),
    ("pairs", "latency_ms.max", "pairs: end-to-end max (ms)"),
    ("pairs", "server_cpu_us_per_delivered", "pairs: server CPU per delivered msg (µs)"),
    ("pairs", "load_cpu_us_per_delivered", "pairs: load processes' CPU per msg (µs)"),
    ("pairs", "machine_cores_busy", "pairs: machine's cores busy (all processes)"),
    ("pairs", "server_rss_mb", "pairs: server RSS (MB)"),
    ("pairs", "sent", "pairs: sent"),
    ("pairs", "delivered", "pairs: delivered"),
    ("pairs", "lost", "pairs: lost"),
    ("pairs", "duplicated", "pairs: duplicated"),
    ("max", "max_delivered_per_s", "max: highest sustained delivered msg/s"),
    ("idle", "opened", "idle: sessions held"),
    ("idle", "connect_per_s", "idle: new sessions/s"),
    ("idle", "server_cpu_us_per_session", "idle: server CPU per new session (µs)"),
    ("idle", "rss_per_session_kib", "idle: server RSS per session (KiB)"),
    ("catchup", "synced_ms", "catchup: hello → synced (ms)"),
    ("catchup", "backlog_messages_per_s", "catchup: backlog msg/s"),
    ("catchup", "backlog_server_cpu_share", "catchup: node CPU during backlog (cores)"),
    ("ingest", "acknowledged_per_s", "ingest: acknowledged sends/s"),
    ("ingest", "sent_latency_ms.p50", "ingest: `sent` p50 (ms)"),
    ("ingest", "sent_latency_ms.p99", "ingest: `sent` p99 (ms)"),
    ("ingest", "server_cpu_us_per_send", "ingest: server CPU per send (µs)"),
    ("ingest", "commit_batch_mean", "ingest: jobs per commit (mean)"),
    ("group", "deliveries_per_s", "group: deliveries/s"),
    ("group", "fanout_latency_ms.p99", "group: fan-out p99 (ms)"),
    ("group", "server_cpu_us_per_delivery", "group: server CPU per delivery (µs)"),
    ("group", "load_cpu_us_per_delivery", "group: load processes' CPU per delivery (µs)"),
    ("transport", "latency_ms.p99", "transport: echo round trip p99 (ms)"),
    ("transport", "server_cpu_us_per_round_trip", "transport: CPU per frame in + out (µs)"),
    ("transport", "pairs_floor_us", "transport: floor under pairs CPU/msg (µs)"),
    ("transport", "server_cpu_us_per_out_frame", "transport: CPU per frame out (µs)"),
    ("transport", "out_frames_per_core_s", "transport: frames out per core-second"),
    ("transport", "connect_per_s", "transport: new connections/s"),
    ("transport", "server_cpu_us_per_connect", "transport: CPU per connection (µs)"),
    ("search", "messages", "search: messages in the store"),
    ("search", "prepare_s", "search: writing and indexing them (s)"),
    ("search", "latency_ms.p50", "search: query p50 (ms)"),
    ("search", "latency_ms.p99", "search: query p99 (ms)"),
    ("search", "hits_per_query", "search: hits per query (mean)"),
    ("search", "database_mb", "search: database (MB)"),
    ("search", "index_share", "search: index's share of the database"),
    ("cluster", "pairs.rate", "cluster: cross-node pairs, asked msg/s"),
    ("cluster", "pairs.delivered_per_s", "cluster: cross-node delivered msg/s"),
    ("cluster", "pairs.latency_ms.p50", "cluster: cross-node end-to-end p50 (ms)"),
    ("cluster", "pairs.latency_ms.p99", "cluster: cross-node end-to-end p99 (ms)"),
    ("cluster", "pairs.lost", "cluster: lost"),
    ("cluster", "pairs.duplicated", "cluster: duplicated"),
    ("cluster", "pairs.server_cpu_us_per_delivered", "cluster: both nodes' CPU per msg (µs)"),
    ("cluster", "pairs.load_cpu_us_per_delivered", "cluster: load processes' CPU per msg (µs)"),
    ("cluster", "pairs.machine_cores_busy",
     "cluster: machine's cores busy (nodes, load, PostgreSQL, Redis)"),
    ("cluster", "max.max_delivered_per_s", "cluster: highest sustained msg/s, two nodes"),
]


def lookup(figures: dict[str, Any], section: str, path: str) -> Any:
    value: Any = figures.get(section)
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def print_report(figures: dict[str, Any]) -> None:
    m = figures["machine"]
    click.echo(f"\nchatnode bench on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
               f"Python {m['python']}, Linux {m['kernel']}")
    rows = [(label, lookup(figures, section, path)) for section, path, label in ROWS
            if section in figures]
    width = max(len(label) for label, _ in rows)
    click.echo(f"{'figure'.ljust(width)}  value")
    click.echo(f"{'-' * width}  -----")
    for label, value in rows:
        click.echo(f"{label.ljust(width)}  {'n/a' if value is None else value}")
    for name, climb in [("max", figures.get("max")),
                        ("cluster max", figures.get("cluster", {}).get("max"))]:
        for step in (climb or {}).get("steps", []):
            click.echo(f"  {name} step: rate {step['rate']} → {step['delivered_per_s']} msg/s,"
                       f" p99 {step['p99_ms']} ms, {step['cpu_us']} µs/msg")
    if figures["passed"]:
        click.echo("\nchecks: passed (nothing lost, nothing twice, no gaps, markers right)")
    else:
        click.echo("\nchecks: FAILED")
        for failure in figures["failures"]:
            click.echo(f"  - {failure}")
