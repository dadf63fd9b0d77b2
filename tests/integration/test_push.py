"""Push notifications through a real node to real push receivers on loopback (tests/push_receiver):
a Web Push service over https that decrypts what it gets as the browser would, and a
UnifiedPush / ntfy server over http that records the POSTs."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trio
import trustme
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from chatnode.client import RestClient, connect
from chatnode.push.targets import is_public_address

from ..conftest import Node, User, new_device, new_user
from ..push_receiver import PushReceiver, b64url_decode, push_receiver
from .test_rest import metric

WINDOW_MS = 300


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def webpush(ca: trustme.CA) -> Iterator[PushReceiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with push_receiver(context) as receiver:
        yield receiver


@pytest.fixture
def ntfy() -> Iterator[PushReceiver]:
    with push_receiver() as receiver:
        yield receiver


NodeMaker = Callable[..., Node]


@pytest.fixture
def push_node(tmp_path: Path, ca_file: Path) -> Iterator[NodeMaker]:
    """Makes a node that trusts the receivers' CA, with a short coalescing window, and that may
    reach them on loopback; `[push]` settings as keywords. Whatever a test leaves running
    (it failed halfway, or a receiver still holds a request) is killed afterwards."""
    made: list[Node] = []

    def make(**settings: str) -> Node:
        env = {"SSL_CERT_FILE": str(ca_file), "CHATNODE_PUSH_COALESCE_MS": str(WINDOW_MS),
               "CHATNODE_PUSH_ALLOW_PRIVATE": "true",
               **{f"CHATNODE_PUSH_{k.upper()}": v for k, v in settings.items()}}
        made.append(Node(tmp_path / "data", env=env))
        return made[-1]

    yield make
    for node in made:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()


@pytest.fixture
async def node(push_node: NodeMaker) -> AsyncIterator[Node]:
    yield push_node(allow_http="true").start()


async def pair(node: Node) -> tuple[User, User, str]:
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    return alice, bob, cid


async def register(user: User, target: dict) -> dict:
    return await user.rest.request("PUT", "/api/v1/devices/me/push", target)


# --- registration -----------------------------------------------------------------------------

async def test_the_vapid_key_is_served_kept_private_and_survives_a_restart(
        tmp_path: Path, push_node: NodeMaker) -> None:
    node = push_node().start()
    key_file = tmp_path / "data" / "vapid_private.pem"
    with trio.fail_after(10):  # made at first start, before anyone asks for it
        while not key_file.exists():
            await trio.sleep(0.05)
    async with RestClient(node.url) as anyone:
        first = (await anyone.request("GET", "/api/v1/push/key"))["vapid_public_key"]
    raw = b64url_decode(first)
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point
    node.stop()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    node.start()
    async with RestClient(node.url) as anyone:
        assert (await anyone.request("GET", "/api/v1/push/key"))["vapid_public_key"] == first
    node.stop()


async def test_a_device_sets_replaces_and_removes_its_target_and_logout_removes_it(
        node: Node, webpush: PushReceiver) -> None:
    alice = await new_user(node, "alice")
    assert (await alice.rest.call("GET", "/api/v1/devices/me/push"))[0] == 404
    subscription = webpush.subscription()
    assert await register(alice, subscription) == {"kind": "webpush",
                                                   "endpoint": subscription["endpoint"]}
    ntfy_target = {"kind": "unifiedpush", "endpoint": "https://ntfy.example/upAbC?up=1"}
    await register(alice, ntfy_target)
    assert await alice.rest.request("GET", "/api/v1/devices/me/push") == ntfy_target
    assert await alice.rest.request("DELETE", "/api/v1/devices/me/push") == {}
    assert (await alice.rest.call("GET", "/api/v1/devices/me/push"))[0] == 404
    assert await alice.rest.request("DELETE", "/api/v1/devices/me/push") == {}  # idempotent

    await register(alice, subscription)
    laptop = await new_device(node, alice)
    await laptop.rest.request("POST", "/api/v1/logout")
    assert await alice.rest.request("GET", "/api/v1/devices/me/push") == {
        "kind": "webpush", "endpoint": subscription["endpoint"]}  # another device's logout
    await alice.rest.request("POST", "/api/v1/logout")
    relogin = await new_device(node, alice)
    assert (await relogin.rest.call("GET", "/api/v1/devices/me/push"))[0] == 404
    for user in (alice, laptop, relogin):
        await user.rest.aclose()


@pytest.mark.parametrize(("body", "says"), [
    ({"kind": "carrier-pigeon", "endpoint": "https://x.example"}, ""),
    ({"kind": "unifiedpush"}, "endpoint"),
    ({"kind": "unifiedpush", "endpoint": "ftp://x.example/t"}, "https://"),
    ({"kind": "webpush", "endpoint": "https://x.example/t"}, "keys"),
    ({"kind": "webpush", "endpoint": "https://x.example/t",
      "keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "P-256"),
])
async def test_a_bad_target_is_refused_and_changes_nothing(node: Node, body: dict,
                                                           says: str) -> None:
    alice = await new_user(node, "alice")
    kept = {"kind": "unifiedpush", "endpoint": "https://ntfy.example/kept"}
    await register(alice, kept)
    status, answer = await alice.rest.call("PUT", "/api/v1/devices/me/push", body)
    assert status == 400 and answer["error"]["code"] in ("invalid", "bad_frame")
    assert says in answer["error"]["message"]
    assert await alice.rest.request("GET", "/api/v1/devices/me/push") == kept
    await alice.rest.aclose()


async def test_https_and_public_addresses_are_required_unless_allowed(
        push_node: NodeMaker, ntfy: PushReceiver) -> None:
    """By default no user can make the node POST into its own network: loopback, private and
    link-local addresses are refused at registration, and a name is checked for what it
    resolves to before every request."""
    node = push_node(allow_private="false").start()
    alice, bob, cid = await pair(node)
    for endpoint, says in [("http://ntfy.example/topic", "https://"),
                           ("https://127.0.0.1:2019/stop", "private"),
                           ("https://10.0.0.1/topic", "private")]:
        status, answer = await bob.rest.call("PUT", "/api/v1/devices/me/push", {
            "kind": "ntfy", "endpoint": endpoint})
        assert status == 400 and says in answer["error"]["message"], endpoint
    # a name that this machine resolves to itself gets through registration, never a request
    port = ntfy.url.rsplit(":", 1)[1]
    hostname = socket.gethostname()
    if all(is_public_address(info[4][0]) for info in socket.getaddrinfo(hostname, None)):
        pytest.skip(f"{hostname} resolves to a public address here")
    await register(bob, {"kind": "unifiedpush", "endpoint": f"https://{hostname}:{port}/x"})
    await alice.rest.send(cid, "knock knock")
    async with RestClient(node.url) as anyone:
        with trio.fail_after(10):
            while 'chatnode_push_failed_total{kind="unifiedpush"} 1.0' not in \
                    (await anyone._http.get("/metrics")).text:
                await trio.sleep(0.05)
    assert ntfy.received == []
    await alice.rest.aclose()
    await bob.rest.aclose()


# --- waking -----------------------------------------------------------------------------------

async def test_a_burst_of_ten_makes_one_web_push_with_the_last_preview(
        node: Node, webpush: PushReceiver) -> None:
    alice, bob, cid = await pair(node)
    await register(bob, webpush.subscription())
    async with connect(node.url, alice.token) as (sending, _):
        # Pipelined on one session, as a phone's burst: the ten commit together, well within
        # one window even on a busy machine (ten REST round trips may not be).
        for i in range(10):
            await sending.send_text(cid, f"message {i}")
        for _ in range(10):
            await sending.until_type("sent")
    (shown,) = await webpush.wait_for(1)
    await trio.sleep(3 * WINDOW_MS / 1000)
    assert len(webpush.payloads()) == 1, "ten messages in one window, one notification"
    assert shown == {"type": "message", "conversation_id": cid, "seq": 10, "unread": 10,
                     "title": alice.username, "sender_id": alice.user_id,
                     "sender": alice.username, "conversation_name": None,
                     "body": "message 9", "preview": "message 9"}

    (request,) = webpush.received
    assert request.path == "/push/device-1"
    headers = request.headers
    assert headers["content-encoding"] == "aes128gcm" and headers["urgency"] == "high"
    assert int(headers["ttl"]) > 0 and len(headers["topic"]) == 32
    key = (await bob.rest.request("GET", "/api/v1/push/key"))["vapid_public_key"]
    check_vapid(headers["authorization"], key, webpush.url)
    await alice.rest.aclose()
    await bob.rest.aclose()


def check_vapid(header: str, node_key: str, audience: str) -> None:
    """RFC 8292: `vapid t=<JWT signed ES256 by the node's key>, k=<that key>`."""
    scheme, _, params = header.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == node_key
    signed, _, signature = fields["t"].rpartition(".")
    claims = json.loads(b64url_decode(signed.split(".")[1]))
    assert claims["aud"] == audience and claims["sub"].startswith("mailto:")
    raw = b64url_decode(signature)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(node_key))
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                       int.from_bytes(raw[32:], "big")),
                  signed.encode(), ec.ECDSA(hashes.SHA256()))


async def test_nobody_online_is_pushed_and_going_offline_brings_pushes_back(
        node: Node, webpush: PushReceiver) -> None:
    alice, bob, cid = await pair(node)
    await register(bob, webpush.subscription())
    laptop = await new_device(node, bob)  # bob online on another device: no push at all
    async with connect(node.url, laptop.token) as (session, _):
        await alice.rest.send(cid, "while you are here")
        await session.until_type("message")
        await trio.sleep(3 * WINDOW_MS / 1000)
    assert webpush.received == []
    await alice.rest.send(cid, "now that you are gone")
    (shown,) = await webpush.wait_for(1)
    assert shown["body"] == "now that you are gone" and shown["unread"] == 2
    for user in (alice, bob, laptop):
        await user.rest.aclose()


async def test_ntfy_gets_a_plain_post_and_the_preview_setting_is_obeyed(
        node: Node, ntfy: PushReceiver) -> None:
    alice, bob, cid = await pair(node)
    await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/up-bob?up=1"})
    me = await bob.rest.request("GET", "/api/v1/me")
    assert me["push_preview"] == "full"
    await alice.rest.send(cid, "the full words")
    (full,) = await ntfy.wait_for(1)
    assert full["body"] == "the full words"
    request = ntfy.received[0]
    assert request.path == "/up-bob?up=1" and request.headers["content-type"] == \
        "application/json" and "authorization" not in request.headers

    assert (await bob.rest.request("PATCH", "/api/v1/me", {"push_preview": "sender"}))[
        "push_preview"] == "sender"
    await alice.rest.send(cid, "secret plans")
    sender_only = (await ntfy.wait_for(2))[1]
    assert sender_only["title"] == alice.username and "secret" not in json.dumps(sender_only)

    await bob.rest.request("PATCH", "/api/v1/me", {"push_preview": "none"})
    await alice.rest.send(cid, "more secrets")
    nothing = (await ntfy.wait_for(3))[2]
    assert nothing["title"] == "chatnode" and alice.username not in json.dumps(nothing)
    status, _ = await bob.rest.call("PATCH", "/api/v1/me", {"push_preview": "everything"})
    assert status == 400 and (await bob.rest.request("GET", "/api/v1/me"))[
        "push_preview"] == "none"
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_a_group_push_names_the_group_and_skips_reactions(
        node: Node, ntfy: PushReceiver) -> None:
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    group = await alice.rest.group("Family", [bob.user_id])
    cid = group["conversation_id"]
    await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob"})
    sent = await alice.rest.send(cid, "hello family")
    (shown,) = await ntfy.wait_for(1)
    assert shown["title"] == f"{alice.username} in Family"
    await alice.rest.request("POST", f"/api/v1/conversations/{cid}/messages", {
        "client_msg_id": "r1", "kind": "reaction", "body": "👍", "target": sent["seq"]})
    await trio.sleep(3 * WINDOW_MS / 1000)
    assert len(ntfy.payloads()) == 1, "a reaction wakes nobody"
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_reading_on_one_device_clears_the_notification_on_the_others(
        node: Node, webpush: PushReceiver, ntfy: PushReceiver) -> None:
    """The phone's UnifiedPush app is told to clear; the browser is not, since a Web Push that
    shows nothing costs its subscription (the next notification replaces the old one)."""
    alice, bob, cid = await pair(node)
    phone = await new_device(node, bob)
    await register(phone, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/phone"})
    await register(bob, webpush.subscription())
    await alice.rest.send(cid, "are you there?")
    await ntfy.wait_for(1)
    await webpush.wait_for(1)
    laptop = await new_device(node, bob)
    async with connect(node.url, laptop.token) as (session, _):
        await session.read(cid, 1)
        (clear,) = await ntfy.wait_for(1, "clear")
    assert clear == {"type": "clear", "conversation_id": cid}
    clear_request = ntfy.received[-1]
    assert clear_request.headers["urgency"] == "normal"
    assert clear_request.headers["topic"] == ntfy.received[0].headers["topic"]
    await trio.sleep(3 * WINDOW_MS / 1000)
    assert webpush.payloads("clear") == []
    for user in (alice, bob, laptop, phone):
        await user.rest.aclose()


async def test_an_ntfy_topic_gets_a_readable_title_and_message(
        node: Node, ntfy: PushReceiver) -> None:
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.group("Family", [bob.user_id]))["conversation_id"]
    await register(bob, {"kind": "ntfy", "endpoint": f"{ntfy.url}/base/bob-alerts"})
    await alice.rest.send(cid, "dinner is ready 🍝")
    with trio.fail_after(10):
        while not ntfy.received:
            await trio.sleep(0.02)
    (request,) = ntfy.received
    assert request.path == "/base/"
    assert request.payload == {"topic": "bob-alerts", "title": f"{alice.username} in Family",
                               "message": "dinner is ready 🍝"}
    async with connect(node.url, bob.token) as (session, _):
        await session.read(cid, 1)
        await session.until_type("status_update")
    await trio.sleep(3 * WINDOW_MS / 1000)
    assert len(ntfy.received) == 1, "ntfy would show a clear as a message: none is sent"
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_a_removed_member_and_a_disabled_user_are_not_woken(
        node: Node, ntfy: PushReceiver) -> None:
    alice, bob, carol = [await new_user(node, n) for n in ("alice", "bob", "carol")]
    cid = (await alice.rest.group("Club", [bob.user_id, carol.user_id]))["conversation_id"]
    await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob"})
    await register(carol, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/carol"})
    await alice.rest.request("DELETE", f"/api/v1/conversations/{cid}/members/{bob.user_id}")
    subprocess.run([sys.executable, "-m", "chatnode", "user", "disable", carol.username,
                    "--data-dir", str(node.data_dir)], check=True, capture_output=True)
    await alice.rest.send(cid, "who is still here?")
    await trio.sleep(3 * WINDOW_MS / 1000)
    assert ntfy.payloads() == []
    for user in (alice, bob, carol):
        await user.rest.aclose()


async def test_read_before_the_window_closes_sends_nothing(
        push_node: NodeMaker, ntfy: PushReceiver) -> None:
    node = push_node(allow_http="true", coalesce_ms="1500").start()
    alice, bob, cid = await pair(node)
    await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob"})
    await alice.rest.send(cid, "quick one")
    async with connect(node.url, bob.token) as (session, _):
        await session.read(cid, 1)
        await session.until_type("status_update")
    await trio.sleep(2.0)
    assert ntfy.received == []
    await alice.rest.aclose()
    await bob.rest.aclose()


# --- failures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("gone", [404, 410])
async def test_gone_removes_the_target(node: Node, webpush: PushReceiver, gone: int) -> None:
    alice, bob, cid = await pair(node)
    await register(bob, webpush.subscription())
    webpush.answers = [gone]
    await alice.rest.send(cid, "to a browser that unsubscribed")
    with trio.fail_after(10):
        while (await bob.rest.call("GET", "/api/v1/devices/me/push"))[0] != 404:
            await trio.sleep(0.05)
    async with RestClient(node.url) as anyone:
        text = (await anyone._http.get("/metrics")).text
    assert metric(text, "chatnode_push_targets_removed_total") == 1
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_a_failing_push_service_is_retried_with_backoff(
        node: Node, ntfy: PushReceiver) -> None:
    """A 503 is retried after the backoff (1 s), a 429 after its Retry-After (0 here)."""
    alice, bob, cid = await pair(node)
    await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob"})
    ntfy.answers, ntfy.retry_after = [503, 429], "0"
    ntfy.retry_after_on = (429,)
    await alice.rest.send(cid, "third time lucky")
    attempts = await ntfy.wait_for(3)
    assert [a["body"] for a in attempts] == ["third time lucky"] * 3
    first, second, third = (r.at for r in ntfy.received)
    assert second - first >= 0.7, "a 503 without Retry-After waits the backoff"
    assert third - second < 0.7, "a 429 with Retry-After: 0 is retried at once"
    await trio.sleep(3 * WINDOW_MS / 1000)
    assert len(ntfy.received) == 3
    async with RestClient(node.url) as anyone:
        text = (await anyone._http.get("/metrics")).text
    assert 'chatnode_push_sent_total{kind="unifiedpush"} 1.0' in text
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_a_request_that_times_out_is_tried_again(
        push_node: NodeMaker, ntfy: PushReceiver) -> None:
    node = push_node(allow_http="true", timeout_s="1").start()
    ntfy.hang_s, ntfy.hangs = 30, 1  # the first request never gets an answer
    alice, bob, cid = await pair(node)
    await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob"})
    await alice.rest.send(cid, "are you awake?")
    first, second = await ntfy.wait_for(2)
    assert first == second and first["body"] == "are you awake?"
    gap = ntfy.received[1].at - ntfy.received[0].at
    assert gap >= 1.5, "the timeout (1 s), then the backoff (about 1 s)"
    async with RestClient(node.url) as anyone:
        text = (await anyone._http.get("/metrics")).text
    assert 'chatnode_push_sent_total{kind="unifiedpush"} 1.0' in text
    await alice.rest.aclose()
    await bob.rest.aclose()


async def test_a_dead_push_service_never_slows_sends(
        push_node: NodeMaker, ntfy: PushReceiver) -> None:
    """The push service takes the request and never answers; the node waits 60 s for it, four
    requests at a time. The sends of twenty conversations, each waking its own device, are
    answered all the same."""
    node = push_node(allow_http="true", coalesce_ms="0",
                     timeout_s="60", concurrency="4").start()
    ntfy.hang_s = 120
    alice = await new_user(node, "alice")
    cids = []
    for i in range(20):
        bob = await new_user(node, "bob")
        await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob{i}"})
        cids.append((await alice.rest.direct(bob.user_id))["conversation_id"])
        await bob.rest.aclose()
    async with connect(node.url, alice.token) as (session, _):
        with trio.fail_after(10):  # far under the push timeout
            for round_ in range(3):
                for cid in cids:
                    await session.send_text(cid, f"round {round_}")
                for _ in cids:
                    await session.until_type("sent")
            while len(ntfy.received) < 4:
                await trio.sleep(0.05)
    await trio.sleep(0.5)
    assert len(ntfy.received) == 4, "no more requests at once than `concurrency`"
    async with RestClient(node.url) as anyone:
        assert (await anyone._http.get("/healthz")).status_code == 200
    await alice.rest.aclose()


async def test_a_full_push_queue_drops_and_counts_never_blocks(
        push_node: NodeMaker, ntfy: PushReceiver) -> None:
    node = push_node(allow_http="true", queue="3", timeout_s="60").start()
    ntfy.hang_s = 120
    alice = await new_user(node, "alice")
    for i in range(6):
        bob = await new_user(node, "bob")
        await register(bob, {"kind": "unifiedpush", "endpoint": f"{ntfy.url}/bob{i}"})
        cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
        await alice.rest.send(cid, "hi")
        await bob.rest.aclose()
    async with RestClient(node.url) as anyone:
        text = (await anyone._http.get("/metrics")).text
    assert metric(text, "chatnode_push_dropped_total") == 3
    assert metric(text, "chatnode_push_queued") == 3
    await alice.rest.aclose()
