"""Unread counts, and "read" only for what was on screen in a visible tab, on every device."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    NewPage,
    conversation_info,
    conversation_item,
    direct_chat,
    fake_notifications_and_visibility,
    login_all,
    message,
    open_conversation,
    post_message,
    register_many,
    send,
    set_hidden,
    start_chat,
    wait_until,
)


def test_unread_count_clears_and_ticks_turn_read_when_the_chat_is_opened(
        node: Node, new_page: NewPage) -> None:
    """Messages arriving in a chat alice is not looking at count as unread (3 messages, badge
    "3") and stay ✓✓ delivered for bob; opening the chat reads them: the badge goes, and bob's
    ticks turn blue, all three (one cumulative read)."""
    alice, bob, carol = register_many(node, "alice", "bob", "carol")
    cid = direct_chat(node, alice, bob)
    a, b = new_page(node), new_page(node)
    login_all((a, alice), (b, bob))
    start_chat(a, carol)  # alice is busy in another chat
    open_conversation(b, cid)
    sent = [send(b, f"ping {i}") for i in range(3)]
    for item in sent:
        expect(item).to_have_attribute("data-status", "delivered")

    unread = conversation_item(a, cid).get_by_test_id("unread")
    expect(unread).to_have_text("3")
    expect(unread).to_be_visible()
    expect(conversation_item(a, cid)).to_have_attribute("aria-label", f"{bob.username}, 3 unread")
    for item in sent:
        assert item.get_attribute("data-status") == "delivered", "nobody has read them yet"

    open_conversation(a, cid)
    expect(message(a, "ping 2")).to_be_visible()
    expect(unread).to_be_hidden()
    for item in sent:
        expect(item).to_have_attribute("data-status", "read")


def test_reading_on_one_device_clears_the_badge_on_the_other(
        node: Node, new_page: NewPage) -> None:
    """alice on her laptop and her phone: reading bob's messages on one must clear the unread
    badge on the other (my_read_seq in status_update), or she reads everything twice."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    laptop, phone = new_page(node), new_page(node)
    login_all((laptop, alice), (phone, alice))
    for i in range(2):
        post_message(node, bob, cid, f"hi {i}")
    on_laptop = conversation_item(laptop, cid).get_by_test_id("unread")
    on_phone = conversation_item(phone, cid).get_by_test_id("unread")
    expect(on_laptop).to_have_text("2")
    expect(on_phone).to_have_text("2")

    open_conversation(laptop, cid)
    expect(on_laptop).to_be_hidden()
    expect(on_phone).to_be_hidden()


def test_nothing_is_read_while_the_tab_is_hidden(node: Node, new_page: NewPage) -> None:
    """An open chat in a background tab is not being read: bob's tick must stay ✓✓ delivered
    until alice brings the tab back, then turn blue without her doing anything else."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    a, b = new_page(node), new_page(node)
    fake_notifications_and_visibility(a)
    login_all((a, alice), (b, bob))
    open_conversation(a, cid)
    open_conversation(b, cid)

    set_hidden(a, True)
    mine = send(b, "are you there?")
    expect(mine).to_have_attribute("data-status", "delivered")
    expect(message(a, "are you there?")).to_have_count(1)  # on alice's screen, in the dark
    b.wait_for_timeout(300)  # a wrong `read` would follow the delivery at once
    expect(mine).to_have_attribute("data-status", "delivered")
    expect(conversation_item(a, cid).get_by_test_id("unread")).to_have_text("1")

    set_hidden(a, False)
    expect(mine).to_have_attribute("data-status", "read")
    expect(conversation_item(a, cid).get_by_test_id("unread")).to_be_hidden()


def test_a_message_below_the_fold_is_not_read_until_scrolled_into_view(
        node: Node, new_page: NewPage) -> None:
    """Read means seen: with alice scrolled up in a long chat, a new message from bob lands
    out of view, so it must count as unread (badge "1", no read marker sent) until she
    scrolls down to it; only then does her read marker reach it."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    for i in range(40):
        post_message(node, bob, cid, f"older {i}")
    a = new_page(node)
    login_all((a, alice))
    open_conversation(a, cid)
    expect(message(a, "older 39")).to_be_in_viewport()
    unread = conversation_item(a, cid).get_by_test_id("unread")
    expect(unread).to_be_hidden()
    wait_until(lambda: conversation_info(node, alice, cid)["my_read_seq"] == 40,
               "alice has read the 40 messages on screen")

    messages = a.locator("ol.messages")
    messages.evaluate("el => { el.scrollTop = 0; }")
    expect(message(a, "older 0")).to_be_in_viewport()
    expect(message(a, "older 39")).not_to_be_in_viewport()
    post_message(node, bob, cid, "below the fold")
    latest = message(a, "below the fold")
    expect(latest).to_have_count(1)
    expect(latest).not_to_be_in_viewport()
    expect(unread).to_have_text("1")
    a.wait_for_timeout(300)  # a wrong `read` would go out right after the message arrived
    assert conversation_info(node, alice, cid)["my_read_seq"] == 40

    messages.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(latest).to_be_in_viewport()
    expect(unread).to_be_hidden()
    wait_until(lambda: conversation_info(node, alice, cid)["my_read_seq"] == 41,
               "alice's read reached the new message")
