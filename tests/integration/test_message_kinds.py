"""Reactions, edits and deletes: appended to the log with seqs of their own."""

from chatnode.client import connect

from ..conftest import Node, User, of_type


async def test_reactions_edits_and_deletes_are_logged_and_caught_up(
        node: Node, alice: User, bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, alice.token) as (a, _):
        async def send(frame: dict) -> dict:
            await a.send({"type": "send", "conversation_id": cid, **frame})
            answer, _ = await a.until(lambda f: f["type"] in ("sent", "error"))
            return answer

        assert (await send({"client_msg_id": "t1", "body": "helo"}))["seq"] == 1
        assert (await send({"client_msg_id": "t2", "body": "second"}))["seq"] == 2
        assert (await send({"client_msg_id": "e1", "kind": "edit", "target": 1,
                            "body": "hello"}))["seq"] == 3
        assert (await send({"client_msg_id": "d1", "kind": "delete", "target": 2}))["seq"] == 4
        assert (await send({"client_msg_id": "r0", "kind": "text", "body": "re",
                            "reply_to": 1}))["seq"] == 5
        refused = [
            ({"client_msg_id": "x1", "kind": "edit", "target": 9, "body": "x"}, "invalid"),
            ({"client_msg_id": "x2", "kind": "edit", "body": "no target"}, "invalid"),
            ({"client_msg_id": "x3", "kind": "text", "body": "t", "target": 1}, "invalid"),
            ({"client_msg_id": "x4", "kind": "edit", "target": 2, "body": "x"}, "invalid"),
            ({"client_msg_id": "x5", "kind": "reaction", "target": 3, "body": "👍"}, "invalid"),
            ({"client_msg_id": "x6", "kind": "edit", "target": 1, "body": " "}, "invalid"),
            ({"client_msg_id": "x7", "kind": "media", "body": ""}, "invalid"),
        ]
        for frame, code in refused:
            answer = await send(frame)
            assert (answer["type"], answer["code"], answer["ref"]) == (
                "error", code, frame["client_msg_id"]), frame

    async with connect(node.url, bob.token) as (b, frames):
        await b.send({"type": "send", "conversation_id": cid, "client_msg_id": "b1",
                      "kind": "reaction", "target": 1, "body": "👍"})
        assert (await b.until_type("sent"))[0]["seq"] == 6
        for kind, target in (("edit", 1), ("delete", 1)):
            await b.send({"type": "send", "conversation_id": cid, "client_msg_id": f"b-{kind}",
                          "kind": kind, "target": target, "body": "mine now"})
            error, _ = await b.until_type("error")
            assert (error["code"], error["ref"]) == ("forbidden", f"b-{kind}")
        messages = of_type(frames, "message")
        assert [(m["seq"], m["kind"], m["body"]) for m in messages] == [
            (1, "text", "helo"), (2, "text", ""), (3, "edit", "hello"), (4, "delete", ""),
            (5, "text", "re")]
        assert messages[2]["target"] == 1 and messages[3]["target"] == 2
        assert messages[4]["reply_to"] == 1

    history = await alice.rest.history(cid)
    assert [(m["seq"], m["kind"], m["body"]) for m in history["messages"]] == [
        (1, "text", "helo"), (2, "text", ""), (3, "edit", "hello"), (4, "delete", ""),
        (5, "text", "re"), (6, "reaction", "👍")]


async def test_history_can_fold_edits_and_reactions_onto_their_messages(
        node: Node, alice: User, bob: User) -> None:
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    path = f"/api/v1/conversations/{cid}/messages"

    async def send(user: User, **fields: object) -> None:
        await user.rest.request("POST", path, {"client_msg_id": f"{user.username}{fields}",
                                               **fields})

    await send(alice, body="helo")  # 1
    await send(alice, body="second")  # 2
    await send(alice, kind="edit", target=1, body="hello")  # 3
    await send(bob, kind="reaction", target=1, body="👍")  # 4
    await send(alice, kind="reaction", target=1, body="❤️")  # 5
    await send(alice, kind="reaction", target=1, body="👍")  # 6: alice changes her mind
    await send(bob, kind="reaction", target=2, body="😂")  # 7
    await send(bob, kind="reaction", target=2, body="")  # 8: bob takes it back
    await send(alice, kind="delete", target=2)  # 9

    folded = await bob.rest.request("GET", path, params={"fold": "true"})
    assert folded["has_more"] is False
    assert [(m["seq"], m["kind"], m["body"]) for m in folded["messages"]] == [
        (1, "text", "hello"), (2, "text", ""), (9, "delete", "")]
    first = folded["messages"][0]
    assert first["edited"] is True
    assert first["reactions"] == {"👍": sorted([alice.user_id, bob.user_id])}
    assert "reactions" not in folded["messages"][1]  # none left: omitted
    raw = await bob.rest.history(cid)
    assert [m["seq"] for m in raw["messages"]] == list(range(1, 10))  # the log is untouched
    status, body = await bob.rest.call("GET", path, params={"fold": "maybe"})
    assert (status, body["error"]["code"]) == (400, "invalid")


async def test_a_delete_also_blanks_the_edits_of_its_message(
        node: Node, alice: User, bob: User) -> None:
    """A deleted message's words are gone from history and catch-up, including the words of
    its edits (the folded view would otherwise show the latest edit of a deleted message)."""
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    path = f"/api/v1/conversations/{cid}/messages"
    for number, fields in enumerate([{"body": "my pin is 1234"},
                                     {"kind": "edit", "target": 1, "body": "my pin is 4321"},
                                     {"kind": "delete", "target": 1}]):
        await alice.rest.request("POST", path, {"client_msg_id": f"k{number}", **fields})
    raw = await bob.rest.history(cid)
    assert [(m["seq"], m["kind"], m["body"]) for m in raw["messages"]] == [
        (1, "text", ""), (2, "edit", ""), (3, "delete", "")]
    folded = await bob.rest.request("GET", path, params={"fold": "true"})
    assert [(m["seq"], m["body"]) for m in folded["messages"]] == [(1, ""), (3, "")]
    async with connect(node.url, bob.token) as (_, frames):
        assert [m["body"] for m in of_type(frames, "message")] == ["", "", ""]
