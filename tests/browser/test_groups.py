"""Groups in the browser: creating one, its ticks (the minimum over the others), adding people."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from ..conftest import Node
from .conftest import (
    NewPage,
    conversation_info,
    conversation_item,
    login_all,
    message,
    open_conversation,
    register,
    register_many,
    rest,
    send,
    wait_until,
)


def open_id(page: Page) -> str:
    """The id of the conversation open on `page` (the app keeps it in the URL's hash)."""
    expect(page).to_have_url(re.compile(r"#c_"))
    return page.evaluate("decodeURIComponent(location.hash.slice(1))")


def test_group_tick_turns_read_only_when_every_other_member_read(
        node: Node, new_page: NewPage) -> None:
    """A group made in the UI opens at once, says how many members it has, and reaches
    everyone; its tick is the minimum over the other members (PROTOCOL.md), so it must stay
    ✓✓ delivered while one of two readers has not opened the group, and turn blue only when
    both have. A client that took the first reader's marker would lie to alice."""
    alice, bob, carol = register_many(node, "alice", "bob", "carol")
    a, b, c = new_page(node), new_page(node), new_page(node)
    login_all((a, alice), (b, bob), (c, carol))

    a.get_by_test_id("new-group").click()
    a.get_by_test_id("new-group-name").fill("Lunch club")
    a.get_by_test_id("new-group-members").fill(f"{bob.username}, {carol.username}")
    a.get_by_test_id("new-group-submit").click()
    expect(a.get_by_test_id("composer")).to_be_visible()
    expect(a.locator("#conversation-title")).to_have_text("Lunch club")
    expect(a.get_by_test_id("presence")).to_have_text(re.compile(r"^3 members\b"))
    gid = open_id(a)

    mine = send(a, "hello group")
    expect(conversation_item(b, gid)).to_be_visible()
    expect(conversation_item(c, gid)).to_be_visible()
    expect(mine).to_have_attribute("data-status", "delivered")  # both devices have it
    seq = int(mine.get_attribute("data-seq") or 0)

    open_conversation(b, gid)
    expect(message(b, "hello group")).to_have_count(1)
    wait_until(lambda: conversation_info(node, bob, gid)["my_read_seq"] >= seq,
               "the node has bob's read")
    a.wait_for_timeout(300)  # a wrong status_update would come right after bob's read
    expect(mine).to_have_attribute("data-status", "delivered")

    open_conversation(c, gid)
    expect(message(c, "hello group")).to_have_count(1)
    expect(mine).to_have_attribute("data-status", "read")


def test_added_member_gets_the_group_and_everyone_sees_the_join(
        node: Node, new_page: NewPage) -> None:
    """An admin adds a member from the members panel: the newcomer's list gets the group live
    (no reload), and the join is a system line in everyone's view, the newcomer's included
    (their log starts at their own member_added), so nobody wonders who dave is."""
    alice, bob = register_many(node, "alice", "bob")
    dave = register(node, "dave", "Dave Newcomer")
    gid = rest(node, alice, "POST", "/conversations",
               {"kind": "group", "name": "Book club", "members": [bob.user_id]}
               )["conversation_id"]
    a, b, d = new_page(node), new_page(node), new_page(node)
    login_all((a, alice), (b, bob), (d, dave))
    open_conversation(a, gid)
    open_conversation(b, gid)
    expect(conversation_item(d, gid)).to_have_count(0)

    a.get_by_test_id("members-toggle").click()
    expect(a.get_by_test_id("member")).to_have_count(2)
    a.get_by_test_id("add-member-username").fill(dave.username)
    a.get_by_test_id("add-member-submit").click()
    expect(a.locator(f'[data-testid="member"][data-user-id="{dave.user_id}"]')).to_be_visible()
    expect(a.get_by_test_id("presence")).to_have_text(re.compile(r"^3 members\b"))

    joined = re.compile(r"^\s*Dave Newcomer joined\s*$")
    expect(a.get_by_test_id("system-message").filter(has_text=joined)).to_have_count(1)
    expect(b.get_by_test_id("system-message").filter(has_text=joined)).to_have_count(1)
    expect(conversation_item(d, gid)).to_be_visible()
    expect(conversation_item(d, gid).get_by_test_id("conversation-name")).to_have_text(
        "Book club")
    open_conversation(d, gid)
    expect(d.get_by_test_id("system-message").filter(has_text=joined)).to_have_count(1)
