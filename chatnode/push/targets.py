"""Checking a push target: a URL the node may POST to, and for Web Push a browser key and
secret that encryption can actually use. A bad one is refused with `invalid` at registration,
rather than failing silently at every message later.

Any user may register a target, and the node then POSTs to it: without a rule, a user could
make the node reach services only it can reach (an admin API on localhost, a router's web page).
So an endpoint must be on a public address unless `[push] allow_private` says otherwise: its
host is checked at registration when it is an address or `localhost`, and every request checks
again what the name resolves to, since a name can point anywhere later.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from urllib.parse import urlsplit

import trio

from ..protocol import ChatError, ErrorCode, PushTargetRequest, WebPushTarget

AUTH_SECRET_BYTES = 16  # RFC 8291 §3.2


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def _invalid(message: str) -> ChatError:
    return ChatError(ErrorCode.INVALID, message)


def is_public_address(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_global


def _private_by_name(host: str) -> bool:
    """Whether a host is private without asking DNS: an address literal that is not global,
    or a name for this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not is_public_address(host)
    except ValueError:
        return False  # a name: checked when it is resolved


async def resolves_privately(url: str) -> bool:
    """Whether any address `url`'s host resolves to is not a public one (or it resolves to
    nothing). The check runs just before a request; httpx resolves again, so a name that
    changes between the two could still slip through: that window is milliseconds."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _private_by_name(host):
        return True
    try:
        infos = await trio.socket.getaddrinfo(host, parts.port or 443,
                                              type=socket.SOCK_STREAM)
    except OSError:
        return False  # the request itself will fail, and be retried, as any network error
    return not infos or any(not is_public_address(str(info[4][0])) for info in infos)


def check_endpoint(endpoint: str, *, allow_http: bool, allow_private: bool) -> None:
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
    if not allow_private and _private_by_name(parts.hostname):
        raise _invalid("endpoint is on a private network; the node's [push] allow_private"
                       " setting permits that")


def check_target(target: PushTargetRequest, *, allow_http: bool, allow_private: bool) -> None:
    check_endpoint(target.endpoint, allow_http=allow_http, allow_private=allow_private)
    if not isinstance(target, WebPushTarget):
        return
    # Imported only here: cryptography costs memory a node without Web Push never needs.
    from cryptography.hazmat.primitives.asymmetric import ec
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
