"""The three stories of ../shared/design-notes (000, 001, 002), as tests against a real node."""

import trio

from chatnode.client import connect

from ..conftest import Node, User, new_user, of_type


async def test_phone_off_three_days(node: Node, alice: User, bob: User) -> None:
    """Bob read up to 41, his phone dies, Alice sends 42-46 and sees single ticks; Bob comes
    back, gets exactly 42-46 in order, acks delivered then read, and Alice sees both flips."""
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(1, 42):
        await alice.rest.send(cid, f"old {i}")
    async with connect(node.url, bob.token) as (b, _):
        await b.read(cid, 41)
        # the read comes back to Bob's own session as my_read_seq
        status, _ = await b.until_type("status_update")
        assert status["my_read_seq"] == 41

    async with connect(node.url, alice.token) as (a, _):
        texts = ["hey", "where are you?", "hello??", "is everything okay?", "call me when you can"]
        for text in texts:
            await a.send_text(cid, text)
        seqs = []
        for _ in texts:
            sent, before = await a.until_type("sent")
            assert of_type(before, "status_update") == []  # nothing moves while Bob is off
            seqs.append(sent["seq"])
        assert seqs == [42, 43, 44, 45, 46]
        conversations = await alice.rest.conversations()
        (info,) = [c for c in conversations if c["conversation_id"] == cid]
        assert (info["last_delivered_seq"], info["last_read_seq"]) == (41, 41)  # single ticks

        async with connect(node.url, bob.token) as (b, catchup):
            messages = of_type(catchup, "message")
            assert [m["seq"] for m in messages] == [42, 43, 44, 45, 46]
            assert [m["body"] for m in messages] == texts
            (status,) = of_type(catchup, "status_update")
            assert status["last_seq"] == 46 and status["my_read_seq"] == 41
            assert catchup[-1] == {"type": "synced", "conversations": 1, "messages": 5}

            await b.delivered(cid, 46)
            status, _ = await a.until_type("status_update")
            assert (status["last_delivered_seq"], status["last_read_seq"]) == (46, 41)
            await b.read(cid, 46)
            status, _ = await a.until_type("status_update")
            assert (status["last_delivered_seq"], status["last_read_seq"]) == (46, 46)
            assert status["last_seq"] == 46


async def test_internet_comes_back_with_two_conversations(node: Node, alice: User,
                                                          bob: User) -> None:
    """Bob missed messages in two conversations; on reconnect he gets each conversation's
    missed messages in seq order, the most recently active conversation first, then one
    status_update per conversation, then synced."""
    carol = await new_user(node, "carol")
    with_alice = (await alice.rest.direct(bob.user_id))["conversation_id"]
    with_carol = (await carol.rest.direct(bob.user_id))["conversation_id"]
    for i in range(1, 17):
        await carol.rest.send(with_carol, f"earlier {i}")
    async with connect(node.url, bob.token) as (b, catchup):
        assert [m["seq"] for m in of_type(catchup, "message")] == list(range(1, 17))
        await b.delivered(with_carol, 16)
        await b.send({"type": "ping", "id": "x"})
        await b.until_type("pong")

    for text in ["hey", "where are you?", "hello??"]:
        await alice.rest.send(with_alice, text)
    for i in (17, 18, 19):
        await carol.rest.send(with_carol, f"carol {i}")

    async with connect(node.url, bob.token) as (b, catchup):
        assert catchup[0]["type"] == "welcome"
        messages = of_type(catchup, "message")
        assert [(m["conversation_id"], m["seq"]) for m in messages] == [
            (with_carol, 17), (with_carol, 18), (with_carol, 19),
            (with_alice, 1), (with_alice, 2), (with_alice, 3),
        ]
        statuses = of_type(catchup, "status_update")
        assert [s["conversation_id"] for s in statuses] == [with_carol, with_alice]
        last_message_index = max(i for i, f in enumerate(catchup) if f["type"] == "message")
        first_status_index = min(i for i, f in enumerate(catchup) if f["type"] == "status_update")
        assert last_message_index < first_status_index
        assert catchup[-1] == {"type": "synced", "conversations": 2, "messages": 6}
    await carol.rest.aclose()


async def test_alice_offline_gets_one_status_update_per_conversation(node: Node,
                                                                     alice: User) -> None:
    """While Alice is away, five peers receive and read her messages; on reconnect she gets
    exactly five status_update frames with the current markers, and no per-message replay."""
    peers = [await new_user(node, f"peer{i}") for i in range(5)]
    conversations = []
    for peer in peers:
        cid = (await alice.rest.direct(peer.user_id))["conversation_id"]
        for i in range(3):
            await alice.rest.send(cid, f"to {peer.username} {i}")
        conversations.append(cid)
    # Each peer moves the markers differently while Alice has no session.
    expected = {}
    for n, (peer, cid) in enumerate(zip(peers, conversations, strict=True)):
        delivered, read = [(3, 3), (3, 1), (2, 0), (3, 0), (1, 1)][n]
        async with connect(node.url, peer.token) as (p, _):
            await p.delivered(cid, delivered)
            if read:
                await p.read(cid, read)
        expected[cid] = (delivered, read)
        # A marker is committed after the frame is read: wait until the node holds it (a
        # pong would only say the frame was read), as Alice's next hello would see it.
        with trio.fail_after(10):
            while (lambda c: (c["last_delivered_seq"], c["last_read_seq"]))(
                    await alice.rest.request("GET", f"/api/v1/conversations/{cid}")) != (
                    delivered, read):
                await trio.sleep(0.02)

    async with connect(node.url, alice.token) as (_, catchup):
        assert of_type(catchup, "message") == []
        statuses = of_type(catchup, "status_update")
        assert len(statuses) == 5
        assert {s["conversation_id"]: (s["last_delivered_seq"], s["last_read_seq"])
                for s in statuses} == expected
        assert all(s["last_seq"] == 3 and s["my_read_seq"] == 3 for s in statuses)
        assert catchup[-1] == {"type": "synced", "conversations": 5, "messages": 0}
    for peer in peers:
        await peer.rest.aclose()
