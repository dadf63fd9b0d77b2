"""Checking a push target before it is stored: a URL the node may POST to, and for Web Push a
browser key and secret that encryption can actually use. A bad one is refused with `invalid`
at registration, rather than failing silently at every message later."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from ..protocol import ChatError, ErrorCode, PushTargetRequest, WebPushTarget

AUTH_SECRET_BYTES = 16  # RFC 8291 §3.2


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def _invalid(message: str) -> ChatError:
    return ChatError(ErrorCode.INVALID, message)


def check_endpoint(endpoint: str, allow_http: bool) -> None:
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise _invalid("endpoint is not a URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise _invalid("endpoint must be an https:// URL" if not allow_http
                       else "endpoint must be an https:// or http:// URL")
    if not parts.hostname:
        raise _invalid("endpoint has no host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise _invalid("endpoint must not carry credentials or a #fragment")


def check_target(target: PushTargetRequest, allow_http: bool) -> None:
    check_endpoint(target.endpoint, allow_http)
    if not isinstance(target, WebPushTarget):
        return
    try:
        p256dh = b64url_decode(target.keys.p256dh)
        auth = b64url_decode(target.keys.auth)
    except (binascii.Error, ValueError):
        raise _invalid("keys must be base64url") from None
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise _invalid("keys.p256dh is not a P-256 public key") from None
    if len(auth) != AUTH_SECRET_BYTES:
        raise _invalid(f"keys.auth must be {AUTH_SECRET_BYTES} bytes")
