"""The node as an admin runs it: the user commands, the data-directory lock, restarts after a
crash, shutdown on a signal, and where the configuration comes from."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, hello_refused, new_user


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any CHATNODE_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATNODE_")}
    return {**env, "CHATNODE_LOG_LEVEL": "warning", **(extra or {})}


async def chatnode(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m chatnode ARGS` to completion without blocking the event loop."""
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "chatnode", *args], check=False, capture_stdout=True,
            capture_stderr=True, stdin=None if stdin is None else stdin.encode(),
            env=env or clean_env(), cwd=cwd)


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


async def add_user(data_dir: Path, name: str, password: str = PASSWORD,
                   *extra: str) -> subprocess.CompletedProcess[bytes]:
    result = await chatnode("user", "add", name, "--password", password,
                            "--data-dir", str(data_dir), *extra)
    assert result.returncode == 0, err(result)
    return result


def listed(result: subprocess.CompletedProcess[bytes]) -> dict[str, str]:
    """`user list` output as {username: its whole line}."""
    return {line.split()[0]: line for line in out(result).splitlines() if line.strip()}


async def login_status(url: str, username: str, password: str = PASSWORD
                       ) -> tuple[int, Any]:
    async with RestClient(url) as rest:
        return await rest.call("POST", "/api/v1/login",
                               {"username": username, "password": password})


