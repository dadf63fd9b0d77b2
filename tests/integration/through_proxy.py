"""Requests through a reverse proxy in front of a node (deploy/nginx.conf, deploy/Caddyfile),
made from a loopback address of the test's choosing, so that a proxy's per-client rules (the
login limit, /metrics for the machine itself) can be told apart."""

from __future__ import annotations

import ssl
from typing import Any, Protocol

import httpx


class TlsProxy(Protocol):
    https_url: str
    trust: ssl.SSLContext


async def status_from(proxy: TlsProxy, source: str, method: str, path: str,
                      **request: Any) -> int:
    """The status a request gets through `proxy` when it comes from `source`."""
    transport = httpx.AsyncHTTPTransport(local_address=source, verify=proxy.trust)
    async with httpx.AsyncClient(transport=transport, base_url=proxy.https_url) as http:
        return (await http.request(method, path, **request)).status_code


async def failed_login_from(proxy: TlsProxy, source: str, spoofed: str) -> int:
    """A wrong login from `source` claiming, in X-Forwarded-For, to come from `spoofed`."""
    return await status_from(proxy, source, "POST", "/api/v1/login",
                             headers={"X-Forwarded-For": spoofed},
                             json={"username": "nobody", "password": "wrong"})
