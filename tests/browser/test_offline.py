"""The node goes away under an open app: the outbox, the service worker and the cache."""

from __future__ import annotations

import itertools
import re

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    NewPage,
    connection,
    conversation_item,
    direct_chat,
    history,
    login,
    message,
    message_by_id,
    open_conversation,
    register,
    send,
    send_over_rest,
    start_chat,
    wait_for_service_worker,
)


def test_message_written_offline_goes_out_once_after_reload_and_restart(
        own_node: Node, new_page: NewPage) -> None:
    """A message written with the node down waits in the IndexedDB outbox (shown as sending),
    survives a reload of the page, and goes out on reconnect with its original client_msg_id,
    so bob gets it, and the log holds it, exactly once."""
    node = own_node.start()
    alice, bob = register(node, "alice"), register(node, "bob")
    cid = direct_chat(node, alice, bob)
    send_over_rest(node, bob, cid, "are you there?")
    a, b = new_page(node), new_page(node)
    login(a, alice)
    open_conversation(a, cid)
    login(b, bob)
    open_conversation(b, cid)
    wait_for_service_worker(a)

    node.stop()
    expect(connection(a)).to_have_attribute("data-state", "offline")
    mine = send(a, "written offline")
    expect(mine).to_have_attribute("data-status", "sending")
    assert mine.get_attribute("data-seq") is None, "no seq before the node committed it"
    cmid = mine.get_attribute("data-client-msg-id")
    assert cmid, "an own message carries its client_msg_id"

    a.reload()
    open_conversation(a, cid)
    mine = message_by_id(a, cmid)
    expect(mine).to_have_attribute("data-status", "sending")
    expect(message(a, "written offline")).to_have_count(1)

    node.restart()
    expect(mine).to_have_attribute("data-status", re.compile(r"^(sent|delivered|read)$"))
    expect(mine).to_have_attribute("data-status", "read")  # bob has the chat open
    on_bob = message(b, "written offline")
    expect(on_bob).to_have_count(1)
    expect(on_bob).to_have_attribute("data-client-msg-id", cmid)
    logged = [m for m in history(node, bob, cid) if m["body"] == "written offline"]
    assert [m["client_msg_id"] for m in logged] == [cmid]
    expect(message(a, "written offline")).to_have_count(1)
    expect(on_bob).to_have_count(1)  # and no late duplicate from a second send


def test_app_opens_from_cache_with_the_node_down(own_node: Node, new_page: NewPage) -> None:
    """The service worker serves the shell and IndexedDB the chat: a reload with the node down
    shows the app (not Chromium's error page), the conversation list and the cached messages."""
    node = own_node.start()
    alice, bob = register(node, "alice"), register(node, "bob")
    a = new_page(node)
    login(a, alice)
    start_chat(a, bob)
    expect(send(a, "before the outage")).to_have_attribute("data-status", "sent")
    cid = direct_chat(node, alice, bob)
    send_over_rest(node, bob, cid, "reply before the outage")
    expect(message(a, "reply before the outage")).to_have_count(1)
    wait_for_service_worker(a)

    node.stop()
    response = a.reload()
    assert response is not None and response.ok and response.from_service_worker, (
        f"the shell must come from the service worker: {response}")
    expect(conversation_item(a, cid)).to_be_visible()
    expect(a.get_by_test_id("login-username")).to_have_count(0)
    expect(connection(a)).not_to_have_attribute("data-state", "online")

    open_conversation(a, cid)
    mine = message(a, "before the outage")
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    expect(mine).to_have_attribute("data-status", re.compile(r"^(sent|delivered|read)$"))
    expect(message(a, "reply before the outage")).to_have_count(1)



# Before any app code runs: records when the app opens each WebSocket (performance.now(), ms),
# and makes Math.random (which only the backoff's jitter uses) return a known sequence.
SCRIPTED_RANDOM = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3]
RECORD_SOCKET_OPENS = """
window.__socketOpens = [];
const RealWebSocket = window.WebSocket;
window.WebSocket = class extends RealWebSocket {
  constructor(...args) { window.__socketOpens.push(performance.now()); super(...args); }
};
let draws = 0;
Math.random = () => SCRIPTED[draws++ % SCRIPTED.length];
""".replace("SCRIPTED", str(SCRIPTED_RANDOM))
FIRST_DELAY_MS = 500  # connection.js: the ceiling of the first wait, doubling after each


def test_reconnect_backs_off_with_jitter_and_comes_back_with_the_node(
        own_node: Node, new_page: NewPage) -> None:
    """With the node gone, the app retries with "equal jitter" backoff: the n-th wait is half
    of 500 ms * 2^n plus a random share of the other half, so retries thin out and a restarted
    node is not met by every browser at the same instant. Math.random is scripted, so each
    wait is known: a client retrying in a loop, on a fixed timer, or without jitter fails
    here. When the node is back the app is online again by itself."""
    node = own_node.start()
    alice = register(node, "alice")
    a = new_page(node)
    a.add_init_script(RECORD_SOCKET_OPENS)
    login(a, alice)

    node.stop()
    expect(connection(a)).to_have_attribute("data-state", "offline")
    a.wait_for_timeout(8_000)
    opens: list[float] = a.evaluate("window.__socketOpens")
    retries = opens[1:]  # the first is the login's session
    # Waits 0, 1, 2, 3, 4 are 475, 550, 1800, 2400 and 6800 ms: four retries in 8 s.
    assert len(retries) == 4, f"retries in 8 s: {len(retries)}, at {retries}"
    # The first wait starts at the close, which the page cannot time; the gaps between
    # retries are waits 1, 2, 3, plus the few ms a refused connection takes.
    gaps = [later - earlier for earlier, later in itertools.pairwise(retries)]
    for n, gap in enumerate(gaps, start=1):
        ceiling = FIRST_DELAY_MS * 2 ** n
        wait = ceiling / 2 + SCRIPTED_RANDOM[n] * ceiling / 2
        assert wait - 20 <= gap <= wait + 300, f"wait {n}: {gap:.0f} ms, not {wait:.0f}: {gaps}"

    node.restart()
    expect(connection(a)).to_have_attribute("data-state", "online")
