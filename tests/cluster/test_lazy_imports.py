"""A single node never loads the cluster's libraries: they are an optional extra, and a node
on a Raspberry Pi should not pay their import time and memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLUSTER_MODULES = ("psycopg", "psycopg_pool", "psycopg_binary", "coredis")

PROBE = """
import sys
import chatnode.cli, chatnode.server
from chatnode.cli import main
main(["user", "add", "ann", "--password", "annpass12", "--data-dir", sys.argv[1]],
     standalone_mode=False)
main(["user", "list", "--data-dir", sys.argv[1]], standalone_mode=False)
main(["user", "disable", "ann", "--data-dir", sys.argv[1]], standalone_mode=False)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {names!r})
print("LOADED", loaded)
"""


def test_server_cli_and_sqlite_user_commands_never_import_the_cluster_libraries(
        tmp_path: Path) -> None:
    # Without psycopg installed this would prove nothing.
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")
    probe = PROBE.format(names=set(CLUSTER_MODULES))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATNODE_")}
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "data")], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "added ann" in result.stdout and "disabled ann" in result.stdout
    assert "LOADED []" in result.stdout, result.stdout
