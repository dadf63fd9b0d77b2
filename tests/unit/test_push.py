"""Push pieces without a node: the tests' own RFC 8291 decrypter against the RFC's example, the
node's encryption read back by it, target checks, and what a notification says."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chatnode.protocol import (
    ChatError,
    Message,
    NtfyTarget,
    PushTargetRequest,
    UnifiedPushTarget,
    WebPushKeys,
    WebPushTarget,
)
from chatnode.push import transport
from chatnode.push.payload import PREVIEW_CHARS, message_notification
from chatnode.push.targets import check_target, resolves_privately
from chatnode.store import PushTargetRecord

from ..push_receiver import PushReceiver, b64url, b64url_decode, rfc8291_decrypt

# RFC 8291, Appendix A
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_BODY = ("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLoc"
            "InmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLV"
            "WGNWQexSgSxsj_Qulcy4a-fN")


def test_the_tests_decrypter_reads_the_rfc_8291_example() -> None:
    ua_private = ec.derive_private_key(int.from_bytes(b64url_decode(RFC_UA_PRIVATE), "big"),
                                       ec.SECP256R1())
    assert rfc8291_decrypt(b64url_decode(RFC_BODY), ua_private,
                           b64url_decode(RFC_AUTH)) == RFC_PLAINTEXT


def test_what_the_node_encrypts_only_the_subscription_can_read() -> None:
    browser = PushReceiver(url="https://push.example")
    keys = browser.subscription()["keys"]
    body = transport.encrypt(b'{"hello": "browser"}', keys["p256dh"], keys["auth"])
    assert json.loads(rfc8291_decrypt(body, browser.private_key, browser.auth_secret)) == {
        "hello": "browser"}
    stranger = PushReceiver(url="https://push.example")
    with pytest.raises(Exception):  # noqa: B017 (AES-GCM refuses: cryptography's InvalidTag)
        rfc8291_decrypt(body, stranger.private_key, browser.auth_secret)


def test_the_topic_is_a_short_hash_of_the_conversation() -> None:
    topic = transport.topic_for("c_0123456789abcdef")
    assert len(topic) == 32 and topic == transport.topic_for("c_0123456789abcdef")
    assert "c_0123" not in topic and topic != transport.topic_for("c_other")


def _web(endpoint: str = "https://push.example/x", **keys: str) -> WebPushTarget:
    good = PushReceiver().subscription()["keys"]
    return WebPushTarget(endpoint, WebPushKeys(**{**good, **keys}))


@pytest.mark.parametrize(("target", "allow_http", "says"), [
    (UnifiedPushTarget("http://ntfy.lan/topic"), False, "https://"),
    (UnifiedPushTarget("ftp://ntfy.lan/topic"), True, "https:// or http://"),
    (UnifiedPushTarget("https:///no-host"), False, "no host"),
    (UnifiedPushTarget("https://user:pw@ntfy.sh/topic"), False, "credentials"),
    (UnifiedPushTarget("https://ntfy.sh:port/topic"), False, "not a URL"),
    (_web(p256dh=b64url(b"\x04" + b"\x01" * 64)), False, "P-256"),
    (_web(auth=b64url(b"short")), False, "16 bytes"),
    (NtfyTarget("https://127.0.0.1:2019/stop"), False, "private"),
    (NtfyTarget("https://[::1]/x"), False, "private"),
    (NtfyTarget("https://localhost/x"), False, "private"),
    (NtfyTarget("http://192.168.1.5/topic"), True, "private"),
    (NtfyTarget("https://169.254.169.254/latest"), False, "private"),
])
def test_bad_targets_are_refused_with_the_reason(target: PushTargetRequest, allow_http: bool,
                                                 says: str) -> None:
    with pytest.raises(ChatError) as refused:
        check_target(target, allow_http=allow_http, allow_private=False)
    assert refused.value.code == "invalid" and says in refused.value.message


def test_good_targets_pass() -> None:
    check_target(_web(), allow_http=False, allow_private=False)
    check_target(UnifiedPushTarget("https://ntfy.sh/upAbCdEf?up=1"), allow_http=False,
                 allow_private=False)
    check_target(NtfyTarget("http://192.168.1.5:8080/topic"), allow_http=True,
                 allow_private=True)


async def test_a_name_is_checked_for_what_it_resolves_to() -> None:
    assert await resolves_privately("https://localhost/x")
    assert await resolves_privately("https://127.0.0.1/x")
    assert not await resolves_privately("https://93.184.215.14/x")  # a public address


def test_an_ntfy_target_gets_a_readable_publish_to_its_server() -> None:
    target = PushTargetRecord("d1", "u1", "ntfy", "https://ntfy.example/base/alerts", None,
                              None)
    payload = message_notification(_message("dinner is ready"), 1, "full", "Bob", None)
    request = transport.build(target, payload, "c1", urgent=True, ttl_s=60, vapid=None)  # type: ignore[arg-type]
    assert request.url == "https://ntfy.example/base/"
    assert json.loads(request.body) == {"topic": "alerts", "title": "Bob",
                                        "message": "dinner is ready"}


def _message(body: str, kind: str = "text") -> Message:
    return Message("c1", 7, "u_bob", "m7", kind, body, 0)


def test_a_full_preview_says_who_wrote_what_and_where() -> None:
    payload = json.loads(message_notification(_message("dinner\n  is ready"), 3, "full", "Bob",
                                              "Family"))
    assert payload == {"type": "message", "conversation_id": "c1", "seq": 7, "unread": 3,
                       "title": "Bob in Family", "sender_id": "u_bob", "sender": "Bob",
                       "conversation_name": "Family", "body": "dinner is ready",
                       "preview": "dinner is ready"}


def test_a_long_message_is_cut_and_media_says_so() -> None:
    long = json.loads(message_notification(_message("x" * 500), 1, "full", "Bob", None))
    assert len(long["body"]) == PREVIEW_CHARS and long["body"].endswith("…")
    media = json.loads(message_notification(_message("", "media"), 1, "full", "Bob", None))
    assert media["body"] == "📎 Media" and media["title"] == "Bob"


def test_sender_only_and_nothing_previews_leave_the_words_out() -> None:
    sender = json.loads(message_notification(_message("secret"), 2, "sender", "Bob", None))
    assert sender["title"] == "Bob" and sender["body"] == "2 new messages"
    assert "preview" not in sender and "secret" not in json.dumps(sender)
    nothing = json.loads(message_notification(_message("secret"), 1, "none", "Bob", "Family"))
    assert nothing == {"type": "message", "conversation_id": "c1", "seq": 7, "unread": 1,
                       "title": "chatnode", "body": "New message"}
