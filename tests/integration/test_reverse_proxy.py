"""deploy/nginx.conf, tried as an admin would: the documented site file, with only its ports and
certificate paths changed, in front of a real node. TLS ends at nginx; REST and the WebSocket
upgrade go through; with proxy_hops = 1 the login limit sees each client, not the proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node
from ..nginx_proxy import DEPLOY, Proxy, nginx_in_front
from .through_proxy import failed_login_from, status_from


@pytest.fixture
def proxied(tmp_path: Path, own_node: Node) -> Iterator[tuple[Node, Proxy]]:
    own_node.env.update({"CHATNODE_PROXY_HOPS": "1", "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "2"})
    node = own_node.start()
    with nginx_in_front(tmp_path, DEPLOY / "nginx.conf", {"127.0.0.1:8420": node.port}) as proxy:
        yield node, proxy


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

    # Client 127.0.0.2 uses up its bucket of two; a forged X-Forwarded-For does not help it,
    # since nginx appends the address it really saw and the node trusts only that one hop.
    tries = [await failed_login_from(proxy, "127.0.0.2", f"10.0.0.{i}") for i in range(3)]
    assert tries == [401, 401, 429]
    # Another client, through the same proxy, still has its own.
    assert await failed_login_from(proxy, "127.0.0.3", "10.0.0.1") == 401


async def test_nginx_keeps_metrics_for_the_machine_itself(proxied: tuple[Node, Proxy]) -> None:
    _, proxy = proxied

    assert await status_from(proxy, "127.0.0.1", "GET", "/metrics") == 200
    assert await status_from(proxy, "127.0.0.2", "GET", "/metrics") == 403  # anyone else
