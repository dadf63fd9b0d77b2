"""The admin CLI, the data-directory lock, shutdown and configuration precedence."""

import os
import subprocess
import sys
import time
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed

from chatnode.client import ApiError, RestClient, connect

from ..conftest import Node, new_user


def chatnode(*args: str, stdin: str | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chatnode", *args], input=stdin, text=True,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


async def test_user_commands_work_with_and_without_a_running_node(own_node: Node) -> None:
    data = str(own_node.data_dir)
    added = chatnode("user", "add", "Alice", "--password", "alicepass1", "--data-dir", data)
    assert added.returncode == 0 and added.stdout.startswith("added alice (u_")
    node = own_node.start()
    piped = chatnode("user", "add", "bob", "--password-stdin", "--display-name", "Bob B",
                     "--data-dir", data, stdin="bobpass12\n")
    assert piped.returncode == 0, piped.stderr
    taken = chatnode("user", "add", "alice", "--password", "alicepass1", "--data-dir", data)
    assert taken.returncode != 0 and "taken" in taken.stderr
    short = chatnode("user", "add", "carol", "--password", "short", "--data-dir", data)
    assert short.returncode != 0 and "password" in short.stderr

    listing = chatnode("user", "list", "--data-dir", data).stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["alice", "bob"]
    assert "Bob B" in listing[1] and "active" in listing[1]

    async with RestClient(node.url) as alice, RestClient(node.url) as bob:
        await alice.login("alice", "alicepass1")
        await bob.login("bob", "bobpass12")
        assert (await bob.request("GET", "/api/v1/me"))["display_name"] == "Bob B"
        assert chatnode("user", "disable", "bob", "--data-dir", data).returncode == 0
        try:
            await RestClient(node.url).login("bob", "bobpass12")
            raise AssertionError("a disabled user logged in")
        except ApiError as exc:
            assert exc.code == "forbidden"
        try:
            await bob.request("GET", "/api/v1/me")
            raise AssertionError("a disabled user's token still works")
        except ApiError as exc:
            assert exc.code == "unauthenticated"
    assert "disabled" in chatnode("user", "list", "--data-dir", data).stdout.splitlines()[1]
    missing = chatnode("user", "disable", "nobody", "--data-dir", data)
    assert missing.returncode != 0 and "no user" in missing.stderr


async def test_a_second_node_on_the_same_data_refuses_to_start(own_node: Node) -> None:
    own_node.start()
    second = chatnode("serve", "--data-dir", str(own_node.data_dir), "--port", "0")
    assert second.returncode != 0
    assert "in use" in second.stderr and str(own_node.process.pid) in second.stderr


async def test_a_lock_left_by_kill_9_does_not_block_a_restart(own_node: Node) -> None:
    node = own_node.start()
    user = await new_user(node)
    node.kill()
    assert (own_node.data_dir / "chatnode.lock").exists()
    node.restart()
    assert (await user.rest.request("GET", "/api/v1/me"))["user_id"] == user.user_id
    await user.rest.aclose()


async def test_sigterm_closes_sessions_with_1001_and_exits_0(own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    codes = []
    async with connect(node.url, alice.token) as (a, _), connect(node.url, bob.token) as (b, _):
        await a.send_text(cid, "before shutdown")
        sent, _ = await a.until_type("sent")
        started = time.monotonic()
        assert own_node.process is not None
        own_node.process.terminate()
        for session in (a, b):
            try:
                while True:
                    await session.recv(timeout=10)
            except ConnectionClosed as exc:
                codes.append(exc.reason.code)
    exit_code = await trio.to_thread.run_sync(own_node.process.wait, 10)
    assert codes == [1001, 1001]
    assert exit_code == 0 and time.monotonic() - started < 5
    node.restart()
    history = await bob.rest.history(cid)
    assert [(m["seq"], m["body"]) for m in history["messages"]] == [(sent["seq"],
                                                                     "before shutdown")]
    await alice.rest.aclose()
    await bob.rest.aclose()


def test_help_and_module_entry_point() -> None:
    result = chatnode("--help")
    assert result.returncode == 0
    for command in ("serve", "user"):
        assert command in result.stdout


async def test_config_file_then_environment_then_flags(own_node: Node, tmp_path: Path) -> None:
    config = tmp_path / "chatnode.toml"
    config.write_text('registration = "open"\nheartbeat_s = 7\n[limits]\nbody_chars = 5\n')
    env = {k: v for k, v in own_node.env.items() if not k.startswith("CHATNODE_")}

    async def observe(extra_env: dict[str, str], flags: list[str]) -> tuple[int, int]:
        """(status of a registration, heartbeat_s in welcome) for a node started this way."""
        process = subprocess.Popen(
            [sys.executable, "-m", "chatnode", "serve", "--data-dir",
             str(tmp_path / f"d{len(flags)}{len(extra_env)}"), "--port", "0", *flags],
            stdout=subprocess.PIPE, text=True, env={**env, **extra_env})
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split("listening on ")[1].split()[0]
            assert not url.endswith(":1")  # the --port 0 flag wins over CHATNODE_PORT
            async with RestClient(url) as rest:
                status, body = await rest.call(
                    "POST", "/api/v1/register",
                    {"username": "someone", "password": "password123"})
                if status != 201:
                    return status, 0
                async with connect(url, body["token"]) as (_, frames):
                    return status, frames[0]["heartbeat_s"]
        finally:
            process.terminate()
            process.wait(10)

    assert await observe({}, []) == (403, 0)  # defaults: closed
    assert await observe({}, ["--config", str(config)]) == (201, 7)  # the file
    assert await observe({"CHATNODE_REGISTRATION": "closed"},
                         ["--config", str(config)]) == (403, 0)  # env over the file
    assert await observe({"CHATNODE_PORT": "1", "CHATNODE_HEARTBEAT_S": "9"},
                         ["--config", str(config)]) == (201, 9)
    bad = chatnode("serve", "--config", str(tmp_path / "missing.toml"))
    assert bad.returncode != 0 and "cannot read config file" in bad.stderr
    config.write_text("no_such_setting = 1\n")
    bad = chatnode("serve", "--config", str(config))
    assert bad.returncode != 0 and "no_such_setting" in bad.stderr
