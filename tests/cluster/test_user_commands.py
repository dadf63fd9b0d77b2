"""The admin's user commands on either store, through the real `chatnode` command and
`--config`: the same behaviour on SQLite and on a fresh, empty PostgreSQL database before any
node has run."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatnode import auth

from .cli import refused_in_one_line, run, write_config


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A config file naming an empty store of the test's own."""
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return str(write_config(tmp_path / "c.toml", url, data_dir=tmp_path / "data"))


def listed(stdout: str) -> dict[str, str]:
    """`user list` output as {username: its whole line}."""
    return {line.split()[0]: line for line in stdout.splitlines() if line.strip()}


def test_user_add_list_disable_enable_and_password_on_an_empty_store(config: str) -> None:
    added = run("user", "add", "alice", "--password", "alicepass1", "--config", config)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added alice (u_")
    piped = run("user", "add", "Bob", "--password-stdin", "--display-name", "Bob B",
                "--config", config, stdin="bobpass12\n")
    assert piped.returncode == 0, piped.stderr

    users = run("user", "list", "--config", config)
    assert users.returncode == 0, users.stderr
    lines = listed(users.stdout)
    assert list(lines) == ["alice", "bob"]
    assert " active " in lines["alice"] and "last seen never" in lines["alice"]
    assert lines["bob"].rstrip().endswith("Bob B")

    disabled = run("user", "disable", "BOB", "--config", config)
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == "disabled BOB"
    lines = listed(run("user", "list", "--config", config).stdout)
    assert " disabled " in lines["bob"] and " active " in lines["alice"]

    enabled = run("user", "enable", "bob", "--config", config)
    assert (enabled.returncode, enabled.stdout.strip()) == (0, "enabled bob"), enabled.stderr
    reset = run("user", "password", "alice", "--password-stdin", "--config", config,
                stdin="alice's new pw\n")
    assert reset.stdout.strip() == "new password for alice; logged out 0 devices", reset.stderr
    lines = listed(run("user", "list", "--config", config).stdout)
    assert " active " in lines["bob"] and " active " in lines["alice"]


def test_a_taken_name_and_an_unknown_user_are_refused_in_one_line(config: str) -> None:
    assert run("user", "add", "carol", "--password", "carolpass1",
               "--config", config).returncode == 0
    taken = refused_in_one_line(run("user", "add", "CAROL", "--password", "carolpass1",
                                    "--config", config))
    assert "username 'CAROL' is taken" in taken
    for command in (["disable"], ["enable"], ["password", "--password", "carolpass2"]):
        missing = refused_in_one_line(run("user", command[0], "nobody", *command[1:],
                                          "--config", config))
        assert "no user named 'nobody'" in missing
    assert list(listed(run("user", "list", "--config", config).stdout)) == ["carol"]


def test_the_store_url_from_the_environment_keeps_the_data_directory_empty(
        pg_url: str, tmp_path: Path) -> None:
    env = {"CHATNODE_STORE_URL": pg_url, "CHATNODE_DATA_DIR": str(tmp_path / "data")}
    assert run("user", "add", "gus", "--password", "guspass12", env=env).returncode == 0
    assert "gus" in listed(run("user", "list", env=env).stdout)
    assert not (tmp_path / "data").exists()


def test_passwords_are_stored_on_postgresql_as_the_single_node_stores_them(pg_url: str) -> None:
    from chatnode.store import postgres

    added = run("user", "add", "dan", "--password", "danpass123",
                env={"CHATNODE_STORE_URL": pg_url})
    assert added.returncode == 0, added.stderr
    conn = postgres.connect(pg_url)
    try:
        (dan,) = postgres.list_users(conn)
    finally:
        conn.close()
    assert dan.password_hash.startswith("$argon2id$")
    assert auth.verify_password(dan.password_hash, "danpass123")
    assert not auth.verify_password(dan.password_hash, "danpass124")
    assert dan.display_name == "dan" and dan.disabled is False and dan.last_seen is None


def test_admins_are_added_listed_and_made_with_the_role_command(config: str) -> None:
    added = run("user", "add", "root", "--password", "rootpass1", "--admin", "--config", config)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added root (u_") and added.stdout.rstrip().endswith("an admin")
    assert run("user", "add", "erin", "--password", "erinpass1", "--config", config).returncode == 0
    lines = listed(run("user", "list", "--config", config).stdout)
    assert " admin " in lines["root"] and " user " in lines["erin"]

    promoted = run("user", "role", "erin", "admin", "--config", config)
    assert (promoted.returncode, promoted.stdout.strip()) == (0, "erin is now an admin")
    demoted = run("user", "role", "root", "user", "--config", config)
    assert demoted.returncode == 0, demoted.stderr
    lines = listed(run("user", "list", "--config", config).stdout)
    assert " admin " in lines["erin"] and " user " in lines["root"]
    assert "no user named 'nobody'" in refused_in_one_line(
        run("user", "role", "nobody", "admin", "--config", config))


def test_invites_are_made_listed_and_revoked_on_either_store(config: str) -> None:
    created = run("invite", "create", "--uses", "2", "--admin", "--config", config)
    assert created.returncode == 0, created.stderr
    summary, link = created.stdout.splitlines()
    invite_id = summary.split()[3].rstrip(":")
    assert invite_id.startswith("i_") and "#invite=" in link
    listed = run("invite", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith(invite_id) and " active " in line and "2/2 uses left" in line
    assert "makes admins" in line and link.split("#invite=")[1] not in listed.stdout
    revoked = run("invite", "revoke", invite_id, "--config", config)
    assert (revoked.returncode, revoked.stdout.strip()) == (0, f"revoked {invite_id}")
    assert " revoked " in run("invite", "list", "--config", config).stdout
    assert "no invite with id 'i_nope'" in refused_in_one_line(
        run("invite", "revoke", "i_nope", "--config", config))
