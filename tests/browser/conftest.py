"""Browser tests: the web app in Debian's Chromium, driven by Playwright's sync API.

The project runs pytest-trio in trio mode, so the async `alice`/`bob` fixtures are no use here:
these tests are plain `def` functions, make their users over plain REST (httpx, sync) and log
them in through the UI like a person would. One Chromium serves every test; each user of each
test gets a browser context of its own, which is a clean profile (own IndexedDB, service worker,
storage), so two users in one test are two separate "devices".

Playwright must never download a browser here: we launch the system Chromium by path, and skip
(with the reason) when it is not installed. `scripts/test` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    WebSocket,
    expect,
    sync_playwright,
)

from ..conftest import PASSWORD, Node

# Debian's package puts it in /usr/bin; CHATNODE_TEST_CHROMIUM points elsewhere if need be.
CHROMIUM = Path(os.environ.get("CHATNODE_TEST_CHROMIUM")
                or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
                or shutil.which("chromium") or "/usr/bin/chromium")
# No sandbox (containers, root), no GPU (headless CI), and none of Chromium's own background
# traffic (updates, sync, QUIC probes) so that a stopped node is the only thing that fails.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# Generous: the app reconnects with backoff, and a 2-core CI machine runs Chromium and the node.
TIMEOUT_MS = 20_000
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
WIDE: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Installed in every page before the app's scripts run. It records every value the data-status
# attribute of every message element ever had, in order, in window.__statuses as
# [client_msg_id, status] pairs. Polling with expect() could miss a state that lasts a few
# milliseconds ("sending" on a fast loopback); a MutationObserver sees them all: each attribute
# record carries the value before the change (oldValue), and after a batch the current value of
# every touched element is appended, so the whole history is reconstructed even when several
# changes land between two callbacks. Repeats are collapsed on the Python side.
STATUS_RECORDER = """
(() => {
  window.__statuses = [];
  const SELECTOR = '[data-testid="message"]';
  const record = (el, status) => {
    if (status === null || status === undefined) return;
    window.__statuses.push([el.getAttribute('data-client-msg-id'), status]);
  };
  const observer = new MutationObserver((records) => {
    const touched = new Set();
    for (const r of records) {
      if (r.type === 'attributes') {
        if (!r.target.matches || !r.target.matches(SELECTOR)) continue;
        record(r.target, r.oldValue);
        touched.add(r.target);
      } else {
        for (const node of r.addedNodes) {
          if (node.nodeType !== Node.ELEMENT_NODE) continue;
          if (node.matches(SELECTOR)) touched.add(node);
          for (const el of node.querySelectorAll(SELECTOR)) touched.add(el);
        }
      }
    }
    for (const el of touched) record(el, el.getAttribute('data-status'));
  });
  observer.observe(document, { subtree: true, childList: true, attributes: true,
                               attributeOldValue: true, attributeFilter: ['data-status'] });
})();
"""


@dataclass
class Account:
    """A user made over REST; the browser logs in with `username` and PASSWORD (a new device)."""

    username: str
    user_id: str
    token: str


def register(node: Node, prefix: str, display_name: str | None = None) -> Account:
    """A fresh user on `node` (tests run nodes with open registration). The random suffix keeps
    users of the shared node apart; `display_name` is for screenshots a person looks at."""
    username = f"{prefix}{uuid.uuid4().hex[:8]}"
    body: dict[str, str] = {"username": username, "password": PASSWORD}
    if display_name is not None:
        body["display_name"] = display_name
    response = httpx.post(f"{node.url}/api/v1/register", json=body, timeout=10)
    response.raise_for_status()
    auth = response.json()
    return Account(username, auth["user_id"], auth["token"])


def register_many(node: Node, *prefixes: str) -> list[Account]:
    """Several fresh users at once (the node hashes their passwords in parallel threads)."""
    with ThreadPoolExecutor(len(prefixes)) as pool:
        return list(pool.map(lambda prefix: register(node, prefix), prefixes))


def rest(node: Node, account: Account, method: str, path: str,
         body: dict[str, Any] | None = None) -> Any:
    """One authenticated REST call as `account`: how tests set things up and check the log."""
    response = httpx.request(method, f"{node.url}/api/v1{path}", json=body, timeout=10,
                             headers={"Authorization": f"Bearer {account.token}"})
    response.raise_for_status()
    return response.json()


def direct_chat(node: Node, account: Account, other: Account) -> str:
    """The id of the direct conversation of the pair (created if needed; idempotent)."""
    return rest(node, account, "POST", "/conversations",
                {"kind": "direct", "members": [other.user_id]})["conversation_id"]


def send_over_rest(node: Node, account: Account, conversation_id: str, text: str) -> None:
    """A message from a user who has no browser open (the other side of a chat)."""
    rest(node, account, "POST", f"/conversations/{conversation_id}/messages",
         {"conversation_id": conversation_id, "client_msg_id": str(uuid.uuid4()), "body": text})


def history(node: Node, account: Account, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's log as the server has it: the ground truth for "exactly once"."""
    return rest(node, account, "GET",
                f"/conversations/{conversation_id}/messages?limit=200")["messages"]


