"""A `chatnode serve` the fault scripts own: started on a data directory, killed, restarted on
the same port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ..store.sqlite import DB_FILE

# Load from a script is a trusted bot: the per-user send and per-address login limits would
# measure themselves, not the node.
SCRIPT_ENV = {"CHATNODE_REGISTRATION": "open", "CHATNODE_LIMITS_SEND_PER_SECOND": "0",
              "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "0", "CHATNODE_LOG_LEVEL": "warning"}


class NodeProcess:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, **SCRIPT_ENV, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> NodeProcess:
        """Start, on the port of the previous start if there was one."""
        port = self.url.rsplit(":", 1)[1] if self.url else "0"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatnode", "serve", "--data-dir", str(self.data_dir),
             "--port", port], stdout=subprocess.PIPE, text=True, env=self.env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"the node did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush, close or say goodbye."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM: the graceful shutdown; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