def closed_node(own_node: Node) -> Node:
    """The own node, with registration left at its default (closed), as an admin runs it."""
    own_node.env.pop("CHATNODE_REGISTRATION", None)
    return own_node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serving(args: list[str], env: dict[str, str], cwd: Path) -> AsyncIterator[str]:
    """`chatnode serve ARGS` started exactly so (no flags added); yields its URL."""
    process = subprocess.Popen([sys.executable, "-m", "chatnode", "serve", *args],
                               stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        assert process.stdout is not None
        line = await trio.to_thread.run_sync(process.stdout.readline)
        assert "listening on" in line, line
        yield line.split("listening on ")[1].split()[0]
    finally:
        process.terminate()
        await trio.to_thread.run_sync(process.wait, 10)


async def registration_status(url: str) -> int:
    async with RestClient(url) as rest:
        status, _ = await rest.call("POST", "/api/v1/register",
                                    {"username": "probe", "password": PASSWORD})
    return status


# --- user add / list / disable ----------------------------------------------------------------

async def test_users_added_with_the_node_stopped_can_log_in(own_node: Node) -> None:
    data = own_node.data_dir
    added = await add_user(data, "Alice")
    assert out(added).startswith("added alice (u_")
    piped = await chatnode("user", "add", "bob", "--password-stdin", "--display-name", "Bob B",
                           "--data-dir", str(data), stdin="bob's secret pw\n")
    assert piped.returncode == 0, err(piped)
    node = closed_node(own_node).start()
    async with RestClient(node.url) as alice, RestClient(node.url) as bob:
        await alice.login("alice", PASSWORD)
        await bob.login("bob", "bob's secret pw")
        assert await alice.request("GET", "/api/v1/me") == {
            "user_id": out(added).split("(")[1].rstrip(")\n"), "username": "alice",
            "display_name": "Alice", "push_preview": "full", "role": "user"}
        assert (await bob.request("GET", "/api/v1/me"))["display_name"] == "Bob B"
        # the two can talk at once: accounts made by the CLI are ordinary accounts
        bob_id = (await alice.user("bob"))["user_id"]
        cid = (await alice.direct(bob_id))["conversation_id"]
        await alice.send(cid, "made by the admin")
        assert [m["body"] for m in (await bob.history(cid))["messages"]] == [
            "made by the admin"]


async def test_users_added_while_the_node_runs_can_log_in_at_once(own_node: Node) -> None:
    node = closed_node(own_node).start()
    assert (await login_status(node.url, "carol"))[0] == 401
    await add_user(node.data_dir, "carol", PASSWORD, "--display-name", "Carol C")
    piped = await chatnode("user", "add", "dave", "--password-stdin",
                           "--data-dir", str(node.data_dir), stdin="dave's password\n")
    assert piped.returncode == 0, err(piped)
    status, auth = await login_status(node.url, "carol")
    assert status == 200, auth
    async with RestClient(node.url, auth["token"]) as rest:
        assert (await rest.request("GET", "/api/v1/me"))["display_name"] == "Carol C"
        async with connect(node.url, auth["token"]) as (_, frames):
            assert frames[0]["user_id"] == auth["user_id"]
    status, _ = await login_status(node.url, "dave", "dave's password")
    assert status == 200


async def test_password_stdin_takes_the_first_line_only(own_node: Node) -> None:
    data = own_node.data_dir
    result = await chatnode("user", "add", "erin", "--password-stdin", "--data-dir",
                            str(data), stdin="first line pw\r\nsecond line\n")
    assert result.returncode == 0, err(result)
    node = own_node.start()
    assert (await login_status(node.url, "erin", "first line pw"))[0] == 200
    assert (await login_status(node.url, "erin", "first line pw\r"))[0] == 401


async def test_user_add_refuses_a_taken_name_and_a_bad_account(own_node: Node) -> None:
    data = str(own_node.data_dir)
    await add_user(own_node.data_dir, "frank")
    taken = await chatnode("user", "add", "FRANK", "--password", PASSWORD, "--data-dir", data)
    assert taken.returncode != 0 and "taken" in err(taken)
    short = await chatnode("user", "add", "gina", "--password", "short", "--data-dir", data)
    assert short.returncode != 0 and "password" in err(short)
    spaced = await chatnode("user", "add", "has space", "--password", PASSWORD,
                            "--data-dir", data)
    assert spaced.returncode != 0 and "username" in err(spaced)
    users = listed(await chatnode("user", "list", "--data-dir", data))
    assert list(users) == ["frank"]


async def test_user_list_shows_every_account_and_its_state(own_node: Node) -> None:
    data = own_node.data_dir
    await add_user(data, "zed", PASSWORD, "--display-name", "Zed Z")
    await add_user(data, "amy")
    result = await chatnode("user", "list", "--data-dir", str(data))
    assert result.returncode == 0
    users = listed(result)
    assert list(users) == ["amy", "zed"]  # by username
    assert all("active" in line and "never" in line for line in users.values())
    assert users["zed"].rstrip().endswith("Zed Z")
    assert "u_" in users["amy"]


async def test_disabling_with_the_node_stopped_refuses_login_and_old_tokens(
        own_node: Node) -> None:
    node = closed_node(own_node)
    await add_user(node.data_dir, "hal")
    await add_user(node.data_dir, "ivy")
    node.start()
    status, auth = await login_status(node.url, "hal")
    assert status == 200
    assert node.stop() == 0
    disabled = await chatnode("user", "disable", "hal", "--data-dir", str(node.data_dir))
    assert disabled.returncode == 0 and "disabled hal" in out(disabled)
    node.restart()
    status, body = await login_status(node.url, "hal")
    assert status == 403 and body["error"]["code"] == "forbidden"
    frame, code = await hello_refused(node.url, auth["token"])
    assert (frame["type"], frame["code"], code) == ("error", "unauthenticated", 4001)
    async with RestClient(node.url, auth["token"]) as rest:
        status, body = await rest.call("GET", "/api/v1/me")
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    # others are untouched
    assert (await login_status(node.url, "ivy"))[0] == 200
    users = listed(await chatnode("user", "list", "--data-dir", str(node.data_dir)))
    assert "disabled" in users["hal"] and "active" in users["ivy"]


async def test_disabling_while_the_node_runs_refuses_login_and_old_tokens(
        own_node: Node) -> None:
    node = closed_node(own_node).start()
    await add_user(node.data_dir, "jay")
    await add_user(node.data_dir, "kim")
    status, jay = await login_status(node.url, "jay")
    assert status == 200
    status, kim = await login_status(node.url, "kim")
    assert status == 200
    async with connect(node.url, jay["token"]) as (_, frames):  # the token works before
        assert frames[0]["user_id"] == jay["user_id"]
    disabled = await chatnode("user", "disable", "JAY", "--data-dir", str(node.data_dir))
    assert disabled.returncode == 0, err(disabled)
    status, body = await login_status(node.url, "jay")
    assert status == 403 and body["error"]["code"] == "forbidden"
    frame, code = await hello_refused(node.url, jay["token"])
    assert (frame["type"], frame["code"], code) == ("error", "unauthenticated", 4001)
    async with RestClient(node.url, kim["token"]) as rest:
        # a disabled user is no longer found, and cannot be put in a new conversation
        status, body = await rest.call("GET", "/api/v1/users/jay")
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = await rest.call("POST", "/api/v1/conversations",
                                       {"kind": "direct", "members": [jay["user_id"]]})
        assert status == 404 and body["error"]["code"] == "not_found"
        assert (await rest.request("GET", "/api/v1/me"))["username"] == "kim"


async def test_disabling_an_unknown_user_fails(own_node: Node) -> None:
    await add_user(own_node.data_dir, "lou")
    missing = await chatnode("user", "disable", "nobody", "--data-dir", str(own_node.data_dir))
    assert missing.returncode != 0 and "nobody" in err(missing)
    users = listed(await chatnode("user", "list", "--data-dir", str(own_node.data_dir)))
    assert "active" in users["lou"]


# --- the data directory -----------------------------------------------------------------------

async def test_a_second_serve_on_a_data_dir_in_use_exits_with_a_clear_message(
        own_node: Node) -> None:
    node = own_node.start()
    user = await new_user(node)
    second = await chatnode("serve", "--data-dir", str(node.data_dir), "--port", "0",
                            env=clean_env({"CHATNODE_REGISTRATION": "open"}))
    assert second.returncode != 0
    assert "in use" in err(second)
    assert str(node.data_dir) in err(second)
    assert node.process is not None and str(node.process.pid) in err(second)
    assert "listening" not in out(second)
    # the first node is unharmed and still owns the directory
    assert (await user.rest.request("GET", "/api/v1/me"))["user_id"] == user.user_id
    assert (node.data_dir / "chatnode.lock").read_text().strip() == str(node.process.pid)
    await user.rest.aclose()


@pytest.mark.slow
async def test_a_restart_after_kill_9_is_not_blocked_by_the_stale_lock(own_node: Node) -> None:
    node = own_node.start()
    user = await new_user(node)
    other = await new_user(node)
    cid = (await user.rest.direct(other.user_id))["conversation_id"]
    sent = await user.rest.send(cid, "acknowledged before the crash")
    old_pid = node.process.pid if node.process else None
    node.kill()
    assert (node.data_dir / "chatnode.lock").read_text().strip() == str(old_pid)
    node.restart()
    assert node.process is not None and node.process.poll() is None
    assert (node.data_dir / "chatnode.lock").read_text().strip() == str(node.process.pid)
    assert (await user.rest.request("GET", "/api/v1/me"))["user_id"] == user.user_id
    history = (await other.rest.history(cid))["messages"]
    assert [(m["seq"], m["body"]) for m in history] == [
        (sent["seq"], "acknowledged before the crash")]
    await user.rest.aclose()
    await other.rest.aclose()


# --- shutdown ---------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_closes_open_sessions_with_1001_and_exits_0(
        own_node: Node, signum: signal.Signals) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    laptop = RestClient(node.url)
    laptop_auth = await laptop.login(alice.username, PASSWORD)
    codes: list[int] = []
    assert node.process is not None
    async with connect(node.url, alice.token) as (a, _), \
            connect(node.url, laptop_auth["token"]) as (a2, _), \
            connect(node.url, bob.token) as (b, _):
        await a.send_text(cid, "just before the end")
        await a.until_type("sent")
        started = time.monotonic()
        node.process.send_signal(signum)
        for session in (a, a2, b):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await session.recv(timeout=10)
            codes.append(closed.value.reason.code)
    exit_code = await trio.to_thread.run_sync(node.process.wait, 10)
    elapsed = time.monotonic() - started
    assert codes == [1001, 1001, 1001]
    assert exit_code == 0
    assert elapsed < 5, f"shutdown took {elapsed:.1f} s"
    # a clean stop releases the directory: the next start on it works and has the message
    node.restart()
    history = (await bob.rest.history(cid))["messages"]
    assert [m["body"] for m in history] == ["just before the end"]
    for rest in (alice.rest, bob.rest, laptop):
        await rest.aclose()


