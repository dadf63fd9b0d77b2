"""Older history loads page by page as the user scrolls up, complete and in order."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from ..conftest import Node
from .conftest import NewPage, direct_chat, login, message, open_conversation, register_many

TOTAL = 130


def test_scrolling_up_loads_all_older_pages_once_in_order(
        node: Node, new_page: NewPage) -> None:
    """A new device gets only the latest messages in its catch-up (history_on_new_device) and
    must fetch the rest over REST as the user scrolls up: every page stitched to the next with
    no gap and no duplicate, until the very first message, and nothing fetched before it is
    needed (a long chat must open fast)."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    with httpx.Client(base_url=f"{node.url}/api/v1", timeout=10,
                      headers={"Authorization": f"Bearer {alice.token}"}) as client:
        for i in range(TOTAL):
            client.post(f"/conversations/{cid}/messages",
                        json={"client_msg_id": str(uuid.uuid4()), "body": f"history {i}"}
                        ).raise_for_status()

    b = new_page(node)
    login(b, bob)
    open_conversation(b, cid)
    newest = message(b, f"history {TOTAL - 1}")
    expect(newest).to_be_in_viewport()
    items = b.get_by_test_id("message")
    shown = items.count()
    assert 0 < shown < TOTAL, f"{shown} messages in the DOM right after opening"

    messages = b.locator("ol.messages")
    first = message(b, "history 0")
    for _ in range(TOTAL // 10):  # a page is far more than 10 messages
        if first.count():
            break
        messages.evaluate("el => { el.scrollTop = 0; }")
        b.wait_for_function(
            "n => document.querySelectorAll('[data-testid=message]').length > n", arg=shown)
        shown = items.count()
    expect(first).to_have_count(1)
    expect(items).to_have_count(TOTAL)
    seqs = [int(s) for s in items.evaluate_all("els => els.map((el) => el.dataset.seq)")]
    assert seqs == sorted(set(seqs)), "ascending, no duplicates"
    bodies = items.get_by_test_id("message-body").all_inner_texts()
    assert [body.strip() for body in bodies] == [f"history {i}" for i in range(TOTAL)]
