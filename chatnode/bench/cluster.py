"""`scripts/bench cluster --store-url URL --bus-url URL`: two nodes on one PostgreSQL and one
Redis, each pair of users split across them, so every message crosses the bus.

The bench starts the two nodes (fresh data directories, the given store and bus, a bus prefix
of their own) but not PostgreSQL or Redis: those are the deployment's, and their settings are
part of what is measured. Figures: `pairs` at --cluster-rate with the two sides on different
nodes (cross-node end-to-end latency, nothing lost) and the `max` climb on the same split,
beside the single node's own `max` when that scenario runs in the same invocation. The node
CPU reported is both nodes' together; PostgreSQL's and Redis's is not counted.
"""

from __future__ import annotations

import uuid
from typing import Any

from .node import NodeUnderTest
from .scenarios import Options, max_rate, pairs
from .stats import Checks


class ClusterUnderTest:
    """Two nodes, seen by the scenarios as one: node one's URL, both nodes' CPU and memory."""

    def __init__(self, store_url: str, bus_url: str) -> None:
        env = {"CHATNODE_STORE_URL": store_url, "CHATNODE_BUS_URL": bus_url,
               "CHATNODE_BUS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"}
        self.nodes = [NodeUnderTest.start(env)]
        try:
            self.nodes.append(NodeUnderTest.start(env))
        except BaseException:
            self.stop()
            raise
        self.url = self.nodes[0].url
        self.urls = [node.url for node in self.nodes]
        self.started_in_s = max(node.started_in_s or 0 for node in self.nodes)

    def cpu_s(self) -> float | None:
        used = [node.cpu_s() for node in self.nodes]
        return None if None in used else sum(u for u in used if u is not None)

    def rss_bytes(self) -> int | None:
        sizes = [node.rss_bytes() for node in self.nodes]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


async def cluster(nodes: ClusterUnderTest, o: Options, checks: Checks,
                  rate: float) -> dict[str, Any]:
    node: Any = nodes  # what the scenarios use of a node: url, cpu_s, rss_bytes
    crossing = await pairs(node, o, checks, rate=rate, urls=nodes.urls)
    climb = await max_rate(node, o, checks, urls=nodes.urls)
    return {"nodes": len(nodes.nodes), "pairs": crossing, "max": climb}
