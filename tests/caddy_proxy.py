"""The documented Caddyfile (deploy/), run as an admin would run it: only its site address and
the node's port changed, with a throwaway Caddy of the test's own. Global options say what a
test machine needs and a real one does not: ports of the test's own, a certificate from
Caddy's internal CA (the test trusts that CA alone), no admin endpoint, and every file Caddy
writes kept in the test's directory."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .nginx_proxy import DEPLOY, free_port

CADDYFILE = DEPLOY / "Caddyfile"


@dataclass
class CaddyProxy:
    https_url: str
    http_url: str
    trust: ssl.SSLContext


def site_block(caddyfile: Path, node_port: int) -> str:
    """The Caddyfile with `localhost` for its site address and the node's real port."""
    text = caddyfile.read_text()
    replacements = {
        "chat.example.org {": "localhost {",
        "reverse_proxy 127.0.0.1:8420 {": f"reverse_proxy 127.0.0.1:{node_port} {{",
    }
    for old, new in replacements.items():
        assert old in text, f"{caddyfile.name} no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


def global_options(workdir: Path, http_port: int, https_port: int) -> str:
    # local_certs is `tls internal` for every site, so the site block stays as written;
    # skip_install_trust keeps Caddy's CA out of the system's trust store.
    return f"""{{
    admin off
    skip_install_trust
    local_certs
    default_bind 127.0.0.1
    http_port {http_port}
    https_port {https_port}
    storage file_system {workdir / "storage"}
}}
"""


def caddy_binary() -> str:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (scripts/test installs it: apt-get install caddy)")
    return caddy


def wait_until_served(process: subprocess.Popen[bytes], log: Path, https_url: str,
                      root_cert: Path) -> ssl.SSLContext:
    """Caddy issues its certificate after it starts: wait for the CA, then for an answer
    over TLS that trusts only that CA."""
    deadline = time.monotonic() + 15
    while True:
        try:
            trust = ssl.create_default_context(cafile=str(root_cert))
            httpx.get(https_url + "/healthz", verify=trust, timeout=2).raise_for_status()
            return trust
        except (OSError, ssl.SSLError, httpx.HTTPError):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"caddy did not serve {https_url}:\n{log.read_text()}"
                                   ) from None
            time.sleep(0.1)


@contextmanager
def caddy_in_front(workdir: Path, node_port: int) -> Iterator[CaddyProxy]:
    """deploy/Caddyfile over TLS from Caddy's own CA, in front of the node on `node_port`."""
    caddy = caddy_binary()
    http_port, https_port = free_port(), free_port()
    config = workdir / "Caddyfile"
    config.write_text(global_options(workdir, http_port, https_port)
                      + site_block(CADDYFILE, node_port))
    # Caddy's data and config dirs (certificates, autosave.json) follow HOME and XDG_*.
    env = {**os.environ, "HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"),
           "XDG_CONFIG_HOME": str(workdir / "config")}
    log = workdir / "caddy.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter",
                                    "caddyfile"], stdout=log_file, stderr=log_file, env=env)
    try:
        https_url = f"https://localhost:{https_port}"
        trust = wait_until_served(process, log, https_url,
                                  workdir / "storage/pki/authorities/local/root.crt")
        yield CaddyProxy(https_url, f"http://localhost:{http_port}", trust)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