def exact_text(text: str) -> re.Pattern[str]:
    """A pattern for an element whose whole text is `text` (not a longer message containing it)."""
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def message(page: Page, text: str) -> Locator:
    """The message elements whose body is exactly `text`."""
    return page.get_by_test_id("message").filter(
        has=page.get_by_test_id("message-body").filter(has_text=exact_text(text)))


def message_by_id(page: Page, client_msg_id: str) -> Locator:
    """One message by the id its sender chose: stable from "sending" to "read"."""
    return page.locator(f'[data-testid="message"][data-client-msg-id="{client_msg_id}"]')


def conversation_item(page: Page, conversation_id: str) -> Locator:
    """A conversation's entry in the list."""
    return page.locator(
        f'[data-testid="conversation"][data-conversation-id="{conversation_id}"]')


def connection(page: Page) -> Locator:
    """The connection indicator; data-state is online only after the server's `synced`."""
    return page.get_by_test_id("connection")


def login(page: Page, account: Account) -> None:
    """Log in through the login screen, and wait until the catch-up is over."""
    login_as(page, account.username)


def login_as(page: Page, username: str) -> None:
    page.goto("/")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(connection(page)).to_have_attribute("data-state", "online")


ADMIN = "root"


def start_with_admin(own_node: Node) -> Node:
    """`own_node` started with an admin, ADMIN, made as a node's first one is (`chatnode user
    add --admin`); a page logs in as it with `login_as(page, ADMIN)`."""
    subprocess.run([sys.executable, "-m", "chatnode", "user", "add", ADMIN, "--password",
                    PASSWORD, "--admin", "--data-dir", str(own_node.data_dir)],
                   check=True, capture_output=True)
    return own_node.start()


def login_all(*logins: tuple[Page, Account]) -> None:
    """`login` for several pages at once, as several people would: every page loads and
    submits its form before the first one is waited for, so the loads, the password checks
    (the node hashes in a thread) and the catch-ups overlap instead of adding up."""
    for page, _ in logins:
        page.goto("/", wait_until="commit")
    for page, account in logins:
        page.get_by_test_id("login-username").fill(account.username)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
    for page, _ in logins:
        expect(connection(page)).to_have_attribute("data-state", "online")


def start_chat(page: Page, other: Account) -> None:
    """Start (or open) the direct chat with `other` through the new-chat form."""
    page.get_by_test_id("new-chat").click()
    page.get_by_test_id("new-chat-username").fill(other.username)
    page.get_by_test_id("new-chat-submit").click()
    expect(page.get_by_test_id("composer")).to_be_visible()


def open_conversation(page: Page, conversation_id: str) -> None:
    """Click a conversation in the list and wait until it is open."""
    conversation_item(page, conversation_id).click()
    expect(page.get_by_test_id("composer")).to_be_visible()


def send(page: Page, text: str) -> Locator:
    """Type into the composer and press Enter; the new message element (one, by its text)."""
    composer = page.get_by_test_id("composer")
    composer.fill(text)
    composer.press("Enter")
    sent = message(page, text)
    expect(sent).to_have_count(1)
    return sent