async def test_a_signal_with_no_sessions_exits_0_at_once(own_node: Node) -> None:
    node = own_node.start()
    started = time.monotonic()
    assert node.stop(timeout=10) == 0
    assert time.monotonic() - started < 5


# --- the command line -------------------------------------------------------------------------

async def test_python_m_chatnode_help_lists_the_commands() -> None:
    result = await chatnode("--help")
    assert result.returncode == 0, err(result)
    assert "Usage:" in out(result)
    for command in ("serve", "user"):
        assert command in out(result)
    user_help = await chatnode("user", "--help")
    assert user_help.returncode == 0
    for command in ("add", "list", "disable"):
        assert command in out(user_help)
    serve_help = await chatnode("serve", "--help")
    assert serve_help.returncode == 0
    for flag in ("--config", "--data-dir", "--host", "--port"):
        assert flag in out(serve_help)


# --- configuration: defaults < file < CHATNODE_* environment < flags --------------------------

async def test_a_config_file_sets_port_and_registration(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "chatnode.toml"
    config.write_text(f'port = {port}\nregistration = "open"\n'
                      f'data_dir = "{tmp_path / "from-file"}"\n')
    async with serving(["--config", str(config)], clean_env(), tmp_path) as url:
        assert url.endswith(f":{port}")
        assert await registration_status(url) == 201
    assert (tmp_path / "from-file" / "chatnode.db").exists()


async def test_without_a_file_registration_is_closed(tmp_path: Path) -> None:
    async with serving(["--port", "0", "--data-dir", str(tmp_path / "d")], clean_env(),
                       tmp_path) as url:
        assert await registration_status(url) == 403


async def test_the_environment_overrides_the_config_file(tmp_path: Path) -> None:
    file_port, env_port = free_port(), free_port()
    config = tmp_path / "chatnode.toml"
    config.write_text(f'port = {file_port}\nregistration = "open"\n'
                      f'data_dir = "{tmp_path / "from-file"}"\n')
    env = clean_env({"CHATNODE_REGISTRATION": "closed", "CHATNODE_PORT": str(env_port),
                     "CHATNODE_DATA_DIR": str(tmp_path / "from-env")})
    async with serving(["--config", str(config)], env, tmp_path) as url:
        assert url.endswith(f":{env_port}")
        assert await registration_status(url) == 403
    assert (tmp_path / "from-env" / "chatnode.db").exists()
    assert not (tmp_path / "from-file").exists()
    # and the other way round: the file closed, the environment opens
    config.write_text('registration = "closed"\n')
    env = clean_env({"CHATNODE_REGISTRATION": "open"})
    async with serving(["--config", str(config), "--port", "0", "--data-dir",
                        str(tmp_path / "d2")], env, tmp_path) as url:
        assert await registration_status(url) == 201


async def test_flags_override_the_environment_and_the_file(tmp_path: Path) -> None:
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    config = tmp_path / "chatnode.toml"
    config.write_text(f'port = {file_port}\nregistration = "open"\n'
                      f'data_dir = "{tmp_path / "from-file"}"\n')
    env = clean_env({"CHATNODE_PORT": str(env_port),
                     "CHATNODE_DATA_DIR": str(tmp_path / "from-env")})
    async with serving(["--config", str(config), "--port", str(flag_port),
                        "--data-dir", str(tmp_path / "from-flag")], env, tmp_path) as url:
        assert url.endswith(f":{flag_port}")
        # registration has no flag: the file's value stands, the environment says nothing
        assert await registration_status(url) == 201
    assert (tmp_path / "from-flag" / "chatnode.db").exists()
    assert not (tmp_path / "from-env").exists() and not (tmp_path / "from-file").exists()


async def test_user_commands_read_the_data_dir_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "chatnode.toml"
    config.write_text(f'data_dir = "{tmp_path / "configured"}"\n')
    added = await chatnode("user", "add", "mia", "--password", PASSWORD, "--config", str(config))
    assert added.returncode == 0, err(added)
    async with serving(["--config", str(config), "--port", "0"], clean_env(), tmp_path) as url:
        assert (await login_status(url, "mia"))[0] == 200


async def test_a_bad_config_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    missing = await chatnode("serve", "--config", str(tmp_path / "missing.toml"))
    assert missing.returncode != 0 and "cannot read config file" in err(missing)
    config = tmp_path / "chatnode.toml"
    config.write_text("no_such_setting = 1\n")
    unknown = await chatnode("serve", "--config", str(config))
    assert unknown.returncode != 0 and "no_such_setting" in err(unknown)
    config.write_text('registration = "sometimes"\n')
    bad_value = await chatnode("serve", "--config", str(config))
    assert bad_value.returncode != 0 and "registration" in err(bad_value)
    bad_env = await chatnode("serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                             env=clean_env({"CHATNODE_REGISTRATION": "sometimes"}))
    assert bad_env.returncode != 0 and "registration" in err(bad_env)
