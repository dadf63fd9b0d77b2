"""A real PostgreSQL for the tests that need one (tests/cluster, and the PostgreSQL half of
tests/unit/test_store.py), started by the tests themselves; tests/conftest.py loads these
fixtures for the whole suite, so every test shares one server.

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
    root: Path

    def start(self) -> None:
        _server_command(self.bin, self.run_as, "pg_ctl", "-D", str(self.root / "data"), "-l",
                        str(self.root / "log"), "-w", "-t", "60", "-o",
                        f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} {FAST}",
                        "start")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` ends every session (clients see their connection drop)."""
        _server_command(self.bin, self.run_as, "pg_ctl", "-D", str(self.root / "data"), "-m",
                        mode, "-w", "stop")

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
    data = root / "data"
    server = Postgres(bin_dir, _free_port(), run_as, root)
    try:
        _server_command(bin_dir, run_as, "initdb", "-D", str(data), "-U", SERVER_USER,
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        server.start()
    except RuntimeError:
        log = root / "log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL did not start; its log:\n{detail}") from None
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _admin(postgres: Postgres, statement: str) -> None:
    """One statement on the server's own `postgres` database: a connection, not a createdb
    process, since every test that uses PostgreSQL pays for this twice."""
    import psycopg

    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


def create_database(postgres: Postgres) -> str:
    """A new, empty database on the server; its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(postgres, f"CREATE DATABASE {name}")
    return postgres.url(name)


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    """An empty database of the test's own, dropped afterwards."""
    url = create_database(postgres)
    yield url
    _admin(postgres, f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")
