from chatnode.client import connect

from ..conftest import Node, User


async def test_two_users_chat_with_ticks(node: Node, alice: User, bob: User) -> None:
    conv = await alice.rest.direct(bob.user_id)
    cid = conv["conversation_id"]
    async with connect(node.url, alice.token) as (a, a_frames), \
            connect(node.url, bob.token) as (b, _):
        assert a_frames[0]["type"] == "welcome"
        cmid = await a.send_text(cid, "hello bob")
        sent, _ = await a.until_type("sent")
        assert sent == {"type": "sent", "conversation_id": cid, "client_msg_id": cmid,
                        "seq": 1, "ts": sent["ts"]}
        message, _ = await b.until_type("message")
        assert message["body"] == "hello bob" and message["seq"] == 1
        await b.delivered(cid, 1)
        status, _ = await a.until_type("status_update")
        assert (status["last_delivered_seq"], status["last_read_seq"]) == (1, 0)
        await b.read(cid, 1)
        status, _ = await a.until_type("status_update")
        assert (status["last_delivered_seq"], status["last_read_seq"]) == (1, 1)
