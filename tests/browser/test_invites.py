"""Invites in the browser app, through its data-testid hooks: an admin makes an invite in the
settings, another browser opens the link, registers and lands logged in; a bad or used invite
shows the node's reason."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from ..conftest import PASSWORD, Node
from .conftest import (
    ADMIN,
    NewPage,
    connection,
    expect_named_controls,
    login_as,
    start_with_admin,
    tab_to,
)


def open_invite(page: Page, link: str, username: str, display_name: str) -> None:
    page.goto(link)
    page.get_by_test_id("invite-username").fill(username)
    page.get_by_test_id("invite-display-name").fill(display_name)
    page.get_by_test_id("invite-password").fill(PASSWORD)
    page.get_by_test_id("invite-submit").click()


def test_an_admin_invites_someone_who_registers_from_the_link_and_is_logged_in(
        own_node: Node, new_page: NewPage) -> None:
    own_node.env["CHATNODE_REGISTRATION"] = "invite"
    node = start_with_admin(own_node)
    admin = new_page(node)
    login_as(admin, ADMIN)

    admin.get_by_text("Settings").click()
    admin.get_by_test_id("invite-create").click()
    link = admin.get_by_test_id("invite-link")
    expect(link).to_have_value(re.compile(rf"^{re.escape(node.url)}/#invite=[\w-]{{43}}$"))
    url = link.input_value()
    expect(admin.get_by_test_id("invite")).to_have_attribute("data-state", "active")

    expect_named_controls(admin, "the admin's settings")

    newcomer = new_page(node)  # another browser: nobody is logged in there, by keyboard alone
    newcomer.goto(url)
    expect_named_controls(newcomer, "the invite form")
    tab_to(newcomer, newcomer.get_by_test_id("invite-username"))
    for text in ("nora", "Nora N", PASSWORD):
        newcomer.keyboard.type(text)
        newcomer.keyboard.press("Tab")
    expect(newcomer.get_by_test_id("invite-submit")).to_be_focused()
    newcomer.keyboard.press("Enter")
    expect(connection(newcomer)).to_have_attribute("data-state", "online")
    expect(newcomer.get_by_role("navigation", name="Conversations")).to_contain_text("Nora N")
    assert "#invite=" not in newcomer.url  # the token left the address bar
    login = httpx.post(f"{node.url}/api/v1/login", timeout=10,
                       json={"username": "nora", "password": PASSWORD})
    assert login.status_code == 200, login.text

    # The same link again, elsewhere: the node's reason, and no account.
    again = new_page(node)
    open_invite(again, url, "nils", "Nils")
    expect(again.get_by_test_id("invite-error")).to_contain_text("already been used")
    expect(connection(again)).to_have_count(0)
    bogus = new_page(node)
    open_invite(bogus, f"{node.url}/#invite=not-a-real-invite", "nils", "Nils")
    expect(bogus.get_by_test_id("invite-error")).to_contain_text("not valid")

    # The admin's list shows it used; a new one can be revoked from there.
    admin.reload()
    expect(connection(admin)).to_have_attribute("data-state", "online")
    admin.get_by_text("Settings").click()
    expect(admin.get_by_test_id("invite")).to_have_attribute("data-state", "used")
    admin.get_by_test_id("invite-create").click()
    fresh = admin.locator('[data-testid="invite"][data-state="active"]')
    expect(fresh).to_have_count(1)
    fresh.get_by_test_id("invite-revoke").click()
    expect(admin.locator('[data-testid="invite"][data-state="revoked"]')).to_have_count(1)
