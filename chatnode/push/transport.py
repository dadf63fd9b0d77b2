"""One push as an HTTP request: Web Push (RFC 8030, payload encrypted per RFC 8291 with
aes128gcm, signed per RFC 8292) or a plain UnifiedPush / ntfy POST.

The encryption and signing are http_ece and py_vapid, the two libraries pywebpush is made of;
pywebpush itself would add requests and aiohttp (blocking, and asyncio) only to make the POST,
which the node makes with httpx on trio.
"""

from __future__ import annotations

import hashlib

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from ..store import PushTargetRecord
from .targets import b64url_decode
from .vapid import VapidIdentity, b64url


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
    sender_key = ec.generate_private_key(ec.SECP256R1())  # one-off, as the RFC requires
    return http_ece.encrypt(payload, private_key=sender_key, dh=b64url_decode(p256dh),
                            auth_secret=b64url_decode(auth), version="aes128gcm")


def build(target: PushTargetRecord, payload: bytes, conversation_id: str, *, urgent: bool,
          ttl_s: int, vapid: VapidIdentity) -> PushRequest:
    headers = {"TTL": str(ttl_s), "Urgency": "high" if urgent else "normal",
               "Topic": topic_for(conversation_id)}
    if target.kind == "webpush":
        assert target.p256dh is not None and target.auth is not None
        headers.update({"Content-Encoding": "aes128gcm",
                        "Content-Type": "application/octet-stream",
                        "Authorization": vapid.authorization(target.endpoint)})
        return PushRequest(target.endpoint, headers,
                           encrypt(payload, target.p256dh, target.auth))
    headers["Content-Type"] = "application/json"
    return PushRequest(target.endpoint, headers, payload)
