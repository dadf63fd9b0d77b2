"""The bench itself works: a tiny pairs / idle / catchup run against a node of its own passes
its correctness checks and writes every figure under its fixed key. No timing is asserted:
speed is measured by `scripts/bench`, never by the test suite."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--workers", "2", "--pairs", "3", "--rate", "60", "--duration", "1",
        "--sessions", "40", "--conversations", "4", "--missed", "3", "--backlog", "300"]


@pytest.mark.slow
def test_a_tiny_bench_run_checks_what_it_measured_and_reports_it(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "chatnode.bench", "pairs", "idle", "catchup", "transport", *TINY,
         "--json", str(report)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "checks: passed" in run.stdout
    figures = json.loads(report.read_text())
    assert figures["passed"] is True and figures["failures"] == []
    pairs = figures["pairs"]
    assert pairs["sent"] == pairs["delivered"] > 0
    assert (pairs["lost"], pairs["duplicated"]) == (0, 0)
    assert set(pairs["latency_ms"]) == {"p50", "p99", "max"}
    assert pairs["server_cpu_us_per_delivered"] is not None
    assert 0 < pairs["machine_cores_busy"] <= os.cpu_count()  # type: ignore[operator]
    assert figures["idle"]["opened"] == 40
    assert figures["idle"]["rss_per_session_kib"] is not None
    assert figures["catchup"]["backlog_messages"] == 300
    assert figures["node"]["start_s"] is not None
    transport = figures["transport"]
    assert transport["round_trips_per_s"] > 0 and transport["out_frames"] > 0
    assert transport["connects"] == 40
    assert None not in (transport["server_cpu_us_per_round_trip"],
                        transport["server_cpu_us_per_out_frame"],
                        transport["server_cpu_us_per_connect"])


@pytest.mark.slow
def test_a_tiny_search_bench_finds_what_it_planted_and_reports_it(tmp_path: Path) -> None:
    """The search scenario's own checks: needles found by their members only, hits newest
    first and only from the searcher's conversations."""
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "chatnode.bench", "search", "--messages", "2000", "--queries",
         "30", "--search-users", "6", "--json", str(report)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(report.read_text())
    assert figures["passed"] is True and figures["failures"] == []
    search = figures["search"]
    assert search["messages"] == 2000 and search["queries"] == 30
    assert set(search["latency_ms"]) == {"p50", "p99", "max"}
    assert 0 < search["index_share"] < 1
    assert search["hits_per_query"] > 0
