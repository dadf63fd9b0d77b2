"""Two (or more) nodes of one cluster inside the test process, on one shared store and a real
redis-server, for the cluster rules before a node serves on PostgreSQL.

Each node is the real thing minus HTTP: its own engine, hub, presence, timers, chat service and
cluster link (the same `_cluster_link` wiring `serve` uses), with every fact crossing the real
Redis. The one SqliteStore they share stands in for the cluster's PostgreSQL: it is the shared
log, and each node learns of the others' commits only through the bus. A client is a hub
Session whose outbox the test reads, as the WebSocket writer would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from chatnode.config import Bus, Cluster, Config
from chatnode.engine import Engine
from chatnode.hub import Hub, Session
from chatnode.metrics import Metrics
from chatnode.presence import PresenceTracker
from chatnode.protocol import CreateConversationRequest, Send
from chatnode.ratelimit import RateLimiter
from chatnode.server import _cluster_link
from chatnode.service import ChatService
from chatnode.store import SqliteStore
from chatnode.store import sqlite as sql
from chatnode.timers import Timers


class InProcessNode:
    def __init__(self, store: SqliteStore, redis_url: str, prefix: str, ttl: int) -> None:
        self.store = store
        self.engine = Engine(store.load_conversations(), body_chars=10_000,
                             history_on_new_device=50)
        self.hub = Hub()
        self.timers = Timers()
        self.presence = PresenceTracker(
            self.engine, self.hub, self.timers,
            save_last_seen=lambda user_id, ts: store.submit(sql.set_last_seen, user_id, ts))
        self.service = ChatService(store, self.engine, self.hub, Metrics(), self.presence,
                                   RateLimiter(0, 50, name="send"), heartbeat_s=30,
                                   group_members=256)
        config = Config(bus=Bus(url=redis_url, prefix=prefix),
                        cluster=Cluster(presence_ttl_s=ttl))
        link = _cluster_link(config, self.service)
        assert link is not None
        self.link = link
        self.cancel_scope = trio.CancelScope()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        with self.cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.timers.run)
                await nursery.start(self.link.run)
                task_status.started()

    def kill(self) -> None:
        """What kill -9 leaves behind: no goodbye on the bus, the presence hash to expire."""
        self.cancel_scope.cancel()


class Client:
    """One device's session on one node; `frames` is everything the node sent it."""

    def __init__(self, node: InProcessNode, user_id: str) -> None:
        self.node = node
        self.user_id = user_id
        self.session = Session(user_id, f"d_{uuid.uuid4().hex[:8]}", "json", 4096)
        self.frames: list[dict[str, Any]] = []

    async def open(self, nursery: trio.Nursery, sync: dict[str, int] | None = None) -> Client:
        nursery.start_soon(self._drain)
        await self.node.service.open_session(self.session, sync)
        return self

    async def _drain(self) -> None:
        async for item in self.session.outbox_receive:
            data = self.session.encoded(item)
            if data is not None:
                self.frames.append(json.loads(data))

    def close(self) -> None:
        self.node.service.close_session(self.session)
        self.session.outbox_send.close()

    def send(self, conversation_id: str, client_msg_id: str, body: str = "hi") -> None:
        self.session.send_slots.acquire_nowait()
        self.node.service.submit_send(self.user_id, Send(
            conversation_id=conversation_id, client_msg_id=client_msg_id, body=body),
            self.session)

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == type_]

    def seqs(self, conversation_id: str) -> list[int]:
        return [f["seq"] for f in self.of("message") if f["conversation_id"] == conversation_id]

    async def wait_for(self, predicate: Callable[[Client], bool], timeout: float = 10) -> None:
        with trio.fail_after(timeout):
            while not predicate(self):
                await trio.sleep(0.01)


async def add_user(store: SqliteStore, name: str) -> str:
    user = await store.write(sql.insert_user, f"{name}{uuid.uuid4().hex[:8]}", None, "x")
    return str(user.user_id)


async def create(node: InProcessNode, creator: str, others: list[str],
                 kind: str = "group") -> str:
    info, _ = await node.service.create_conversation(creator, CreateConversationRequest(
        kind=kind, members=others, name="g" if kind == "group" else None))
    return info.conversation_id


@asynccontextmanager
async def cluster(tmp_path: Path, redis_url: str, nodes: int = 2, ttl: int = 60
                  ) -> AsyncIterator[tuple[SqliteStore, list[InProcessNode], trio.Nursery]]:
    (tmp_path / "shared").mkdir()
    store = SqliteStore(tmp_path / "shared", "normal")
    store.start()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    try:
        async with trio.open_nursery() as nursery:
            members = [InProcessNode(store, redis_url, prefix, ttl) for _ in range(nodes)]
            for node in members:
                await nursery.start(node.run)
            yield store, members, nursery
            for node in members:
                await node.link.bus.leave()
            nursery.cancel_scope.cancel()
    finally:
        await store.close()
