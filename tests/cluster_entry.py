"""The protocol's integration tests against a two-node cluster: with CHATNODE_TEST_CLUSTER=1,
the shared `node` fixture is two real `chatnode serve` processes on one PostgreSQL database
and one redis-server, behind a plain-HTTP nginx that hands out connections round robin. Each
new connection lands on the other node, so a test's clients (and one user's devices) are spread
over both nodes without the test knowing, and every rule it checks must hold across nodes.

scripts/test runs the protocol's files this way once, after the whole suite on a single node.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import Node
from .nginx_proxy import free_port, running_nginx
from .pg_server import Postgres, create_database
from .redis_server import Redis


class ClusterEntry:
    """What the tests see of the cluster: one URL (nginx's), like a single node's."""

    def __init__(self, url: str, nodes: list[Node], config: Path, media_dir: Path) -> None:
        self.url = url
        self.nodes = nodes
        self.data_dir = nodes[0].data_dir
        self.admin_args = ["--config", str(config)]
        self.media_dir = media_dir

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 10) -> int:
        codes = [node.stop(timeout) for node in self.nodes]
        return max(codes)


def _site(nginx_port: int, node_ports: list[int]) -> str:
    servers = "".join(f"        server 127.0.0.1:{port};\n" for port in node_ports)
    return f"""
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream chatnode {{
{servers}    }}
    server {{
        listen 127.0.0.1:{nginx_port};
        client_max_body_size 17m;
        location / {{
            proxy_pass http://chatnode;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
        }}
    }}
    """


@contextmanager
def cluster_entry(root: Path, postgres: Postgres, redis: Redis) -> Iterator[ClusterEntry]:
    database = create_database(postgres)
    prefix = uuid.uuid4().hex[:8]  # the nodes of one cluster share their channels
    nodes = []
    for name in ("one", "two"):
        config = root / f"{name}.toml"
        config.write_text(
            f'[store]\nurl = "{database}"\nmedia_dir = "{root / "media"}"\n'
            f'[bus]\nurl = "{redis.url}"\nprefix = "{prefix}"\n')
        nodes.append(Node(root / name, args=["--config", str(config)]))
    for node in nodes:
        node.start()
    nginx_port = free_port()
    (root / "nginx").mkdir()
    try:
        with running_nginx(root / "nginx", _site(nginx_port, [n.port for n in nodes]),
                           nginx_port):
            yield ClusterEntry(f"http://127.0.0.1:{nginx_port}", nodes, root / "one.toml",
                               root / "media")
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait()
