"""The documented nginx site files (deploy/), run as an admin would run them: only their ports,
upstream addresses and certificate paths changed, with a test certificate and a throwaway
nginx of the test's own. TLS ends at nginx, as in the files."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

DEPLOY = Path(__file__).parents[1] / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proxy:
    https_url: str
    http_url: str
    trust: ssl.SSLContext


def site_config(site_file: Path, upstreams: dict[str, int], http_port: int, https_port: int,
                cert: Path, key: Path) -> str:
    """The site file with this machine's ports and a test certificate; `upstreams` maps each
    `server ADDRESS` line of the file to the port of a node on loopback."""
    text = site_file.read_text()
    replacements = {
        "    listen 80;\n": f"    listen 127.0.0.1:{http_port};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl;\n": f"    listen 127.0.0.1:{https_port} ssl;\n",
        "    listen [::]:443 ssl;\n": "",
        "/etc/letsencrypt/live/chat.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/chat.example.org/privkey.pem": str(key),
    }
    for address, port in upstreams.items():
        replacements[f"server {address}"] = f"server 127.0.0.1:{port}"
    for old, new in replacements.items():
        assert old in text, f"{site_file.name} no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


def nginx_binary() -> str:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    return nginx


@contextmanager
def running_nginx(workdir: Path, site: str, port: int) -> Iterator[None]:
    """A throwaway nginx serving `site` (server blocks), until it listens on `port`."""
    (workdir / "site.conf").write_text(site)
    (workdir / "nginx.conf").write_text(f"""
        daemon off;
        master_process off;
        pid {workdir}/nginx.pid;
        error_log {workdir}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            client_body_temp_path {workdir}/body;
            proxy_temp_path {workdir}/proxy;
            fastcgi_temp_path {workdir}/fastcgi;
            uwsgi_temp_path {workdir}/uwsgi;
            scgi_temp_path {workdir}/scgi;
            include {workdir}/site.conf;
        }}
    """)
    process = subprocess.Popen([nginx_binary(), "-c", str(workdir / "nginx.conf"),
                                "-p", str(workdir)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((workdir / "error.log").read_text()) from None
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def nginx_in_front(tmp_path: Path, site_file: Path, upstreams: dict[str, int]
                   ) -> Iterator[Proxy]:
    """The documented site file, over TLS with a test certificate, in front of `upstreams`."""
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    http_port, https_port = free_port(), free_port()
    site = site_config(site_file, upstreams, http_port, https_port, cert, key)
    with running_nginx(tmp_path, site, https_port):
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        yield Proxy(f"https://localhost:{https_port}", f"http://127.0.0.1:{http_port}", trust)
