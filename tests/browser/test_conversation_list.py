"""The conversation list: latest activity first, the last message, and its tick when it is yours;
starting a chat by username, and a name nobody has."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from ..conftest import Node
from .conftest import (
    NewPage,
    conversation_item,
    direct_chat,
    login,
    open_conversation,
    post_message,
    register_many,
    send,
)


def order(page: Page) -> list[str | None]:
    """The conversation ids of the list, top to bottom."""
    items = page.get_by_test_id("conversation")
    return [items.nth(i).get_attribute("data-conversation-id") for i in range(items.count())]


def test_list_is_latest_first_with_the_last_message_and_its_tick(
        node: Node, new_page: NewPage) -> None:
    """alice has chats with bob and carol. A message from carol puts carol's chat first, with
    its text; alice's own reply to bob puts bob's chat first, with her text and her tick, which
    turns ✓✓ when bob's device takes it and blue when bob reads it."""
    alice, bob, carol = register_many(node, "alice", "bob", "carol")
    with_bob = direct_chat(node, alice, bob)
    with_carol = direct_chat(node, alice, carol)
    post_message(node, bob, with_bob, "bob was first")
    post_message(node, carol, with_carol, "carol came later")
    a = new_page(node)
    login(a, alice)
    expect(a.get_by_test_id("conversation")).to_have_count(2)
    assert order(a) == [with_carol, with_bob]
    carol_last = conversation_item(a, with_carol).get_by_test_id("conversation-last")
    expect(carol_last).to_contain_text("carol came later")
    assert carol_last.get_attribute("data-status") is None, "no tick on someone else's message"

    open_conversation(a, with_bob)
    send(a, "alice answers bob")
    bob_last = conversation_item(a, with_bob).get_by_test_id("conversation-last")
    expect(bob_last).to_contain_text("alice answers bob")
    expect(bob_last).to_have_attribute("data-status", "sent")
    assert order(a) == [with_bob, with_carol]

    b = new_page(node)
    login(b, bob)  # bob's device takes the message: delivered
    expect(bob_last).to_have_attribute("data-status", "delivered")
    open_conversation(b, with_bob)  # bob reads it on screen
    expect(bob_last).to_have_attribute("data-status", "read")


def test_start_a_chat_by_username_and_an_unknown_name_is_an_error(
        node: Node, new_page: NewPage) -> None:
    """"New chat" with a name nobody has says so and creates nothing; with bob's name it opens
    the direct chat with bob, which appears in the list, and a second time opens the same one."""
    alice, bob = register_many(node, "alice", "bob")
    a = new_page(node)
    login(a, alice)
    a.get_by_test_id("new-chat").click()
    a.get_by_test_id("new-chat-username").fill("nobody-by-this-name")
    a.get_by_test_id("new-chat-submit").click()
    expect(a.get_by_role("alert")).to_contain_text("No user with that name")
    expect(a.get_by_test_id("conversation")).to_have_count(0)

    a.get_by_test_id("new-chat-username").fill(bob.username)
    a.get_by_test_id("new-chat-submit").click()
    expect(a.get_by_test_id("composer")).to_be_visible()
    expect(a.get_by_test_id("conversation")).to_have_count(1)
    expect(a.get_by_test_id("conversation-name")).to_have_text(bob.username)

    a.get_by_test_id("new-chat").click()
    a.get_by_test_id("new-chat-username").fill(bob.username)
    a.get_by_test_id("new-chat-submit").click()
    expect(a.get_by_test_id("conversation")).to_have_count(1)
