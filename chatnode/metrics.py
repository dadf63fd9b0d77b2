"""Prometheus metrics of one node, in a registry of its own (so tests can run several nodes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Gauge("chatnode_sessions", "Live WebSocket sessions",
                              registry=self.registry)
        self.messages = Counter("chatnode_messages_committed_total", "Messages appended to the log",
                                registry=self.registry)
        self.commit_batch = Histogram(
            "chatnode_commit_batch_size", "Jobs per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000), registry=self.registry)
        self.commit_seconds = Histogram(
            "chatnode_commit_seconds", "Time to run and commit one batch",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
            registry=self.registry)
        self.catchup_seconds = Histogram(
            "chatnode_catchup_seconds", "From hello to synced",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10), registry=self.registry)
        self.outbox_overflows = Counter(
            "chatnode_outbox_overflows_total", "Sessions closed with 4008", registry=self.registry)
        self.frames_out = Counter(
            "chatnode_ws_frames_out_total", "WebSocket data frames written", registry=self.registry)
        self.socket_writes = Counter(
            "chatnode_ws_writes_total", "Socket writes carrying those frames (several frames"
            " queued for one session go out in one write)", registry=self.registry)
        self.errors = Counter("chatnode_errors_total", "Error answers by code", ["code"],
                              registry=self.registry)

        self.push_sent = Counter("chatnode_push_sent_total",
                                 "Notifications a push service accepted, by kind", ["kind"],
                                 registry=self.registry)
        self.push_failed = Counter(
            "chatnode_push_failed_total", "Notifications given up on after their attempts, by"
            " kind (`error`: a fault of the node's own)", ["kind"], registry=self.registry)
        self.push_removed = Counter(
            "chatnode_push_targets_removed_total", "Push targets removed because their push"
            " service said gone (404, 410)", registry=self.registry)
        self.push_dropped = Counter(
            "chatnode_push_dropped_total", "Wake-ups dropped because the push queue was full",
            registry=self.registry)
        self.push_waiting = Gauge(
            "chatnode_push_queued", "Wake-ups waiting in their window or being sent",
            registry=self.registry)

        self.checkpoints = Counter(
            "chatnode_wal_checkpoints_total", "WAL checkpoints run off the send path",
            registry=self.registry)
        self.checkpoint_seconds = Histogram(
            "chatnode_wal_checkpoint_seconds", "Time to copy the WAL into the database file",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=self.registry)
        self.wal_bytes = Gauge("chatnode_wal_bytes", "Size of the SQLite WAL file",
                               registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        """Called from the writer thread; prometheus_client is thread-safe."""
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
