"""A real PostgreSQL for the cluster tests, started by the tests themselves.

Debian's server binaries (/usr/lib/postgresql/N/bin) make a throwaway cluster in a temporary
directory, listening on a free loopback port with its socket in that directory, so nothing of
the machine's own PostgreSQL is used or touched. PostgreSQL refuses to run as root: as root the
server runs as the `postgres` user the Debian package creates. Each test gets a database of its
own. The tests are skipped, saying why, where PostgreSQL or psycopg is not installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"
# Durability is not what these tests are about: skip the fsyncs, which are most of the time
# initdb and every commit take on a shared machine.
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def _server_bin() -> Path | None:
    """The newest installed server's bin directory."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")
             if (Path(p) / "initdb").exists() and (Path(p) / "pg_ctl").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    bin: Path
    port: int
    run_as: list[str]  # the prefix that runs a server program as a user PostgreSQL accepts

    def tool(self, name: str, *args: str) -> str:
        """Run a client program (createdb, pg_dump, ...) against this server; its stdout."""
        result = subprocess.run(
            [str(self.bin / name), "-h", "127.0.0.1", "-p", str(self.port), "-U", SERVER_USER,
             *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{name} failed: {result.stderr}"
        return result.stdout

    def url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"


def _server_command(bin_dir: Path, run_as: list[str], *args: str) -> None:
    result = subprocess.run([*run_as, str(bin_dir / args[0]), *args[1:]], capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr}"
                           f"{result.stdout}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")
    bin_dir = _server_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql;"
                    " scripts/test installs it)")
    run_as: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        try:
            import pwd

            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root and there is no {SERVER_USER!r} user to run"
                        " PostgreSQL as (the Debian package creates it)")
        run_as = [runuser, "-u", SERVER_USER, "--"]
    # Not under pytest's basetemp: that is private to the user running pytest (0700), and the
    # server, as another user, must reach its own directory.
    root = Path(tempfile.mkdtemp(prefix="chatnode-pg-"))
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", _free_port()
    try:
        _server_command(bin_dir, run_as, "initdb", "-D", str(data), "-U", SERVER_USER,
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        _server_command(bin_dir, run_as, "pg_ctl", "-D", str(data), "-l", str(root / "log"),
                        "-w", "-t", "60", "-o",
                        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} {FAST}", "start")
    except RuntimeError:
        log = root / "log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL did not start; its log:\n{detail}") from None
    try:
        yield Postgres(bin_dir, port, run_as)
    finally:
        _server_command(bin_dir, run_as, "pg_ctl", "-D", str(data), "-m", "immediate", "-w",
                        "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    """An empty database of the test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.tool("createdb", name)
    yield postgres.url(name)
    postgres.tool("dropdb", "--force", name)


class Redis:
    """A throwaway redis-server on a free loopback port, with no persistence: the bus keeps
    nothing that matters, and a restart must come back empty, as a real outage might."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile", str(self.root / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("the test redis-server did not start")

    def stop(self) -> None:
        """kill -9: an outage, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> Redis:
        self.stop()
        return self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """One redis-server for the session; tests keep apart with a [bus] prefix of their own."""
    pytest.importorskip("coredis", reason="coredis is not installed: pip install -e '.[cluster]'")
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server;"
                    " scripts/test installs it)")
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    """A redis-server of the test's own, for tests that kill and restart it."""
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed")
    server = Redis(tmp_path).start()
    yield server
    server.stop()
