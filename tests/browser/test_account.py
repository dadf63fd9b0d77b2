"""The login screen: creating an account, a refused password, and logging out."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from ..conftest import PASSWORD, Node
from .conftest import (
    NewPage,
    connection,
    conversation_item,
    direct_chat,
    login,
    message,
    open_conversation,
    post_message,
    register_many,
)

COUNT_CACHED = """(store) => new Promise((resolve, reject) => {
  const open = indexedDB.open('chatnode');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    const count = db.transaction(store).objectStore(store).count();
    count.onsuccess = () => { db.close(); resolve(count.result); };
  };
})"""


def test_create_account_from_the_login_screen(node: Node, new_page: NewPage) -> None:
    """On a node with open registration, "Create account" makes the account and logs in with
    it at once; the account is real (the same name and password log in over REST)."""
    username = f"newbie{uuid.uuid4().hex[:8]}"
    p = new_page(node)
    p.goto("/")
    p.get_by_test_id("login-username").fill(username)
    p.get_by_test_id("login-password").fill(PASSWORD)
    p.get_by_test_id("register-submit").click()
    expect(connection(p)).to_have_attribute("data-state", "online")
    expect(p.get_by_role("navigation", name="Conversations")).to_contain_text(username)
    response = httpx.post(f"{node.url}/api/v1/login", timeout=10,
                          json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text


def test_wrong_password_is_refused_with_an_announced_error(
        node: Node, new_page: NewPage) -> None:
    """A wrong password keeps the login screen and says why in an alert (read out by screen
    readers), instead of failing silently or half-logging in."""
    (alice,) = register_many(node, "alice")
    p = new_page(node)
    p.goto("/")
    p.get_by_test_id("login-username").fill(alice.username)
    p.get_by_test_id("login-password").fill("not the password")
    p.get_by_test_id("login-submit").click()
    expect(p.get_by_role("alert")).to_be_visible()
    expect(p.get_by_role("alert")).not_to_be_empty()
    expect(p.get_by_test_id("login-submit")).to_be_enabled()
    expect(connection(p)).to_have_count(0)


def test_logout_leaves_nothing_of_the_user_on_the_device(node: Node, new_page: NewPage) -> None:
    """A shared computer: after alice logs out, the login screen is back, her cached
    conversations and messages are gone from IndexedDB, and carol logging in on the same
    browser sees none of alice's chats."""
    alice, bob, carol = register_many(node, "alice", "bob", "carol")
    cid = direct_chat(node, alice, bob)
    post_message(node, bob, cid, "for alice's eyes only")
    p = new_page(node)
    login(p, alice)
    open_conversation(p, cid)
    expect(message(p, "for alice's eyes only")).to_have_count(1)

    p.get_by_test_id("logout").click()
    expect(p.get_by_test_id("login-username")).to_be_visible()
    for store in ("messages", "conversations", "kv"):
        assert p.evaluate(COUNT_CACHED, store) == 0, f"{store} still holds alice's data"

    login(p, carol)
    expect(p.get_by_test_id("conversation")).to_have_count(0)
    expect(conversation_item(p, cid)).to_have_count(0)
    expect(message(p, "for alice's eyes only")).to_have_count(0)
