"""A real two-node cluster for the tests: two `chatnode serve --config FILE` processes on one
PostgreSQL database and one redis-server, each with its own data directory and port. Clients
are spread over both nodes, as a load balancer without sticky sessions would spread them."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed

from chatnode.client import Session

from ..conftest import Node


@dataclass
class Cluster:
    nodes: list[Node]

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait()


@contextlib.contextmanager
def two_nodes(tmp_path: Path, pg_url: str, bus_url: str, presence_ttl_s: int = 60,
              env: dict[str, str] | None = None) -> Iterator[Cluster]:
    nodes = []
    for name in ("one", "two"):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[store]\nurl = "{pg_url}"\nmedia_dir = "{tmp_path / "media"}"\n'
            f'[bus]\nurl = "{bus_url}"\nprefix = "{tmp_path.name}"\n'
            f"[cluster]\npresence_ttl_s = {presence_ttl_s}\n")
        nodes.append(Node(tmp_path / name, env=env, args=["--config", str(config)]))
    cluster = Cluster(nodes)
    try:
        for node in nodes:
            node.start()
        yield cluster
    finally:
        cluster.stop()


class Watch:
    """Everything a session receives, collected in the background."""

    def __init__(self, session: Session, frames: list[dict[str, Any]]) -> None:
        self.session = session
        self.frames = list(frames)

    async def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                self.frames.append(await self.session.recv(timeout=math.inf))

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == type_]

    def seqs(self, conversation_id: str) -> list[int]:
        return [f["seq"] for f in self.of("message") if f["conversation_id"] == conversation_id]

    async def wait_for(self, predicate: Any, timeout: float = 20) -> None:
        with trio.fail_after(timeout):
            while not predicate(self):
                await trio.sleep(0.02)
