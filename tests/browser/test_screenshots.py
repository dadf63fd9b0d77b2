"""Screenshots of a real conversation, wide and phone-sized, for people to look at."""

from __future__ import annotations

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    ARTIFACTS,
    PHONE,
    NewPage,
    direct_chat,
    login,
    message,
    open_conversation,
    register,
    send,
    start_chat,
)

# Alternating sides: (True = alice sends it)
CHAT = [
    (True, "Hi Bob! Are we still on for lunch tomorrow?"),
    (False, "Yes! 12:30 at the usual place?"),
    (True, "Perfect, I'll book a table by the window."),
    (False, "Great, see you there"),
]
LAST = "Running five minutes late, sorry!"


def test_screenshots_of_a_conversation(node: Node, new_page: NewPage) -> None:
    """Saves test-artifacts/browser/conversation.png (desktop) and conversation-phone.png
    (390x844): messages both ways, blue ticks on what bob read, one tick on the last message
    (sent after bob closed his tab). They are for review and CI artifacts; the test only checks
    that they were written and that the phone layout shows the conversation, not the list."""
    alice = register(node, "alice", "Alice Liddell")
    bob = register(node, "bob", "Bob Dobbs")
    a, b = new_page(node), new_page(node)
    login(a, alice)
    start_chat(a, bob)
    cid = direct_chat(node, alice, bob)
    login(b, bob)
    open_conversation(b, cid)
    for from_alice, text in CHAT:
        sender, receiver = (a, b) if from_alice else (b, a)
        send(sender, text)
        expect(message(receiver, text)).to_have_count(1)
    for from_alice, text in CHAT:
        if from_alice:
            expect(message(a, text)).to_have_attribute("data-status", "read")
    b.context.close()  # bob is gone: the last message keeps one tick
    expect(send(a, LAST)).to_have_attribute("data-status", "sent")
    # the node announces "offline" after a short grace period; wait so the header is honest
    expect(a.get_by_test_id("presence")).to_contain_text("last seen")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wide = ARTIFACTS / "conversation.png"
    a.screenshot(path=wide, animations="disabled")

    phone = new_page(node, PHONE)
    login(phone, alice)
    open_conversation(phone, cid)
    expect(phone.get_by_test_id("back")).to_be_visible()
    expect(message(phone, LAST)).to_be_in_viewport()
    narrow = ARTIFACTS / "conversation-phone.png"
    phone.screenshot(path=narrow, animations="disabled")

    for path in (wide, narrow):
        assert path.is_file() and path.stat().st_size > 0, path
