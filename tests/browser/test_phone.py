"""Phone-sized screens (under 700 px wide) show the list or the conversation, with a back button."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    PHONE,
    NewPage,
    conversation_item,
    direct_chat,
    login,
    message,
    open_conversation,
    post_message,
    register_many,
)


def test_phone_shows_list_or_conversation_and_back_returns(
        node: Node, new_page: NewPage) -> None:
    """On 390x844 two panes side by side would be unreadable: the list fills the screen, a
    conversation replaces it (with a back button, the only way out without a hardware back
    key), and back brings the list again."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    post_message(node, bob, cid, "small screens too")
    p = new_page(node, PHONE)
    login(p, alice)
    item = conversation_item(p, cid)
    pane = p.get_by_role("main", name="Conversation")
    expect(item).to_be_visible()
    expect(pane).to_be_hidden()
    width = p.locator("nav.sidebar").evaluate("el => el.getBoundingClientRect().width")
    assert width == PHONE["width"], f"the list is {width} px wide on a {PHONE['width']} px screen"

    open_conversation(p, cid)
    expect(message(p, "small screens too")).to_be_in_viewport()
    expect(item).to_be_hidden()
    back = p.get_by_test_id("back")
    expect(back).to_be_visible()

    back.click()
    expect(item).to_be_visible()
    expect(p.get_by_test_id("composer")).to_be_hidden()
    expect(back).to_be_hidden()

