"""Keyboard-only use and accessible names: the app must work without a mouse or a screen."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import PASSWORD, Node
from .conftest import (
    NewPage,
    connection,
    conversation_item,
    direct_chat,
    expect_named_controls,
    login,
    message,
    open_conversation,
    post_message,
    register,
    register_many,
    rest,
    tab_to,
)


def test_log_in_with_the_keyboard_only(node: Node, new_page: NewPage) -> None:
    """Username, Tab, password, Enter: the login form is a real form in a sensible order, so a
    keyboard or password-manager user gets in without a click."""
    alice = register(node, "alice")
    a = new_page(node)
    a.goto("/")
    username = a.get_by_test_id("login-username")
    username.focus()
    a.keyboard.type(alice.username)
    a.keyboard.press("Tab")
    expect(a.get_by_test_id("login-password")).to_be_focused()
    a.keyboard.type(PASSWORD)
    a.keyboard.press("Enter")
    expect(connection(a)).to_have_attribute("data-state", "online")


def test_every_visible_control_has_an_accessible_name(node: Node, new_page: NewPage) -> None:
    """A screen reader announces a control by its accessible name; an unnamed one (an icon
    button, an input with only a placeholder) is a dead end. Checked on the list, with the
    new-chat and new-group forms open, and in a group with a message, its actions, the emoji
    picker, a reaction and the members panel showing; ticks are named in words."""
    alice, bob = register_many(node, "alice", "bob")
    gid = rest(node, alice, "POST", "/conversations",
               {"kind": "group", "name": "Named things", "members": [bob.user_id]}
               )["conversation_id"]
    seq = post_message(node, bob, gid, "label everything")["seq"]
    post_message(node, alice, gid, "❤️", kind="reaction", target=seq)
    post_message(node, alice, gid, "my own words")
    a = new_page(node)
    login(a, alice)
    expect(conversation_item(a, gid)).to_be_visible()
    assert expect_named_controls(a, "conversation list") >= 3

    a.get_by_test_id("new-chat").click()
    expect(a.get_by_test_id("new-chat-username")).to_be_visible()
    expect_named_controls(a, "new-chat form")
    a.get_by_test_id("new-group").click()
    expect(a.get_by_test_id("new-group-members")).to_be_visible()
    expect_named_controls(a, "new-group form")
    a.get_by_test_id("new-group").click()

    open_conversation(a, gid)
    theirs = message(a, "label everything")
    expect(theirs.get_by_test_id("reaction")).to_be_visible()
    a.get_by_test_id("members-toggle").click()
    expect(a.get_by_test_id("add-member-username")).to_be_visible()
    theirs.hover()
    theirs.get_by_test_id("react").click()
    expect(theirs.get_by_test_id("emoji")).to_have_count(6)
    theirs.hover()
    expect(theirs.get_by_test_id("reply")).to_be_visible()
    assert expect_named_controls(a, "open group") >= 12
    # the tick is an image named in words (bob never connected: one tick, "sent"), and the
    # list is a live log, so new messages are read out
    expect(message(a, "my own words").get_by_role("img")).to_have_accessible_name("sent")
    expect(a.get_by_role("log", name="Messages")).to_have_attribute("aria-live", "polite")


def test_keyboard_user_opens_a_chat_and_sends_with_enter(node: Node, new_page: NewPage) -> None:
    """From the list to a sent message with Tab and Enter only: the conversation entry is a
    button, the composer is in the focus order after it, and Enter sends."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    a = new_page(node)
    login(a, alice)
    item = conversation_item(a, cid)
    expect(item).to_be_visible()
    tab_to(a, item)
    a.keyboard.press("Enter")
    composer = a.get_by_test_id("composer")
    expect(composer).to_be_visible()
    tab_to(a, composer)
    a.keyboard.type("sent without a mouse")
    a.keyboard.press("Enter")
    sent = message(a, "sent without a mouse")
    expect(sent).to_have_count(1)
    expect(sent).to_have_attribute("data-status", "sent")
    expect(composer).to_have_value("")
    expect(composer).to_be_focused()


def test_keyboard_user_reaches_a_messages_actions(node: Node, new_page: NewPage) -> None:
    """The actions are hidden until hover or focus; a keyboard user focuses the message
    (tabindex 0) and Tabs into them: Reply, then React, whose picker is next in the order.
    Replying must put the focus in the composer, ready to type."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    post_message(node, bob, cid, "keyboard only?")
    a = new_page(node)
    login(a, alice)
    open_conversation(a, cid)
    theirs = message(a, "keyboard only?")
    reply = theirs.get_by_test_id("reply")
    expect(reply).to_be_hidden()

    theirs.focus()
    a.keyboard.press("Tab")
    expect(reply).to_be_focused()
    expect(reply).to_be_visible()
    a.keyboard.press("Enter")
    expect(a.get_by_test_id("reply-preview")).to_contain_text("keyboard only?")
    expect(a.get_by_test_id("composer")).to_be_focused()
    a.keyboard.type("yes, all of it")
    a.keyboard.press("Enter")
    expect(message(a, "yes, all of it").get_by_test_id("reply-quote")).to_contain_text(
        "keyboard only?")

    theirs.focus()
    a.keyboard.press("Tab")
    expect(reply).to_be_focused()
    a.keyboard.press("Tab")
    react = theirs.get_by_test_id("react")
    expect(react).to_be_focused()
    a.keyboard.press("Enter")
    expect(react).to_have_attribute("aria-expanded", "true")
    a.keyboard.press("Tab")
    expect(theirs.locator('[data-testid="emoji"][data-emoji="👍"]')).to_be_focused()
    a.keyboard.press("Enter")
    expect(theirs.locator('[data-testid="reaction"][data-emoji="👍"]')).to_have_text("👍 1")
