"""The conversation header: "typing…" while the other types, "online" or "last seen …"."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from ..conftest import Node
from .conftest import (
    NewPage,
    direct_chat,
    login_all,
    message,
    open_conversation,
    register_many,
)


def chat(node: Node, new_page: NewPage) -> tuple[Page, Page]:
    """alice and bob logged in, each with their direct chat open."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    a, b = new_page(node), new_page(node)
    login_all((a, alice), (b, bob))
    for page in (a, b):
        open_conversation(page, cid)
    return a, b


def test_typing_shows_while_bob_types_and_clears_when_he_sends(
        node: Node, new_page: NewPage) -> None:
    """Typing is announced from the first keystroke (not only on send) and cleared the moment
    the message lands: a "typing…" that outlives the message it announced is a visible lie."""
    a, b = chat(node, new_page)
    typing = a.get_by_test_id("typing")
    expect(typing).to_have_text("")
    composer = b.get_by_test_id("composer")
    composer.press_sequentially("on my wa")
    expect(typing).to_have_text("typing…")

    composer.press_sequentially("y")
    composer.press("Enter")
    expect(message(a, "on my way")).to_have_count(1)
    expect(typing).to_have_text("", timeout=2_000)  # at once, not after the 5-6 s fallback


def test_presence_is_online_then_last_seen_after_bob_leaves(
        node: Node, new_page: NewPage) -> None:
    """alice sees bob "online" while any session of his is live, and "last seen …" once his
    page is gone (after the node's 2 s grace), without reloading anything."""
    a, b = chat(node, new_page)
    presence = a.get_by_test_id("presence")
    expect(presence).to_have_text("online")
    b.context.close()
    expect(presence).to_have_text(re.compile(r"^last seen (today at|yesterday at)? ?\S"))