def wait_for_service_worker(page: Page) -> None:
    """Wait until the service worker is active: its install step has cached the whole shell,
    so from here a reload works with the node down. Stopping the node earlier would test a
    race, not the app."""
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")


def statuses(page: Page, client_msg_id: str) -> list[str]:
    """Every data-status the message ever had on this page (since its last load), repeats
    collapsed: e.g. ["sending", "sent", "delivered", "read"]."""
    seen: list[list[str]] = page.evaluate("window.__statuses")
    collapsed: list[str] = []
    for cmid, status in seen:
        if cmid == client_msg_id and (not collapsed or collapsed[-1] != status):
            collapsed.append(status)
    return collapsed


# Notifications and tab visibility, as a test needs them: window.Notification is replaced by a
# stub that records every notification in window.__notifications (permission "granted"), and
# document.hidden / visibilityState follow window.__hidden, which `set_hidden` flips (and
# announces with a visibilitychange event, as a browser does). Headless Chromium's own tabs are
# always "visible", so this is the only way to test what the app does in a background tab.
FAKE_NOTIFICATIONS_AND_VISIBILITY = """
(() => {
  window.__notifications = [];
  window.__hidden = false;
  class RecordingNotification {
    constructor(title, options = {}) {
      window.__notifications.push({ title, body: options.body ?? null, tag: options.tag ?? null });
      this.onclick = null;
    }
    close() {}
  }
  RecordingNotification.permission = 'granted';
  RecordingNotification.requestPermission = async () => 'granted';
  window.Notification = RecordingNotification;
  Object.defineProperty(Document.prototype, 'hidden',
    { configurable: true, get: () => window.__hidden });
  Object.defineProperty(Document.prototype, 'visibilityState',
    { configurable: true, get: () => (window.__hidden ? 'hidden' : 'visible') });
})();
"""


def fake_notifications_and_visibility(page: Page) -> None:
    """Install FAKE_NOTIFICATIONS_AND_VISIBILITY for every later load of `page` (call it before
    `login`); the notifications permission is granted too, as a user clicking "Allow" would."""
    page.context.grant_permissions(["notifications"])
    page.context.add_init_script(FAKE_NOTIFICATIONS_AND_VISIBILITY)


def set_hidden(page: Page, hidden: bool) -> None:
    """Send the (faked) tab to the background or bring it back, firing visibilitychange."""
    page.evaluate("""(hidden) => {
      window.__hidden = hidden;
      document.dispatchEvent(new Event('visibilitychange'));
    }""", hidden)


def notifications(page: Page) -> list[dict[str, Any]]:
    """The notifications the page created so far (with FAKE_NOTIFICATIONS_AND_VISIBILITY)."""
    return page.evaluate("window.__notifications")


def post_message(node: Node, account: Account, conversation_id: str, body: str = "",
                 **fields: Any) -> dict[str, Any]:
    """Any `send` over REST (text, reaction, edit, delete: `kind=`, `target=`, `reply_to=`);
    the `sent` answer, whose `seq` later events can target."""
    return rest(node, account, "POST", f"/conversations/{conversation_id}/messages",
                {"conversation_id": conversation_id, "client_msg_id": str(uuid.uuid4()),
                 "body": body, **fields})


