"""The composer: multi-line messages, and a send the node refuses."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    NewPage,
    direct_chat,
    history,
    login,
    message,
    open_conversation,
    register_many,
)

TOO_LONG = "x" * 10_001  # [limits] body_chars is 10,000


def test_shift_enter_is_a_new_line_and_enter_sends_one_message(
        node: Node, new_page: NewPage) -> None:
    """Shift+Enter must add a line, not send half a message; Enter then sends the whole text
    as one message with its line break kept."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    a = new_page(node)
    login(a, alice)
    open_conversation(a, cid)
    composer = a.get_by_test_id("composer")
    composer.press_sequentially("first line")
    composer.press("Shift+Enter")
    composer.press_sequentially("second line")
    expect(composer).to_have_value("first line\nsecond line")
    expect(a.get_by_test_id("message")).to_have_count(0)
    composer.press("Enter")
    sent = message(a, "first line\nsecond line")
    expect(sent).to_have_count(1)
    expect(sent).to_have_attribute("data-status", "sent")
    assert [m["body"] for m in history(node, bob, cid)] == ["first line\nsecond line"]


def test_refused_send_shows_failed_with_retry_and_discard(node: Node, new_page: NewPage) -> None:
    """A send the node refuses for good (here: over the body length limit) must not sit at 🕓
    forever or vanish: it shows as failed, with the reason, and Discard removes it; the log
    never had it."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    a = new_page(node)
    login(a, alice)
    open_conversation(a, cid)
    composer = a.get_by_test_id("composer")
    composer.fill(TOO_LONG)
    composer.press("Enter")
    refused = a.get_by_test_id("message")
    expect(refused).to_have_count(1)
    expect(refused).to_have_attribute("data-status", "failed")
    alert = refused.get_by_role("alert")
    expect(alert).to_contain_text("Not sent")
    expect(alert.get_by_role("button", name="Retry")).to_be_visible()
    assert refused.get_attribute("data-seq") is None

    alert.get_by_role("button", name="Discard").click()
    expect(a.get_by_test_id("message")).to_have_count(0)
    assert history(node, alice, cid) == []
    a.reload()
    expect(a.get_by_test_id("composer")).to_be_visible()
    expect(a.get_by_test_id("message")).to_have_count(0)  # not back from the outbox
