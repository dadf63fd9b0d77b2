"""The node under test: a `chatnode serve` of the bench's own, or one already running, and what
/proc says about it (CPU time, resident memory)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A load test is a trusted bot: the per-user send and per-address login limits would measure
# themselves, not the node (PROTOCOL.md: send_per_second = 0 is for load tests). Everything
# else, durable commits first of all, stays at its default.
BENCH_ENV = {"CHATNODE_REGISTRATION": "open", "CHATNODE_LIMITS_SEND_PER_SECOND": "0",
             "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "0", "CHATNODE_LOG_LEVEL": "warning"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def machine_busy_s() -> float:
    """CPU seconds this machine has spent busy since boot, all cores and processes together
    (the node, the load, PostgreSQL, Redis, anything else): /proc/stat less idle and iowait."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class NodeUnderTest:
    def __init__(self, url: str, pid: int | None, process: subprocess.Popen[str] | None = None,
                 data_dir: tempfile.TemporaryDirectory[str] | None = None,
                 started_in_s: float | None = None) -> None:
        self.url = url
        self.pid = pid
        self.process = process
        self.data_dir = data_dir
        self.started_in_s = started_in_s

    @classmethod
    def start(cls, extra_env: dict[str, str] | None = None) -> NodeUnderTest:
        data_dir = tempfile.TemporaryDirectory(prefix="chatnode-bench-")
        return cls._launch([sys.executable, "-m", "chatnode", "serve", "--data-dir",
                            data_dir.name, "--port", "0"],
                           {**BENCH_ENV, **(extra_env or {})}, data_dir)

    @classmethod
    def start_echo(cls) -> NodeUnderTest:
        """The bare transport (echo.py) instead of a node."""
        return cls._launch([sys.executable, "-m", "chatnode.bench.echo"], {}, None)

    @classmethod
    def _launch(cls, command: list[str], env: dict[str, str],
                data_dir: tempfile.TemporaryDirectory[str] | None) -> NodeUnderTest:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, **env})
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            process.kill()
            raise RuntimeError(f"{command[2]} did not start: {line!r}")
        started_in_s = time.perf_counter() - started
        url = line.split("listening on ")[1].split()[0]
        return cls(url, process.pid, process, data_dir, started_in_s)

    @classmethod
    def attach(cls, url: str, pid: int | None) -> NodeUnderTest:
        return cls(url.rstrip("/"), pid)

    def cpu_s(self) -> float | None:
        """User + system CPU time of the node so far (its threads included)."""
        if self.pid is None:
            return None
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def rss_bytes(self) -> int | None:
        if self.pid is None:
            return None
        resident = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return resident * PAGE_SIZE

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.data_dir is not None:
            self.data_dir.cleanup()
