"""deploy/nginx.conf, tried as an admin would: the documented site file, with only its ports and
certificate paths changed, in front of a real node. TLS ends at nginx; REST and the WebSocket
upgrade go through; with proxy_hops = 1 the login limit sees each client, not the proxy."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node

SITE_FILE = Path(__file__).parents[2] / "deploy" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proxy:
    https_url: str
    http_url: str
    trust: ssl.SSLContext


def site_config(node_port: int, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """The documented site file, with this machine's ports and a test certificate."""
    text = SITE_FILE.read_text()
    replacements = {
        "server 127.0.0.1:8420;": f"server 127.0.0.1:{node_port};",
        "    listen 80;\n": f"    listen 127.0.0.1:{http_port};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl;\n": f"    listen 127.0.0.1:{https_port} ssl;\n",
        "    listen [::]:443 ssl;\n": "",
        "/etc/letsencrypt/live/chat.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/chat.example.org/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


@pytest.fixture
def proxied(tmp_path: Path, own_node: Node) -> Iterator[tuple[Node, Proxy]]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    own_node.env.update({"CHATNODE_PROXY_HOPS": "1", "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "2"})
    node = own_node.start()
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    http_port, https_port = free_port(), free_port()
    (tmp_path / "site.conf").write_text(site_config(node.port, http_port, https_port, cert, key))
    (tmp_path / "nginx.conf").write_text(f"""
        daemon off;
        master_process off;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log warn;
        events {{ worker_connections 256; }}
        http {{
            access_log off;
            client_body_temp_path {tmp_path}/body;
            proxy_temp_path {tmp_path}/proxy;
            fastcgi_temp_path {tmp_path}/fastcgi;
            uwsgi_temp_path {tmp_path}/uwsgi;
            scgi_temp_path {tmp_path}/scgi;
            include {tmp_path}/site.conf;
        }}
    """)
    process = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp_path / "error.log").read_text()) from None
                time.sleep(0.05)
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        yield node, Proxy(f"https://localhost:{https_port}", f"http://127.0.0.1:{http_port}",
                          trust)
    finally:
        process.terminate()
        process.wait(10)


async def test_rest_and_websocket_go_through_nginx_over_tls(proxied: tuple[Node, Proxy]
                                                            ) -> None:
    _, proxy = proxied
    async with httpx.AsyncClient() as plain:
        redirect = await plain.get(proxy.http_url + "/", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")

    alice = RestClient(proxy.https_url, verify=proxy.trust)
    bob = RestClient(proxy.https_url, verify=proxy.trust)
    await alice.register("alice_proxied", PASSWORD)
    bob_id = (await bob.register("bob_proxied", PASSWORD))["user_id"]
    cid = (await alice.direct(bob_id))["conversation_id"]
    async with connect(proxy.https_url, bob.token or "", ssl_context=proxy.trust) as (b, _), \
            connect(proxy.https_url, alice.token or "", ssl_context=proxy.trust) as (a, _):
        cmid = await a.send_text(cid, "through the proxy")
        sent, _ = await a.until_type("sent")
        assert sent["client_msg_id"] == cmid
        message, _ = await b.until_type("message")
        assert (message["body"], message["seq"]) == ("through the proxy", sent["seq"])
    assert [m["body"] for m in (await bob.history(cid))["messages"]] == ["through the proxy"]
    await alice.aclose()
    await bob.aclose()


async def test_behind_nginx_the_login_limit_counts_each_client_not_the_proxy(
        proxied: tuple[Node, Proxy]) -> None:
    _, proxy = proxied

    async def attempt(source: str, spoofed: str) -> int:
        transport = httpx.AsyncHTTPTransport(local_address=source, verify=proxy.trust)
        async with httpx.AsyncClient(transport=transport, base_url=proxy.https_url) as http:
            response = await http.post("/api/v1/login", headers={"X-Forwarded-For": spoofed},
                                       json={"username": "nobody", "password": "wrong"})
        return response.status_code

    # Client 127.0.0.2 uses up its bucket of two; a forged X-Forwarded-For does not help it,
    # since nginx appends the address it really saw and the node trusts only that one hop.
    assert [await attempt("127.0.0.2", f"10.0.0.{i}") for i in range(3)] == [401, 401, 429]
    # Another client, through the same proxy, still has its own.
    assert await attempt("127.0.0.3", "10.0.0.1") == 401


async def test_nginx_keeps_metrics_for_the_machine_itself(proxied: tuple[Node, Proxy]) -> None:
    _, proxy = proxied

    async def metrics_from(source: str) -> int:
        transport = httpx.AsyncHTTPTransport(local_address=source, verify=proxy.trust)
        async with httpx.AsyncClient(transport=transport, base_url=proxy.https_url) as http:
            return (await http.get("/metrics")).status_code

    assert await metrics_from("127.0.0.1") == 200
    assert await metrics_from("127.0.0.2") == 403  # anyone else
