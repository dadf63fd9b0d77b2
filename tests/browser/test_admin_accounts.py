"""The node's accounts in the admin's settings, through their data-testid hooks: the admin
disables an account from the list and enables it again, promotes someone, and gives someone a
new password; each change is checked against the node over REST (logins, roles, tokens), and
the list shows what the node holds after each one."""

from __future__ import annotations

import httpx
from playwright.sync_api import Locator, Page, expect

from ..conftest import PASSWORD, Node
from .conftest import (
    ADMIN,
    NewPage,
    expect_named_controls,
    login_as,
    register,
    rest,
    start_with_admin,
)

NEW_PASSWORD = "pia's new secret"


def login_status(node: Node, username: str, password: str = PASSWORD) -> int:
    return httpx.post(f"{node.url}/api/v1/login", timeout=10,
                      json={"username": username, "password": password}).status_code


def account_row(page: Page, user_id: str) -> Locator:
    return page.locator(f'[data-testid="account"][data-user-id="{user_id}"]')


def test_an_admin_disables_enables_promotes_and_sets_a_new_password_from_the_list(
        own_node: Node, new_page: NewPage) -> None:
    node = start_with_admin(own_node)
    sam, pia = register(node, "sam"), register(node, "pia")
    admin = new_page(node)
    login_as(admin, ADMIN)

    admin.get_by_test_id("settings").click()
    result = admin.get_by_test_id("account-result")

    # The admin's own row: listed, with nothing that would lock them out.
    me = admin.locator('[data-testid="account"][data-username="root"]')
    expect(me).to_have_attribute("data-role", "admin")
    expect(me.get_by_role("button")).to_have_count(0)
    expect(account_row(admin, sam.user_id)).to_contain_text("never seen")
    expect_named_controls(admin, "the admin's accounts")

    sam_row = account_row(admin, sam.user_id)
    sam_row.get_by_test_id("account-disable").click()
    expect(sam_row).to_have_attribute("data-disabled", "true")  # as the node now says
    expect(result).to_contain_text(f"{sam.username} is disabled")
    assert login_status(node, sam.username) == 403
    sam_row.get_by_test_id("account-enable").click()
    expect(sam_row).to_have_attribute("data-disabled", "false")
    assert login_status(node, sam.username) == 200

    pia_row = account_row(admin, pia.user_id)
    pia_row.get_by_test_id("account-make-admin").click()
    expect(pia_row).to_have_attribute("data-role", "admin")
    expect(pia_row.get_by_test_id("account-make-user")).to_be_visible()
    assert rest(node, pia, "GET", "/me")["role"] == "admin"

    pia_row.get_by_test_id("account-password").click()
    expect(pia_row.get_by_test_id("account-new-password")).to_be_focused()
    expect_named_controls(admin, "the new password form")
    admin.keyboard.type(NEW_PASSWORD)
    admin.keyboard.press("Enter")
    expect(result).to_contain_text(f"New password set for {pia.username}; 1 device logged out")
    expect(result).to_contain_text("Tell them their new password")
    expect(pia_row.get_by_test_id("account-new-password")).to_have_count(0)
    assert httpx.get(f"{node.url}/api/v1/me", timeout=10, headers={
        "Authorization": f"Bearer {pia.token}"}).status_code == 401
    assert login_status(node, pia.username) == 401
    assert login_status(node, pia.username, NEW_PASSWORD) == 200
    assert login_status(node, sam.username) == 200  # nobody else's password moved
