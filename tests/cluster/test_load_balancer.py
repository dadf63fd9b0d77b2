"""deploy/nginx-cluster.conf in front of a real two-node cluster, as an admin would run it:
clients go through nginx only, round robin spreads them over both nodes, and when one node is
killed the clients reconnect through nginx to the other and miss nothing."""

from __future__ import annotations

from pathlib import Path

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD
from ..nginx_proxy import DEPLOY, nginx_in_front
from ..redis_server import Redis
from .two_nodes import two_nodes


async def test_two_nodes_behind_the_documented_nginx_one_dies_and_nothing_is_missed(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    (tmp_path / "nginx").mkdir()
    with two_nodes(tmp_path, pg_url, redis_server.url) as cluster:
        one, two = cluster.nodes
        with nginx_in_front(tmp_path / "nginx", DEPLOY / "nginx-cluster.conf",
                            {"10.0.0.11:8420": one.port, "10.0.0.12:8420": two.port}) as proxy:
            alice = RestClient(proxy.https_url, verify=proxy.trust)
            bob = RestClient(proxy.https_url, verify=proxy.trust)
            await alice.register("alice_lb", PASSWORD)
            bob_id = (await bob.register("bob_lb", PASSWORD))["user_id"]
            cid = (await alice.direct(bob_id))["conversation_id"]
            bob_token = bob.token or ""

            async with connect(proxy.https_url, bob_token, ssl_context=proxy.trust) as (b, _), \
                    connect(proxy.https_url, alice.token or "", ssl_context=proxy.trust) as (a, _):
                for i in range(1, 6):
                    await a.send_text(cid, f"before {i}")
                    await a.until_type("sent")
                for i in range(1, 6):
                    message, _ = await b.until_type("message")
                    assert (message["seq"], message["body"]) == (i, f"before {i}")

            one.kill()  # whatever sessions it held are gone; nginx skips it from now on

            async with connect(proxy.https_url, alice.token or "",
                               ssl_context=proxy.trust) as (a, _):
                for i in range(6, 9):
                    await a.send_text(cid, f"after {i}")
                    sent, _ = await a.until_type("sent")
                    assert sent["seq"] == i
            async with connect(proxy.https_url, bob_token, sync={cid: 5},
                               ssl_context=proxy.trust) as (b, caught_up):
                missed = [(f["seq"], f["body"]) for f in caught_up if f["type"] == "message"]
            assert missed == [(6, "after 6"), (7, "after 7"), (8, "after 8")]
            assert [m["seq"] for m in (await bob.history(cid))["messages"]] == list(range(1, 9))
            await alice.aclose()
            await bob.aclose()
