"""The bench's cluster run works: two nodes of its own on a real PostgreSQL and Redis, each
pair split across them, checked like every run (nothing lost, nothing twice, no gaps, markers
right). No timing is asserted: the figures are scripts/bench's business."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..redis_server import Redis


@pytest.mark.slow
def test_a_tiny_cluster_bench_run_crosses_nodes_and_checks_what_it_measured(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "chatnode.bench", "cluster", "--store-url", pg_url,
         "--bus-url", redis_server.url, "--workers", "2", "--pairs", "3", "--duration", "1",
         "--cluster-rate", "60", "--rate", "60", "--max-p99-ms", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cluster: cross-node end-to-end p99 (ms)" in run.stdout
    figures = json.loads(report.read_text())
    assert figures["passed"] is True and figures["failures"] == []
    crossing = figures["cluster"]["pairs"]
    assert crossing["sent"] == crossing["delivered"] > 0
    assert (crossing["lost"], crossing["duplicated"]) == (0, 0)
    assert figures["cluster"]["nodes"] == 2
    assert len(figures["cluster"]["max"]["steps"]) == 1


@pytest.mark.slow
def test_a_tiny_search_bench_on_postgresql_finds_what_it_planted(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    """With CHATNODE_STORE_URL (and the bus a PostgreSQL node needs) the bench's node runs on
    PostgreSQL and the search scenario plants its messages there (pg_ops), then checks every
    hit as on SQLite."""
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "chatnode.bench", "search", "--messages", "2000", "--queries",
         "30", "--search-users", "6", "--json", str(report)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "CHATNODE_STORE_URL": pg_url, "CHATNODE_BUS_URL": redis_server.url})
    assert run.returncode == 0, run.stdout + run.stderr
    search = json.loads(report.read_text())["search"]
    assert search["messages"] == 2000 and search["hits_per_query"] > 0
    assert 0 < search["index_share"] < 1
