"""Browser notifications: one per new message while the tab is hidden, none while it is seen.

Window.Notification and the tab's visibility are faked (FAKE_NOTIFICATIONS_AND_VISIBILITY in
conftest.py): headless Chromium shows no notifications and its tabs are always visible.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from ..conftest import Node
from .conftest import (
    Account,
    NewPage,
    direct_chat,
    fake_notifications_and_visibility,
    login,
    message,
    notifications,
    open_conversation,
    post_message,
    register,
    set_hidden,
)


def alice_with_bob(node: Node, new_page: NewPage) -> tuple[Page, Account, str]:
    """alice logged in (notifications allowed) with her chat with bob open; bob, who has a
    display name, writes over REST."""
    alice, bob = register(node, "alice"), register(node, "bob", "Bob Builder")
    cid = direct_chat(node, alice, bob)
    a = new_page(node)
    fake_notifications_and_visibility(a)
    login(a, alice)
    open_conversation(a, cid)
    expect(a.locator("#conversation-title")).to_have_text("Bob Builder")
    expect(a.get_by_test_id("notifications")).to_have_count(0)  # already allowed: no button
    return a, bob, cid


def test_message_in_a_hidden_tab_notifies_once_with_sender_and_text(
        node: Node, new_page: NewPage) -> None:
    """With the tab in the background, a message from bob makes exactly one notification,
    titled with bob's name and showing the text: how alice learns of it at all."""
    a, bob, cid = alice_with_bob(node, new_page)
    set_hidden(a, True)
    post_message(node, bob, cid, "dinner is ready")
    expect(message(a, "dinner is ready")).to_have_count(1)
    shown = notifications(a)
    assert [(n["title"], n["body"]) for n in shown] == [("Bob Builder", "dinner is ready")]


def test_message_in_a_visible_tab_does_not_notify(node: Node, new_page: NewPage) -> None:
    """While alice is looking at the app, a notification would only be noise."""
    a, bob, cid = alice_with_bob(node, new_page)
    post_message(node, bob, cid, "dinner is ready")
    expect(message(a, "dinner is ready")).to_have_count(1)  # notify() runs before the render
    assert notifications(a) == []
