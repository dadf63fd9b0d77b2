"""The per-user send rate: 20/s sustained, bursts of 50 by default."""

import trio

from chatnode.client import RestClient, connect

from ..conftest import Node, new_user, of_type


async def test_sends_past_the_burst_are_rate_limited_and_stored_nowhere(own_node: Node) -> None:
    del own_node.env["CHATNODE_LIMITS_SEND_PER_SECOND"]  # the defaults: 20/s, bursts of 50
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (a, _):
        for i in range(60):
            await a.send_text(cid, f"m{i}", f"id-{i}")
        answers = [await a.until(lambda f: f["type"] in ("sent", "error")) for _ in range(60)]
        frames = [frame for frame, _ in answers]
        sent, errors = of_type(frames, "sent"), of_type(frames, "error")
        assert 50 <= len(sent) <= 52  # the burst, plus what refilled meanwhile
        assert {e["code"] for e in errors} == {"rate_limited"}
        limited = errors[0]
        assert limited["ref"].startswith("id-") and 0 < limited["retry_after_ms"] <= 1000
        await trio.sleep(limited["retry_after_ms"] / 1000)
        await a.send_text(cid, "retried", limited["ref"])  # the right thing: same id
        retried, _ = await a.until_type("sent")
        assert retried["client_msg_id"] == limited["ref"]
        assert retried["seq"] == len(sent) + 1  # the refused sends took no seq
    status, body = 0, {}
    for i in range(60):
        status, body = await alice.rest.call(
            "POST", f"/api/v1/conversations/{cid}/messages", {"client_msg_id": f"r{i}",
                                                              "body": "x"})
        if status == 429:
            break
    assert status == 429 and body["error"]["code"] == "rate_limited"
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_login_attempts_per_address_are_limited(own_node: Node) -> None:
    own_node.env["CHATNODE_LIMITS_LOGIN_PER_MINUTE"] = "5"
    node = own_node.start()
    async with RestClient(node.url) as rest:
        answers = [await rest.call("POST", "/api/v1/login",
                                   {"username": "nobody", "password": "wrong password"})
                   for _ in range(6)]
        assert [status for status, _ in answers] == [401] * 5 + [429]
        assert answers[-1][1]["error"]["code"] == "rate_limited"
        response = await rest._http.post("/api/v1/login", json={"username": "x",
                                                                 "password": "y"})
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
