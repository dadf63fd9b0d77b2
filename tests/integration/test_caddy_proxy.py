"""deploy/Caddyfile, tried as an admin would: the documented file, with only its site address and
the node's port changed, in front of a real node. TLS ends at Caddy with a certificate from its
own CA; REST and the WebSocket upgrade go through; with proxy_hops = 1 the login limit sees each
client, not the proxy; uploads up to the node's limit pass and Caddy stops bigger ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from chatnode.client import RestClient, connect
from chatnode.config import Limits

from ..caddy_proxy import CaddyProxy, caddy_binary, caddy_in_front
from ..conftest import PASSWORD, Node
from .through_proxy import failed_login_from, status_from

# What deploy/Caddyfile's `max_size 17MB` lets through (Caddy's MB is 1000 * 1000 bytes).
CADDY_MAX_BODY = 17_000_000


def caddy_dir(tmp_path: Path) -> Path:
    workdir = tmp_path / "caddy"
    workdir.mkdir()
    return workdir


@pytest.fixture
def proxied(tmp_path: Path, own_node: Node) -> Iterator[tuple[Node, CaddyProxy]]:
    caddy_binary()  # skips before a node is started for nothing
    own_node.env.update({"CHATNODE_PROXY_HOPS": "1", "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "2"})
    node = own_node.start()
    with caddy_in_front(caddy_dir(tmp_path), node.port) as proxy:
        yield node, proxy


@pytest.fixture
def roomy_proxied(tmp_path: Path, own_node: Node) -> Iterator[tuple[Node, CaddyProxy]]:
    """A node that would take a body over Caddy's limit, so only Caddy can refuse one."""
    caddy_binary()
    own_node.env["CHATNODE_LIMITS_UPLOAD_BYTES"] = str(2 * CADDY_MAX_BODY)
    node = own_node.start()
    with caddy_in_front(caddy_dir(tmp_path), node.port) as proxy:
        yield node, proxy


async def upload(proxy: CaddyProxy, token: str, data: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=proxy.https_url, verify=proxy.trust,
                                 timeout=30) as http:
        return await http.post("/api/v1/media", content=data, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})


async def test_rest_and_websocket_go_through_caddy_over_tls(
        proxied: tuple[Node, CaddyProxy]) -> None:
    _, proxy = proxied
    async with httpx.AsyncClient() as plain:
        redirect = await plain.get(proxy.http_url + "/", follow_redirects=False)
    assert redirect.status_code == 308
    assert redirect.headers["location"].startswith("https://localhost")

    alice = RestClient(proxy.https_url, verify=proxy.trust)
    bob = RestClient(proxy.https_url, verify=proxy.trust)
    await alice.register("alice_caddy", PASSWORD)
    bob_id = (await bob.register("bob_caddy", PASSWORD))["user_id"]
    cid = (await alice.direct(bob_id))["conversation_id"]
    async with connect(proxy.https_url, bob.token or "", ssl_context=proxy.trust) as (b, _), \
            connect(proxy.https_url, alice.token or "", ssl_context=proxy.trust) as (a, _):
        cmid = await a.send_text(cid, "through caddy")
        sent, _ = await a.until_type("sent")
        assert sent["client_msg_id"] == cmid
        message, _ = await b.until_type("message")
        assert (message["body"], message["seq"]) == ("through caddy", sent["seq"])
        # Bob's ticks travel back through Caddy to alice's live session: ✓✓ then blue.
        await b.delivered(cid, sent["seq"])
        await b.read(cid, sent["seq"])
        status, _ = await a.until(lambda f: f.get("type") == "status_update"
                                  and f["last_read_seq"] == sent["seq"])
        assert status["last_delivered_seq"] == sent["seq"]
    assert [m["body"] for m in (await bob.history(cid))["messages"]] == ["through caddy"]
    await alice.aclose()
    await bob.aclose()


async def test_behind_caddy_the_login_limit_counts_each_client_not_the_proxy(
        proxied: tuple[Node, CaddyProxy]) -> None:
    _, proxy = proxied

    # Client 127.0.0.2 uses up its bucket of two; a forged X-Forwarded-For does not help it,
    # since the last address Caddy sends is the one it really saw, and the node trusts only
    # that one hop.
    tries = [await failed_login_from(proxy, "127.0.0.2", f"10.0.0.{i}") for i in range(3)]
    assert tries == [401, 401, 429]
    # Another client, through the same proxy, still has its own.
    assert await failed_login_from(proxy, "127.0.0.3", "10.0.0.1") == 401


async def test_caddy_keeps_metrics_for_the_machine_itself(
        proxied: tuple[Node, CaddyProxy]) -> None:
    _, proxy = proxied

    assert await status_from(proxy, "127.0.0.1", "GET", "/metrics") == 200
    assert await status_from(proxy, "127.0.0.2", "GET", "/metrics") == 403  # anyone else


async def test_an_upload_at_the_nodes_own_limit_goes_through_caddy(
        proxied: tuple[Node, CaddyProxy]) -> None:
    node, proxy = proxied
    limit = Limits().upload_bytes  # the default, which the Caddyfile's max_size is sized for
    assert limit < CADDY_MAX_BODY
    async with RestClient(node.url) as rest:
        token = (await rest.register("uploader", PASSWORD))["token"]

    uploaded = await upload(proxy, token, b"x" * limit)
    assert uploaded.status_code == 201
    assert uploaded.json()["size"] == limit


async def test_caddy_refuses_a_body_over_its_limit_before_the_node_takes_it(
        roomy_proxied: tuple[Node, CaddyProxy]) -> None:
    node, proxy = roomy_proxied
    async with RestClient(node.url) as rest:
        token = (await rest.register("uploader", PASSWORD))["token"]
    refused = await upload(proxy, token, b"x" * (CADDY_MAX_BODY + 1))
    # Caddy's answer alone (a proxied one also names the node's server): 413, or 502 from
    # Caddy 2.6, which cuts a body with a Content-Length over the limit off mid-stream.
    assert refused.headers.get_list("server") == ["Caddy"]
    assert refused.status_code in (413, 502)
    # The node saw the body end short and keeps nothing of it (the partial file goes too).
    with trio.fail_after(10):
        while [p for p in node.media_dir.rglob("*") if p.is_file()]:
            await trio.sleep(0.05)
