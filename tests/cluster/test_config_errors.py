"""What the commands say when the cluster settings are wrong, the store cannot be reached, or
they do not apply to PostgreSQL: one line, a non-zero exit, no traceback, and no node
started."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli import refused_in_one_line, run, write_config

# Nothing listens here; serve must stop before it would ever connect.
NOWHERE_PG = "postgresql://chat:s3cret@127.0.0.1:9/chat"
NOWHERE_REDIS = "redis://127.0.0.1:9/0"


def test_a_store_url_of_another_kind_stops_serve_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "mysql://chat:s3cret@db/chat",
                          data_dir=tmp_path / "data")
    line = refused_in_one_line(run("serve", "--config", str(config)))
    assert "[store] url must be a postgresql:// or postgres:// URL" in line
    assert "s3cret" not in line
    assert not (tmp_path / "data").exists()


def test_a_bus_url_of_another_kind_is_refused_from_the_environment(tmp_path: Path) -> None:
    line = refused_in_one_line(run("user", "list", "--data-dir", str(tmp_path / "data"),
                                   env={"CHATNODE_BUS_URL": "amqp://queue"}))
    assert "[bus] url must be a redis:// or rediss:// URL" in line


def test_a_postgresql_store_without_a_bus_stops_serve_in_one_line(tmp_path: Path) -> None:
    result = run("serve", "--port", "0", env={"CHATNODE_STORE_URL": NOWHERE_PG}, cwd=tmp_path)
    line = refused_in_one_line(result)
    assert "needs a bus" in line and "[bus] url" in line and "s3cret" not in line
    assert list(tmp_path.iterdir()) == []


def test_serve_on_an_unreachable_postgresql_store_stops_in_one_line_without_the_password(
        tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")
    config = write_config(tmp_path / "c.toml", NOWHERE_PG, NOWHERE_REDIS, tmp_path / "data")
    result = run("serve", "--config", str(config), "--port", "0")
    line = refused_in_one_line(result)
    assert "cannot connect to the PostgreSQL store at 127.0.0.1:9/chat" in line
    assert "s3cret" not in line
    assert "listening" not in result.stdout


def test_a_bus_without_a_postgresql_store_stops_serve(tmp_path: Path) -> None:
    line = refused_in_one_line(run("serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                                   env={"CHATNODE_BUS_URL": NOWHERE_REDIS}))
    assert "needs a PostgreSQL store" in line
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command", [["backup", "copy.db"], ["restore", "copy.db"]])
def test_backup_and_restore_refuse_a_postgresql_store_and_name_pg_dump(
        tmp_path: Path, command: list[str]) -> None:
    line = refused_in_one_line(run(*command, "--data-dir", str(tmp_path / "data"),
                                   env={"CHATNODE_STORE_URL": NOWHERE_PG}, cwd=tmp_path))
    assert "works on a SQLite store only" in line and "pg_dump" in line


def test_an_unreachable_postgresql_store_is_one_line_without_the_password(
        tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")
    line = refused_in_one_line(run("user", "list", env={"CHATNODE_STORE_URL": NOWHERE_PG},
                                   cwd=tmp_path))
    assert "cannot connect to the PostgreSQL store at 127.0.0.1:9/chat" in line
    assert "s3cret" not in line
