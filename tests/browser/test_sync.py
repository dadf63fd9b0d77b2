"""The hello's sync map: a reload fetches only what is new, never the cached history again."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    FrameLog,
    NewPage,
    connection,
    direct_chat,
    login,
    message,
    open_conversation,
    post_message,
    register_many,
    wait_for_cached_seq,
)


def test_reload_sends_the_sync_map_and_refetches_nothing_but_what_is_new(
        node: Node, new_page: NewPage) -> None:
    """The app's `hello` names, per cached conversation, the last seq it has; the node then
    sends nothing for a conversation that has not moved (synced.messages == 0) and exactly the
    one new message for one that has. Without the map a phone would download the latest 50
    messages of every chat on every start."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    for i in range(3):
        post_message(node, bob, cid, f"cached {i}")
    a = new_page(node)
    frames = FrameLog(a)
    login(a, alice)
    open_conversation(a, cid)
    expect(message(a, "cached 2")).to_have_count(1)
    wait_for_cached_seq(a, cid, 3)

    frames.clear()
    a.reload()
    expect(connection(a)).to_have_attribute("data-state", "online")
    (hello,) = frames.sent_of("hello")
    assert hello["sync"] == {cid: 3}
    (synced,) = frames.received_of("synced")
    assert synced["messages"] == 0, synced
    assert frames.received_of("message") == []
    expect(message(a, "cached 0")).to_have_count(1)  # from the cache

    a.goto("about:blank")  # alice's page is gone while bob writes
    post_message(node, bob, cid, "while you were away")
    frames.clear()
    a.goto("/")
    expect(connection(a)).to_have_attribute("data-state", "online")
    (hello,) = frames.sent_of("hello")
    assert hello["sync"] == {cid: 3}
    (synced,) = frames.received_of("synced")
    assert synced["messages"] == 1, synced
    assert [m["body"] for m in frames.received_of("message")] == ["while you were away"]
    open_conversation(a, cid)
    expect(message(a, "while you were away")).to_have_count(1)
    expect(a.get_by_test_id("message")).to_have_count(4)
