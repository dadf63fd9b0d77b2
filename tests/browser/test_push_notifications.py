"""Web Push in the browser app: the subscription handed to the node, and the service worker that
shows a push, clears it, and opens its conversation on a tap.

Headless Chromium reaches no real push service, so the browser's PushManager is replaced by one
that hands out a fixed subscription (FAKE_PUSH_MANAGER); everything after it is the app's own
code. The node's side of push, with real receivers, is tests/integration/test_push.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from playwright.sync_api import Page, Worker, expect

from ..conftest import Node
from .conftest import (
    Account,
    NewPage,
    direct_chat,
    login,
    register,
    rest,
    wait_for_service_worker,
    wait_until,
)

SUBSCRIPTION = {
    "endpoint": "https://push.example/subscription/abc",
    "expirationTime": None,
    "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8"
                       "pZGH6SRpkNtoIAiw4",
             "auth": "BTBZMqHH6r4Tts7J_aSIgg"},
}

FAKE_PUSH_MANAGER = """(subscription) => {
  let current = null;
  PushManager.prototype.getSubscription = async () => current;
  PushManager.prototype.subscribe = async (options) => {
    window.__pushSubscribeOptions = options;
    current = { options, toJSON: () => subscription, unsubscribe: async () => { current = null; } };
    return current;
  };
}"""


def push_ready_page(node: Node, new_page: NewPage, account: Account) -> Page:
    """Logged in with notifications allowed and the fake push service in place."""
    page = new_page(node)
    page.context.grant_permissions(["notifications"])
    page.add_init_script(f"({FAKE_PUSH_MANAGER})({json.dumps(SUBSCRIPTION)})")
    login(page, account)
    wait_for_service_worker(page)
    return page


def service_worker(page: Page) -> Worker:
    workers = page.context.service_workers
    return workers[0] if workers else page.context.wait_for_event("serviceworker")


def shown(worker: Worker) -> list[dict[str, Any]]:
    return worker.evaluate("""async () => (await self.registration.getNotifications())
        .map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }))""")


def test_logging_in_hands_the_subscription_to_the_node(node: Node, new_page: NewPage) -> None:
    """With notifications allowed, the app subscribes with the node's VAPID key and registers
    the subscription as this device's push target."""
    alice = register(node, "alice")
    page = push_ready_page(node, new_page, alice)
    node_key = rest(node, alice, "GET", "/push/key")["vapid_public_key"]
    wait_until(lambda: page.evaluate("window.__pushSubscribeOptions !== undefined"),
               "the app subscribed")
    key = page.evaluate("Array.from(new Uint8Array(window.__pushSubscribeOptions"
                        ".applicationServerKey))")
    assert base64.urlsafe_b64encode(bytes(key)).rstrip(b"=").decode() == node_key
    assert page.evaluate("window.__pushSubscribeOptions.userVisibleOnly") is True
    device_token = page.evaluate("window.chatnode.me.token")
    target = rest(node, Account(alice.username, alice.user_id, device_token), "GET",
                  "/devices/me/push")
    assert target == {"kind": "webpush", "endpoint": SUBSCRIPTION["endpoint"]}


def test_a_push_is_shown_replaced_per_conversation_and_cleared(
        node: Node, new_page: NewPage) -> None:
    alice, bob = register(node, "alice"), register(node, "bob")
    cid = direct_chat(node, alice, bob)
    page = push_ready_page(node, new_page, alice)
    worker = service_worker(page)
    push = {"type": "message", "conversation_id": cid, "seq": 1, "unread": 1,
            "title": "Bob", "body": "first"}
    # The first through the worker's own `push` listener, as the browser would deliver it. A
    # real push's waitUntil keeps the worker alive until the notification is up; a dispatched
    # one cannot (waitUntil is for trusted events), so the evaluation waits in the worker.
    assert worker.evaluate("""async (data) => {
      self.dispatchEvent(new PushEvent('push', { data: JSON.stringify(data) }));
      for (let i = 0; i < 200; i += 1) {
        if ((await self.registration.getNotifications()).length) return true;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return false;
    }""", push), "the push listener showed it"
    assert shown(worker)[0]["body"] == "first"
    worker.evaluate("(data) => handlePush(data)", {**push, "seq": 2, "unread": 2,
                                                  "body": "second"})
    assert shown(worker) == [{"title": "Bob", "body": "second", "tag": cid,
                              "data": {"conversation_id": cid}}]
    worker.evaluate("(data) => handlePush(data)", {"type": "clear", "conversation_id": cid})
    assert shown(worker) == []


def test_a_tap_opens_the_conversation_in_the_open_tab(node: Node, new_page: NewPage) -> None:
    alice, bob = register(node, "alice"), register(node, "bob", "Bob Builder")
    cid = direct_chat(node, alice, bob)
    page = push_ready_page(node, new_page, alice)
    expect(page.get_by_test_id("composer")).to_have_count(0)
    service_worker(page).evaluate("(cid) => openConversation(cid)", cid)
    expect(page.locator("#conversation-title")).to_have_text("Bob Builder")
    assert page.evaluate("location.hash") == f"#{cid}"


def test_the_preview_setting_is_kept_by_the_node(node: Node, new_page: NewPage) -> None:
    alice = register(node, "alice")
    page = push_ready_page(node, new_page, alice)
    page.get_by_text("Settings").click()
    page.get_by_label("Notifications show").select_option("sender")
    wait_until(lambda: rest(node, alice, "GET", "/me")["push_preview"] == "sender",
               "the node kept the setting")
    page.reload()
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online")
    page.get_by_text("Settings").click()
    expect(page.get_by_label("Notifications show")).to_have_value("sender")
