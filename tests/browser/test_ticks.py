"""The life of one message as its sender sees it, between two real browsers."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    NewPage,
    conversation_item,
    direct_chat,
    login,
    message,
    open_conversation,
    register,
    send,
    start_chat,
    statuses,
)


def test_ticks_go_sending_sent_delivered_read(node: Node, new_page: NewPage) -> None:
    """Each tick means what PROTOCOL.md says and nothing sooner: ✓ once the node committed the
    message, ✓✓ once a device of bob's has it (bob logged in, list only), blue once bob has it
    on screen. Every value data-status ever took is recorded, so a skipped or reordered state
    (e.g. straight to "read" because the list auto-opened the chat) fails the test."""
    alice, bob = register(node, "alice"), register(node, "bob")
    a = new_page(node)
    login(a, alice)
    start_chat(a, bob)
    mine = send(a, "hello bob")
    expect(mine).to_have_attribute("data-status", "sent")
    expect(mine).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    cmid = mine.get_attribute("data-client-msg-id")
    assert cmid, "an own message carries its client_msg_id"
    cid = direct_chat(node, alice, bob)  # the chat the UI made (direct chats are one per pair)
    expect(conversation_item(a, cid)).to_be_visible()
    # bob has no session anywhere, so nothing can have been delivered: still one tick
    assert mine.get_attribute("data-status") == "sent"

    b = new_page(node)
    login(b, bob)
    unread = conversation_item(b, cid).get_by_test_id("unread")
    expect(unread).to_have_text("1")
    expect(mine).to_have_attribute("data-status", "delivered")
    assert mine.get_attribute("data-status") == "delivered", "the list alone must not read"

    open_conversation(b, cid)
    expect(mine).to_have_attribute("data-status", "read")
    expect(message(b, "hello bob")).to_have_count(1)
    expect(unread).to_be_hidden()
    assert statuses(a, cmid) == ["sending", "sent", "delivered", "read"]

