"""Shared fixtures: a real `chatnode serve` process on a free loopback port, and users on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from chatnode.client import RestClient, ws_url

# A real PostgreSQL (the `postgres` and `pg_url` fixtures) and a real redis-server
# (`redis_server`, `own_redis`), for any test that asks for one.
pytest_plugins = ("tests.pg_server", "tests.redis_server")

PASSWORD = "correct horse battery"


class Node:
    """A real node process. `start` waits for its "listening on" line and reads the URL."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 args: list[str] | None = None, log_file: Path | None = None) -> None:
        self.data_dir = data_dir
        self.args = args or []
        # Where the node's stderr (its log) goes; by default it is the test run's own.
        self.log_file = log_file
        # The send and login rate limits are off for the tests that push bursts (every test
        # logs in from 127.0.0.1); test_rate_limit turns them back on.
        self.env = {**os.environ, "CHATNODE_REGISTRATION": "open", "CHATNODE_LOG_LEVEL": "warning",
                    "CHATNODE_LIMITS_SEND_PER_SECOND": "0",
                    "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "0", **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, port: int = 0) -> Node:
        stderr = None if self.log_file is None else open(self.log_file, "a")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatnode", "serve", "--data-dir", str(self.data_dir),
                 "--port", str(port), *self.args],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env=self.env)
        finally:
            if stderr is not None:
                stderr.close()  # the child has its own copy
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"node did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def admin_args(self) -> list[str]:
        """What the admin CLI needs to reach this node's store."""
        return ["--data-dir", str(self.data_dir)]

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def stop(self, timeout: float = 10) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def restart(self) -> Node:
        return self.start(self.port)


@pytest.fixture(scope="session")
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Node]:
    """One node shared by the tests that only need fresh users on it; with
    CHATNODE_TEST_CLUSTER=1, a two-node cluster behind a round-robin proxy instead (see
    tests/cluster_entry.py)."""
    if os.environ.get("CHATNODE_TEST_CLUSTER") == "1":
        from .cluster_entry import cluster_entry

        with cluster_entry(tmp_path_factory.mktemp("cluster"),
                           request.getfixturevalue("postgres"),
                           request.getfixturevalue("redis_server")) as entry:
            yield entry  # type: ignore[misc]  # what the tests use of a Node: url, port, stop
        return
    n = Node(tmp_path_factory.mktemp("node")).start()
    yield n
    n.stop()


@pytest.fixture
def own_node(tmp_path: Path) -> Iterator[Node]:
    """A node of the test's own, for tests that restart, kill or reconfigure it."""
    n = Node(tmp_path / "data")
    yield n
    if n.process is not None and n.process.poll() is None:
        n.process.kill()
        n.process.wait()


@dataclass
class User:
    username: str
    user_id: str
    token: str
    device_id: str
    rest: RestClient


async def new_user(node: Node, prefix: str = "u") -> User:
    username = f"{prefix}{uuid.uuid4().hex[:10]}"
    rest = RestClient(node.url)
    auth = await rest.register(username, PASSWORD)
    return User(username, auth["user_id"], auth["token"], auth["device_id"], rest)


async def new_device(node: Node, user: User) -> User:
    """Another login of the same user: a new device with its own token."""
    rest = RestClient(node.url)
    auth = await rest.login(user.username, PASSWORD)
    return User(user.username, auth["user_id"], auth["token"], auth["device_id"], rest)


@pytest.fixture
async def alice(node: Node) -> AsyncIterator[User]:
    user = await new_user(node, "alice")
    yield user
    await user.rest.aclose()


@pytest.fixture
async def bob(node: Node) -> AsyncIterator[User]:
    user = await new_user(node, "bob")
    yield user
    await user.rest.aclose()


async def whole_history(user: User, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of a conversation's log over REST, page by page, ascending."""
    stored: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await user.rest.history(conversation_id, after=after, limit=200)
        stored += page["messages"]
        if not page["has_more"]:
            return stored
        after = page["messages"][-1]["seq"]


def of_type(frames: list[dict], type_: str) -> list[dict]:
    """The frames of one type, in order."""
    return [f for f in frames if f["type"] == type_]


async def hello_refused(url: str, token: str) -> tuple[dict[str, Any], int]:
    """Say hello with `token`; return the error frame and the close code that follow."""
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(url)) as ws:
            await ws.send_message(json.dumps({"type": "hello", "token": token}))
            frame = json.loads(await ws.get_message())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    return frame, closed.value.reason.code
