"""Presence (online, last seen, the 2 s grace for flaps) and typing indicators, live."""

import trio

from chatnode.client import Session, connect

from ..conftest import Node, User, new_user, of_type


async def frames_within(session: Session, seconds: float) -> list[dict]:
    """Everything the session receives in the next `seconds`."""
    frames: list[dict] = []
    with trio.move_on_after(seconds):
        while True:
            frames.append(await session.recv(timeout=seconds + 1))
    return frames


async def test_catch_up_tells_presence_of_every_peer_after_the_statuses(
        node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    stranger = await new_user(node, "stranger")
    await alice.rest.direct(bob.user_id)
    await alice.rest.group("trio", [bob.user_id, carol.user_id])
    async with connect(node.url, carol.token):
        pass  # carol has been and gone: she has a last_seen
    async with connect(node.url, bob.token), connect(node.url, alice.token) as (_, frames):
        presence = of_type(frames, "presence")
        by_user = {p["user_id"]: p for p in presence}
        assert set(by_user) == {bob.user_id, carol.user_id}  # peers only, not the stranger
        assert by_user[bob.user_id]["online"] is True
        # carol left less than the 2 s grace ago: still shown online, then offline
        kinds = [f["type"] for f in frames]
        assert kinds.index("presence") > max(i for i, k in enumerate(kinds)
                                             if k == "status_update")
        assert kinds[-1] == "synced"
    await trio.sleep(2.2)
    async with connect(node.url, alice.token) as (_, frames):
        by_user = {p["user_id"]: p for p in of_type(frames, "presence")}
        assert by_user[carol.user_id]["online"] is False
        assert isinstance(by_user[carol.user_id]["last_seen"], int)
    for user in (carol, stranger):
        await user.rest.aclose()


async def test_presence_goes_live_to_peers_only_and_offline_after_the_grace(
        node: Node, alice: User, bob: User) -> None:
    stranger = await new_user(node, "stranger")
    await alice.rest.direct(bob.user_id)
    async with connect(node.url, alice.token) as (a, _), \
            connect(node.url, stranger.token) as (s, _):
        async with connect(node.url, bob.token):
            online, _ = await a.until_type("presence")
            assert (online["user_id"], online["online"]) == (bob.user_id, True)
        started = trio.current_time()
        offline, _ = await a.until_type("presence")
        assert (offline["user_id"], offline["online"]) == (bob.user_id, False)
        assert trio.current_time() - started >= 1.5
        assert isinstance(offline["last_seen"], int)
        assert of_type(await frames_within(s, 0.2), "presence") == []
    await stranger.rest.aclose()


async def test_a_flap_within_two_seconds_produces_no_presence_frames(
        node: Node, alice: User, bob: User) -> None:
    await alice.rest.direct(bob.user_id)
    async with connect(node.url, bob.token), connect(node.url, alice.token) as (a, _):
        for _ in range(3):  # bob's second device flaps while the first stays
            async with connect(node.url, bob.token):
                pass
        assert of_type(await frames_within(a, 0.3), "presence") == []
    await trio.sleep(2.2)  # bob is now announced offline
    async with connect(node.url, alice.token) as (a, _):
        async with connect(node.url, bob.token):
            online, _ = await a.until_type("presence")
            assert online["online"] is True
        async with connect(node.url, bob.token):  # gone and back within the grace
            pass
        async with connect(node.url, bob.token):
            assert of_type(await frames_within(a, 2.5), "presence") == []


async def test_typing_is_forwarded_refreshed_and_cleared(node: Node, alice: User,
                                                         bob: User) -> None:
    stranger = await new_user(node, "stranger")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    typing = {"type": "typing", "conversation_id": cid}
    async with connect(node.url, alice.token) as (a, _), connect(node.url, bob.token) as (b, _):
        await a.send(typing)
        shown, _ = await b.until_type("typing")
        assert shown == {"type": "typing", "conversation_id": cid, "user_id": alice.user_id,
                         "typing": True}
        started = trio.current_time()
        await trio.sleep(1)
        await a.send(typing)  # a refresh within 2 s is not forwarded again ...
        cleared, before = await b.until_type("typing", timeout=10)
        assert of_type(before, "typing") == []
        assert cleared["typing"] is False
        assert trio.current_time() - started >= 5.5  # ... but moves the 5 s deadline
        assert of_type(await frames_within(a, 0.1), "typing") == []  # never to the typer

        await a.send(typing)
        assert (await b.until_type("typing"))[0]["typing"] is True
        await a.send_text(cid, "done typing")
        cleared, _ = await b.until_type("typing", timeout=2)
        message, _ = await b.until_type("message")
        assert cleared["typing"] is False and message["body"] == "done typing"

        async with connect(node.url, stranger.token) as (s, _):
            await s.send(typing)
            error, _ = await s.until_type("error")
            assert (error["code"], error["ref"]) == ("forbidden", "typing")

    async with connect(node.url, bob.token) as (b, _):
        async with connect(node.url, alice.token) as (a, _):
            await a.send(typing)
            assert (await b.until_type("typing"))[0]["typing"] is True
        cleared, _ = await b.until_type("typing", timeout=2)  # alice went offline
        assert cleared["typing"] is False
    await stranger.rest.aclose()


async def test_new_conversation_partners_learn_each_others_presence_at_once(
        node: Node, alice: User, bob: User) -> None:
    """Without this, a chat started while both are online shows no presence until a reconnect."""
    async with connect(node.url, alice.token) as (a, _), connect(node.url, bob.token) as (b, _):
        await alice.rest.direct(bob.user_id)
        told_alice, _ = await a.until_type("presence")
        told_bob, _ = await b.until_type("presence")
        assert (told_alice["user_id"], told_alice["online"]) == (bob.user_id, True)
        assert (told_bob["user_id"], told_bob["online"]) == (alice.user_id, True)


async def test_a_member_added_to_a_group_learns_who_is_online_and_they_learn_of_them(
        node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    offline_dave = await new_user(node, "dave")
    group = await alice.rest.group("club", [offline_dave.user_id])
    async with connect(node.url, alice.token) as (a, _), connect(node.url, carol.token) as (c, _):
        members = f"/api/v1/conversations/{group['conversation_id']}/members"
        await alice.rest.request("POST", members, {"user_id": carol.user_id})
        told_carol, _ = await c.until_type("presence")
        assert (told_carol["user_id"], told_carol["online"]) == (alice.user_id, True)
        told_alice, _ = await a.until_type("presence")
        assert (told_alice["user_id"], told_alice["online"]) == (carol.user_id, True)
        # dave is offline: in a group, offline members are left to the next catch-up
        assert of_type(await frames_within(c, 0.3), "presence") == []
    for user in (carol, offline_dave):
        await user.rest.aclose()