def conversation_info(node: Node, account: Account, conversation_id: str) -> dict[str, Any]:
    """One conversation as `account` sees it over REST (markers, my_read_seq, unread)."""
    return rest(node, account, "GET", f"/conversations/{conversation_id}")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    """Poll a server-side condition (REST) until it holds; fails with `what`. For facts the
    page does not show, e.g. that the node has a reader's `read` before checking that a tick
    did not move."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


CACHED_CONVERSATION = """(cid) => new Promise((resolve, reject) => {
  const open = indexedDB.open('chatnode');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    const get = db.transaction('conversations').objectStore('conversations').get(cid);
    get.onsuccess = () => { db.close(); resolve(get.result ?? null); };
    get.onerror = () => { db.close(); reject(get.error); };
  };
})"""


def wait_for_cached_seq(page: Page, conversation_id: str, seq: int) -> None:
    """Wait until the page's IndexedDB cache says it has the conversation up to `seq` (the app
    writes it shortly after a burst of frames), e.g. before a reload that must start from it.
    (wait_for_function cannot do this: it does not await a promise, and IndexedDB is async.)"""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        record = page.evaluate(CACHED_CONVERSATION, conversation_id)
        if record is not None and record.get("have_seq", 0) >= seq:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the cache never had {conversation_id} up to {seq}: {record}")
        page.wait_for_timeout(50)


class FrameLog:
    """Every WebSocket frame a page sends and receives (JSON decoded), across reconnects and
    reloads, in order. Playwright delivers the events while the test calls into it (expect,
    clicks), so read the lists after an expect() that implies the frames came."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._attach)

    def _attach(self, ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: self._add(self.sent, payload))
        ws.on("framereceived", lambda payload: self._add(self.received, payload))

    @staticmethod
    def _add(frames: list[dict[str, Any]], payload: str | bytes) -> None:
        if isinstance(payload, str):
            frames.append(json.loads(payload))

    def clear(self) -> None:
        self.sent.clear()
        self.received.clear()

    def sent_of(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.sent if f.get("type") == type_]

    def received_of(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == type_]


def tab_to(page: Page, target: Locator, max_presses: int = 40) -> None:
    """Press Tab until `target` has the focus, as a keyboard user would; fails if it never
    gets it within `max_presses` (unreachable by keyboard)."""
    for _ in range(max_presses):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement && document.activeElement.outerHTML")
    raise AssertionError(f"{target} not reached in {max_presses} Tab presses; "
                         f"the focus is on {str(focused)[:200]}")


def expect_named_controls(page: Page, where: str) -> int:
    """Every visible button, input, textarea and select on the page has a non-empty accessible
    name (what a screen reader announces); returns how many were checked. `where` names the
    screen in the failure message."""
    checked = 0
    for control in page.locator("button, input, textarea, select").all():
        if not control.is_visible():
            continue
        html = control.evaluate("el => el.outerHTML.slice(0, 200)")
        expect(control, f"{where}: no accessible name for {html}").to_have_accessible_name(
            re.compile(r"\S"), timeout=2_000)
        checked += 1
    return checked


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's driver process, for the browser tests only (package scope, so that it is
    gone before the trio tests run)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: the browser tests need Debian's chromium "
                    "(apt-get install chromium; scripts/test installs it)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """One headless system Chromium for every browser test: launching costs seconds, contexts
    cost milliseconds and are just as isolated."""
    expect.set_options(timeout=TIMEOUT_MS)
    chromium = playwright_driver.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class NewPage(Protocol):
    """The `new_page` fixture's factory: one fresh context and page on `node`."""

    def __call__(self, node: Node, viewport: ViewportSize = ...) -> Page: ...


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[NewPage]:
    """Makes a page in a fresh context (a new "device") on a node: `new_page(node, PHONE)`.

    Every page records message statuses (STATUS_RECORDER) and its console errors; when the test
    fails, those errors are printed (pytest shows them with the failure) and each page is
    screenshotted to test-artifacts/browser/failures/, so a failure against the app says what
    the app did, not only which selector timed out.
    """
    contexts: list[BrowserContext] = []
    pages: list[tuple[Page, list[str]]] = []

    def make(node: Node, viewport: ViewportSize = WIDE) -> Page:
        context = browser.new_context(base_url=node.url, viewport=viewport)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(STATUS_RECORDER)
        contexts.append(context)
        page = context.new_page()
        log: list[str] = []

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type in ("error", "warning"):
                log.append(f"console.{msg.type}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: log.append(f"uncaught: {exc}"))
        pages.append((page, log))
        return page

    yield make

    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        failures = ARTIFACTS / "failures"
        failures.mkdir(parents=True, exist_ok=True)
        for i, (page, log) in enumerate(pages):
            print(f"--- page {i} ({page.url}) ---", *log, sep="\n")
            try:
                page.screenshot(path=failures / f"{request.node.name}-{i}.png", full_page=True)
            except Error as exc:
                print(f"no screenshot of page {i}: {exc}")
    for context in contexts:
        context.close()
