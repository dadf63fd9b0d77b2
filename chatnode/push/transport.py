"""One push as an HTTP request: Web Push (RFC 8030, payload encrypted per RFC 8291 with
aes128gcm, signed per RFC 8292), a UnifiedPush POST of the JSON payload, or an ntfy publish.

The encryption and signing are http_ece and py_vapid, the two libraries pywebpush is made of;
pywebpush itself would add requests and aiohttp (blocking, and asyncio) only to make the POST,
which the node makes with httpx on trio.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import msgspec

from ..store import PushTargetRecord
from .targets import b64url, b64url_decode

if TYPE_CHECKING:
    from .vapid import VapidIdentity


class PushRequest:
    __slots__ = ("body", "headers", "url")

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.url = url
        self.headers = headers
        self.body = body


def topic_for(conversation_id: str) -> str:
    """RFC 8030 §5.4: a push service keeps only the latest undelivered push of a topic, so a
    device that was off gets one notification per conversation, not a pile. At most 32
    base64url characters; a hash, so the push service does not learn the conversation id."""
    return b64url(hashlib.sha256(conversation_id.encode()).digest())[:32]


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291: only the browser holding the subscription's private key can read it."""
    # Imported here: cryptography's memory is paid only once a Web Push is sent (dispatcher).
    import http_ece
    from cryptography.hazmat.primitives.asymmetric import ec

    sender_key = ec.generate_private_key(ec.SECP256R1())  # one-off, as the RFC requires
    return http_ece.encrypt(payload, private_key=sender_key, dh=b64url_decode(p256dh),
                            auth_secret=b64url_decode(auth), version="aes128gcm")


def build(target: PushTargetRecord, payload: bytes, conversation_id: str, *, urgent: bool,
          ttl_s: int, vapid: VapidIdentity | None) -> PushRequest:
    """The request for one target; `vapid` is needed for Web Push only."""
    headers = {"TTL": str(ttl_s), "Urgency": "high" if urgent else "normal",
               "Topic": topic_for(conversation_id)}
    if target.kind == "webpush":
        assert target.p256dh is not None and target.auth is not None and vapid is not None
        headers.update({"Content-Encoding": "aes128gcm",
                        "Content-Type": "application/octet-stream",
                        "Authorization": vapid.authorization(target.endpoint)})
        return PushRequest(target.endpoint, headers,
                           encrypt(payload, target.p256dh, target.auth))
    headers["Content-Type"] = "application/json"
    if target.kind == "ntfy":
        return _ntfy_publish(target.endpoint, headers, payload)
    return PushRequest(target.endpoint, headers, payload)


def _ntfy_publish(endpoint: str, headers: dict[str, str], payload: bytes) -> PushRequest:
    """ntfy shows a plain topic's body as the message: the readable title and text go as
    ntfy's JSON publish (to the server's root, naming the topic), which carries UTF-8 safely
    where headers would not."""
    shown = msgspec.json.decode(payload)
    parts = urlsplit(endpoint)
    base, _, topic = parts.path.rstrip("/").rpartition("/")
    root = urlunsplit((parts.scheme, parts.netloc, base + "/", "", ""))
    body = {"topic": topic, "title": shown["title"], "message": shown["body"]}
    return PushRequest(root, {k: v for k, v in headers.items() if k != "Topic"},
                       msgspec.json.encode(body))
