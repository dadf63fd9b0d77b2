"""Replies, reactions, edits and deletes between two browsers, live and after a reload.

Each is an event in the log with a seq of its own; the app folds them onto their target. The
actions appear on hover (or focus, see test_accessibility.py), so the tests hover first.
"""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from ..conftest import Node
from .conftest import (
    NewPage,
    direct_chat,
    login,
    login_all,
    message,
    open_conversation,
    post_message,
    register_many,
    send,
)

THUMBS = "👍"


def pair_in_chat(node: Node, new_page: NewPage, first: str) -> tuple[Page, Page]:
    """alice and bob, each logged in with their direct chat open; alice wrote `first` (over
    REST, before either logged in)."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    post_message(node, alice, cid, first)
    a, b = new_page(node), new_page(node)
    login_all((a, alice), (b, bob))
    open_conversation(a, cid)
    open_conversation(b, cid)
    expect(message(a, first)).to_have_count(1)
    expect(message(b, first)).to_have_count(1)
    return a, b


def action(item: Locator, testid: str) -> Locator:
    """A message's action button, made visible the way a mouse user does: by hovering."""
    item.hover()
    button = item.get_by_test_id(testid)
    expect(button).to_be_visible()
    return button


def reaction(item: Locator, emoji: str) -> Locator:
    """The reaction chip of `emoji` under a message."""
    return item.locator(f'[data-testid="reaction"][data-emoji="{emoji}"]')


def test_reply_shows_the_quoted_message(node: Node, new_page: NewPage) -> None:
    """A reply carries reply_to; the composer shows what is being answered before sending, and
    the other side sees the quote above the reply, so a reply in a busy chat keeps its
    context."""
    a, b = pair_in_chat(node, new_page, "which day works for you?")
    action(message(b, "which day works for you?"), "reply").click()
    expect(b.get_by_test_id("reply-preview")).to_contain_text("which day works for you?")
    expect(b.get_by_test_id("composer")).to_be_focused()
    send(b, "thursday")
    expect(b.get_by_test_id("reply-preview")).to_have_count(0)

    reply = message(a, "thursday")
    expect(reply).to_have_count(1)
    expect(reply.get_by_test_id("reply-quote")).to_contain_text("which day works for you?")
    expect(message(a, "which day works for you?").get_by_test_id("reply-quote")).to_have_count(0)


def test_reaction_shows_on_both_sides_and_clicking_it_again_takes_it_back(
        node: Node, new_page: NewPage) -> None:
    """One reaction per person per message: bob's 👍 shows as a chip "👍 1" on alice's screen,
    and clicking his own chip again sends the empty reaction that takes it back everywhere."""
    a, b = pair_in_chat(node, new_page, "we won the match")
    on_b, on_a = message(b, "we won the match"), message(a, "we won the match")
    action(on_b, "react").click()
    b.locator(f'[data-testid="emoji"][data-emoji="{THUMBS}"]').click()

    expect(reaction(on_a, THUMBS)).to_have_text(f"{THUMBS} 1")
    chip = reaction(on_b, THUMBS)
    expect(chip).to_have_text(f"{THUMBS} 1")
    expect(chip).to_have_attribute("aria-pressed", "true")

    chip.click()
    expect(on_b.get_by_test_id("reaction")).to_have_count(0)
    expect(on_a.get_by_test_id("reaction")).to_have_count(0)


def test_edit_prefills_the_composer_and_shows_as_edited(node: Node, new_page: NewPage) -> None:
    """Editing starts from the old text (nobody retypes a message to fix a typo), Enter saves,
    and the other side sees the new text in place, marked "edited", not a second message."""
    a, b = pair_in_chat(node, new_page, "see you at 8")
    action(message(a, "see you at 8"), "edit").click()
    composer = a.get_by_test_id("composer")
    expect(a.get_by_test_id("edit-preview")).to_be_visible()
    expect(composer).to_have_value("see you at 8")
    composer.fill("see you at 9")
    composer.press("Enter")
    expect(a.get_by_test_id("edit-preview")).to_have_count(0)

    edited = message(b, "see you at 9")
    expect(edited).to_have_count(1)
    expect(edited.get_by_test_id("edited")).to_be_visible()
    expect(message(b, "see you at 8")).to_have_count(0)
    expect(b.get_by_test_id("message")).to_have_count(1)
    expect(message(a, "see you at 9").get_by_test_id("edited")).to_be_visible()


def test_delete_for_everyone_asks_first_and_blanks_the_message(
        node: Node, new_page: NewPage) -> None:
    """Delete needs a second click (no accidental loss), then the message is gone for both:
    its text is replaced by "message deleted" and it offers no more actions."""
    a, b = pair_in_chat(node, new_page, "my bank pin is 1234")
    mine = message(a, "my bank pin is 1234")
    action(mine, "delete").click()
    expect(message(b, "my bank pin is 1234")).to_have_count(1)  # not yet: it asks first
    action(mine, "delete-confirm").click()

    expect(message(b, "message deleted")).to_have_count(1)
    expect(message(b, "my bank pin is 1234")).to_have_count(0)
    expect(message(a, "message deleted")).to_have_count(1)
    gone = message(b, "message deleted")
    gone.hover()
    expect(gone.get_by_test_id("react")).to_have_count(0)


def test_folded_state_survives_a_reload_and_a_catch_up(node: Node, new_page: NewPage) -> None:
    """After a reload bob's screen is rebuilt from IndexedDB plus the catch-up of what happened
    while the page was gone: an edit, a reaction and a delete seen live, and an edit and a
    delete that came in the catch-up, must fold to exactly what the live screen showed (no
    resurrected text, no lost or doubled reaction)."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    first = post_message(node, alice, cid, "first draft")["seq"]
    doomed = post_message(node, alice, cid, "delete me soon")["seq"]
    later = post_message(node, alice, cid, "edit me later")["seq"]
    gone_later = post_message(node, alice, cid, "delete me later")["seq"]
    b = new_page(node)
    login(b, bob)
    open_conversation(b, cid)
    expect(message(b, "delete me later")).to_have_count(1)

    post_message(node, alice, cid, "final draft", kind="edit", target=first)
    post_message(node, bob, cid, THUMBS, kind="reaction", target=first)
    post_message(node, alice, cid, kind="delete", target=doomed)
    expect(message(b, "final draft")).to_have_count(1)
    expect(message(b, "message deleted")).to_have_count(1)
    expect(reaction(message(b, "final draft"), THUMBS)).to_have_text(f"{THUMBS} 1")

    b.goto("about:blank")  # bob's page is gone; these come in his next catch-up
    post_message(node, alice, cid, "edited while away", kind="edit", target=later)
    post_message(node, alice, cid, kind="delete", target=gone_later)
    b.goto(f"/#{cid}")
    expect(b.get_by_test_id("composer")).to_be_visible()

    edited = message(b, "final draft")
    expect(edited).to_have_count(1)
    expect(edited.get_by_test_id("edited")).to_be_visible()
    expect(reaction(edited, THUMBS)).to_have_text(f"{THUMBS} 1")
    expect(message(b, "edited while away").get_by_test_id("edited")).to_be_visible()
    expect(message(b, "message deleted")).to_have_count(2)
    expect(b.get_by_test_id("message")).to_have_count(4)
    for old in ("first draft", "delete me soon", "edit me later", "delete me later"):
        expect(message(b, old)).to_have_count(0)
