"""Search in the browser app: a query finds an old message with its matches marked, and
choosing the hit by keyboard opens the conversation scrolled to that message, highlighted."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from ..conftest import Node
from .conftest import NewPage, direct_chat, login, register_many

TOTAL = 260  # more than a catch-up and a first page hold: the hit must be fetched


def test_a_search_hit_opens_its_conversation_at_the_message(node: Node,
                                                            new_page: NewPage) -> None:
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    with httpx.Client(base_url=f"{node.url}/api/v1", timeout=10,
                      headers={"Authorization": f"Bearer {alice.token}"}) as client:
        for i in range(TOTAL):
            body = (f"Crème brûlée at the <b>quokka</b> café, number {i}" if i == 3
                    else f"filler message {i}")
            client.post(f"/conversations/{cid}/messages",
                        json={"client_msg_id": str(uuid.uuid4()), "body": body}
                        ).raise_for_status()

    page = new_page(node)
    login(page, bob)
    box = page.get_by_test_id("search-input")
    box.fill("creme QUOKKA")
    box.press("Enter")
    hits = page.get_by_test_id("search-hit")
    expect(hits).to_have_count(1)
    hit = hits.first
    expect(hit).to_have_attribute("data-seq", "4")
    snippet = hit.get_by_test_id("search-snippet")
    # The matches are <mark> elements; the user's own "<b>" is text, never markup.
    expect(snippet.locator("mark")).to_have_text(["Crème", "quokka"])
    expect(snippet).to_contain_text("<b>quokka</b> café")
    expect(snippet.locator("b")).to_have_count(0)

    # By keyboard: down from the box onto the hit, Enter opens it.
    box.press("ArrowDown")
    expect(hit).to_be_focused()
    page.keyboard.press("Enter")
    target = page.locator('[data-testid="message"][data-seq="4"]')
    expect(target).to_have_attribute("data-highlighted", "true")
    expect(target).to_be_in_viewport()
    expect(target).to_be_focused()
    expect(target.get_by_test_id("message-body")).to_contain_text("quokka")
    # Everything from the hit to the newest message is there, with no gap.
    seqs = [int(s) for s in page.get_by_test_id("message").evaluate_all(
        "els => els.map((el) => el.dataset.seq)")]
    assert seqs == list(range(seqs[0], TOTAL + 1)) and seqs[0] <= 4
    expect(target).not_to_have_attribute("data-highlighted", "true")  # only for a moment

    box.fill("nothing-like-this-anywhere")
    box.press("Enter")
    expect(page.get_by_test_id("search-count")).to_have_text("No messages found")
    box.press("Escape")
    expect(page.get_by_test_id("search-results")).to_have_count(0)
