"""A real push service for the tests, on loopback: it takes the node's POSTs, records them, and
answers as told (201, a status to fail with, or nothing at all).

As a Web Push service it also plays the browser: it holds the subscription's private key and
auth secret and decrypts each payload with its own RFC 8291 code (not the node's library), so a
test reads the notification the browser would show.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def rfc8291_decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey,
                    auth_secret: bytes) -> bytes:
    """RFC 8291 §3.4 and RFC 8188 §2, one record: what a browser does with a push body."""
    salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    sender_public = body[21:21 + id_length]
    ciphertext = body[21 + id_length:]
    assert len(ciphertext) <= record_size, "a notification fits one record"
    as_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    ecdh_secret = ua_private.exchange(ec.ECDH(), as_key)
    ua_public = ua_private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ikm = _hkdf(auth_secret, ecdh_secret, b"WebPush: info\x00" + ua_public + sender_public, 32)
    key = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    padded = AESGCM(key).decrypt(nonce, ciphertext, None)
    unpadded = padded.rstrip(b"\x00")
    assert unpadded.endswith(b"\x02"), "the last record ends with delimiter 2"
    return unpadded[:-1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None = None  # decrypted (Web Push) or parsed (UnifiedPush) JSON
    at: float = field(default_factory=time.monotonic)


@dataclass
class PushReceiver:
    """Answers every POST with the next of `answers` (then 201), or holds it `hang_s` (only
    the first `hangs` of them, when that is set)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hang_s: float = 0.0
    hangs: int | None = None
    retry_after: str | None = None
    retry_after_on: tuple[int, ...] = (429, 503)
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscription(self, path: str = "/push/device-1") -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives a browser, with the node's `kind`."""
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"kind": "webpush", "endpoint": self.url + path, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth_secret)}}

    def take(self, request: Received) -> tuple[int, float]:
        with self._lock:
            if request.headers.get("content-encoding") == "aes128gcm":
                request.payload = json.loads(
                    rfc8291_decrypt(request.body, self.private_key, self.auth_secret))
            elif request.body:
                request.payload = json.loads(request.body)
            self.received.append(request)
            status = self.answers.pop(0) if self.answers else 201
            if self.hangs is not None:
                if self.hangs <= 0:
                    return status, 0.0
                self.hangs -= 1
            return status, self.hang_s

    def payloads(self, type_: str = "message") -> list[dict[str, Any]]:
        with self._lock:
            return [r.payload for r in self.received
                    if r.payload is not None and r.payload.get("type") == type_]

    async def wait_for(self, count: int, type_: str = "message", timeout: float = 10
                       ) -> list[dict[str, Any]]:
        with trio.move_on_after(timeout):
            while len(self.payloads(type_)) < count:
                await trio.sleep(0.02)
            return self.payloads(type_)
        raise AssertionError(f"{count} {type_} pushes expected, got {self.payloads(type_)}")


@contextmanager
def push_receiver(tls: ssl.SSLContext | None = None) -> Iterator[PushReceiver]:
    """A receiver listening on 127.0.0.1 (https with `tls`), in threads of its own."""
    receiver = PushReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                               self.rfile.read(length))
            status, hang_s = receiver.take(request)
            if hang_s:
                time.sleep(hang_s)
                return
            self.send_response(status)
            if receiver.retry_after is not None and status in receiver.retry_after_on:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    receiver.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
