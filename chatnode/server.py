"""The node process: store, engine, hub and HTTP server in one trio nursery, and its shutdown.

On SIGINT or SIGTERM the node closes every session with 1001 (so no new frame is taken),
lets hypercorn finish what is in flight, commits everything already queued, and returns.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import logging
import os
import signal
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.middleware import ProxyFixMiddleware

from .account_watch import watch_account_changes
from .accounts import Accounts
from .admins import Admins
from .config import Config
from .engine import Engine
from .hub import CLOSE_GOING_AWAY, Hub
from .logs import fields
from .media import MediaFiles
from .metrics import Metrics
from .presence import PresenceTracker
from .push.dispatcher import PushDispatcher
from .ratelimit import RateLimiter
from .service import ChatService
from .store import SqliteStore, now_ms
from .store import sqlite as sql
from .store.checkpoint import CHECKPOINT_EVERY_S
from .store.errors import cluster_module
from .store.interface import NodeStore
from .timers import Timers
from .web import hypercorn_fixes, send_batch
from .web.app import build_app

if TYPE_CHECKING:
    from .cluster.link import ClusterLink

log = logging.getLogger("chatnode")

LOCK_FILE = "chatnode.lock"
# Frames above frame_bytes get a `too_large` error and the session goes on; a message this many
# times larger is never held whole: close 1009 and the connection is dropped (web/hypercorn_fixes).
HARD_FRAME_FACTOR = 16


LISTEN_BACKLOG = 4096
MEDIA_SWEEP_EVERY_S = 3600
MEDIA_UNREFERENCED_MAX_AGE_MS = 24 * 3600 * 1000


class DataDirInUse(Exception):
    pass


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Own the data directory for the life of the process. flock is released by the kernel
    when the process dies, so a lock left by `kill -9` never blocks a restart."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise DataDirInUse(
                f"the data directory {data_dir} is in use by a running chatnode (pid {holder});"
                " stop it first or choose another --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def open_store(config: Config, data_dir: Path, metrics: Metrics) -> NodeStore:
    """SQLite in the data directory, or the cluster's PostgreSQL when `[store] url` names one
    (imported only then: a single node never loads psycopg)."""
    if config.store.url is None:
        return SqliteStore(data_dir, config.durability, on_batch=metrics.observe_batch)
    store: NodeStore = cluster_module("pg_store").PostgresStore(
        config.store.url, config.store.pool_size, config.durability,
        on_batch=metrics.observe_batch)
    return store


def open_media(config: Config, data_dir: Path) -> MediaFiles:
    if config.store.media_dir is not None:
        return MediaFiles(data_dir, Path(config.store.media_dir))
    if config.store.url is not None:
        log.warning("uploads are kept in the data directory, which only this node serves: with"
                    " more than one node, set [store] media_dir to a directory they all mount",
                    extra=fields(media_dir=str(data_dir / "media")))
    return MediaFiles(data_dir)


async def sweep_media(store: NodeStore, media: MediaFiles) -> None:
    """Uploads never sent in a message are forgotten after a day, checked every hour."""
    while True:
        for sha256 in await store.write(sql.sweep_unreferenced_media,
                                        now_ms() - MEDIA_UNREFERENCED_MAX_AGE_MS):
            media.delete(sha256)
        await trio.sleep(MEDIA_SWEEP_EVERY_S)


async def checkpoint_wal(store: SqliteStore, metrics: Metrics) -> None:
    """Copy the WAL into the database file every second there was a write (checkpoint.py)."""
    failing = False
    while True:
        await trio.sleep(CHECKPOINT_EVERY_S)
        started = trio.current_time()
        try:
            result = await store.checkpoint()
        except sqlite3.Error as exc:  # e.g. a full disk: the next round tries again
            if not failing:  # once per run of failures, not every second
                log.warning("WAL checkpoint failed", extra=fields(error=str(exc)))
            failing = True
            continue
        if failing:
            log.info("WAL checkpoints work again")
            failing = False
        if result is not None:
            metrics.checkpoints.inc()
            metrics.checkpoint_seconds.observe(trio.current_time() - started)


class NodeHypercornConfig(HypercornConfig):
    """hypercorn's config, with TCP_USER_TIMEOUT on the listeners (accepted sockets inherit it).

    hypercorn writes to a socket inside a shielded cancel scope: a client that stops reading
    blocks that write for as long as its receive window stays full, and no deadline of ours can
    end it. The kernel can: unacknowledged data older than `unread_timeout_s` breaks the
    connection, the write fails, and the session and its task go."""

    unread_timeout_s: float = 60

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
            for sock in sockets.insecure_sockets + sockets.secure_sockets:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                                int(self.unread_timeout_s * 1000))
        return sockets


def _version() -> str:
    try:
        return importlib.metadata.version("chatnode")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def hypercorn_config(config: Config) -> HypercornConfig:
    hc = NodeHypercornConfig()
    hc.unread_timeout_s = config.limits.unread_timeout_s
    hc.bind = [f"{config.host}:{config.port}"]
    hc.websocket_max_message_size = config.limits.frame_bytes * HARD_FRAME_FACTOR
    hypercorn_fixes.install(hc.websocket_max_message_size)
    send_batch.install()
    hc.graceful_timeout = 3
    # hypercorn closes a connection that has not sent a whole request's headers this long after
    # it opened (or after its last response): slowloris headers and silent sockets go.
    hc.keep_alive_timeout = config.limits.header_timeout_s
    # hypercorn's default of 100 pending connections loses most of a reconnect storm (every
    # client of a restarted node at once); the kernel caps this at net.core.somaxconn.
    hc.backlog = LISTEN_BACKLOG
    hc.accesslog = None
    # The node announces its own address; hypercorn's log shows only warnings and errors.
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.errorlog.setLevel(max(logging.WARNING, hc.errorlog.getEffectiveLevel()))
    return hc


def _cluster_link(config: Config, service: ChatService) -> ClusterLink | None:
    """With a [bus]: the node's link to the others, wired into the parts that cross nodes.
    Imported only then, so a single node never loads coredis."""
    if config.bus.url is None:
        return None
    from .cluster.bus import RedisBus
    from .cluster.link import ClusterLink

    bus = RedisBus(config.bus.url, config.bus.prefix, config.cluster.presence_ttl_s)
    cluster = ClusterLink(bus, service)
    service.cluster = cluster
    service.presence.cluster = cluster
    if service.push is not None:
        service.push.online_elsewhere = cluster.online_elsewhere
        service.push.on_target_added = cluster.push_target_added
    return cluster


async def serve(config: Config, announce: Callable[[str], None] = print) -> None:
    data_dir = Path(config.data_dir)
    with data_dir_lock(data_dir):
        metrics = Metrics()
        store = open_store(config, data_dir, metrics)
        engine = Engine(store.load_conversations(), body_chars=config.limits.body_chars,
                        history_on_new_device=config.history_on_new_device)
        hub = Hub()
        metrics.sessions.set_function(hub.session_count)
        if isinstance(store, SqliteStore):  # PostgreSQL has no WAL file of ours to watch
            metrics.wal_bytes.set_function(store.wal_bytes)
        timers = Timers()
        presence = PresenceTracker(
            engine, hub, timers,
            save_last_seen=lambda user_id, ts: store.submit(sql.set_last_seen, user_id, ts))
        rate = RateLimiter(config.limits.send_per_second, config.limits.send_burst,
                           name="send")
        push = None
        if config.push.enabled:
            push = PushDispatcher(config.push, store, engine, hub, timers, metrics,
                                  data_dir,
                                  store.load_push_users())
        service = ChatService(store, engine, hub, metrics, presence, rate,
                              heartbeat_s=config.heartbeat_s,
                              group_members=config.limits.group_members, push=push)
        cluster = _cluster_link(config, service)
        login_rate = RateLimiter(config.limits.login_per_minute / 60,
                                 max(1, int(config.limits.login_per_minute)), name="login")
        accounts = Accounts(store, registration=config.registration, login_rate=login_rate)
        media = open_media(config, data_dir)
        app = build_app(service, accounts, hub, media, frame_bytes=config.limits.frame_bytes,
                        upload_bytes=config.limits.upload_bytes,
                        outbox_frames=config.outbox_frames,
                        body_timeout_s=config.limits.body_timeout_s,
                        hello_timeout_s=config.limits.hello_timeout_s,
                        admins=Admins(store, hub, config.public_url))
        if config.proxy_hops:
            app = ProxyFixMiddleware(app, "legacy", config.proxy_hops)
        stopping = trio.Event()
        store.start()
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async with trio.open_nursery() as background:
                    background.start_soon(timers.run)
                    background.start_soon(sweep_media, store, media)
                    background.start_soon(watch_account_changes, store, hub)
                    if isinstance(store, SqliteStore):
                        background.start_soon(checkpoint_wal, store, metrics)
                    if push is not None:
                        await background.start(push.run)
                    if cluster is not None:
                        # Subscribed before serving: nothing committed elsewhere from the
                        # first session on can pass this node by.
                        await background.start(cluster.run)
                    async with trio.open_nursery() as nursery:
                        binds = await nursery.start(partial(
                            hypercorn.trio.serve, app, hypercorn_config(config),
                            shutdown_trigger=stopping.wait))
                        announce(f"chatnode listening on {binds[0]} (data in {data_dir})")
                        log.info("node started", extra=fields(
                            address=binds[0], data_dir=str(data_dir.resolve()),
                            version=_version(), pid=os.getpid()))
                        async for signum in signals:
                            log.info("node stopping", extra=fields(
                                signal=signal.Signals(signum).name,
                                sessions=hub.session_count()))
                            break
                        hub.close_all(CLOSE_GOING_AWAY)
                        stopping.set()
                    if cluster is not None:
                        await cluster.bus.leave()
                    background.cancel_scope.cancel()
        finally:
            await store.close()
        log.info("node stopped")
