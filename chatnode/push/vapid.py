"""The node's VAPID identity (RFC 8292): one P-256 key, made on first start and kept in the data
directory, that signs a short-lived token for each push service the node talks to.

Browsers bind a subscription to the public key they were given (`applicationServerKey`), so the
key must outlive restarts and upgrades: losing it silently orphans every Web Push subscription.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from .targets import b64url

KEY_FILE = "vapid_private.pem"
TOKEN_LIFETIME_S = 12 * 3600  # RFC 8292 allows at most 24 h
RENEW_BEFORE_S = 3600
TOKENS_KEPT = 256


class VapidIdentity:
    def __init__(self, key: Vapid02, contact: str) -> None:
        self._key = key
        self.contact = contact
        self.public_key = b64url(key.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        self._tokens: dict[str, tuple[float, str]] = {}

    @classmethod
    def load_or_create(cls, data_dir: Path, contact: str) -> VapidIdentity:
        path = data_dir / KEY_FILE
        if not path.exists():
            key = Vapid02()
            key.generate_keys()
            # Written whole under a temporary name, then renamed: a crash never leaves half a key.
            temporary = path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key.private_pem())
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        return cls(Vapid02.from_pem(path.read_bytes()), contact)

    def authorization(self, endpoint: str) -> str:
        """The `Authorization` header for a request to `endpoint`'s push service; one token per
        service, signed again an hour before it expires."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and cached[0] - RENEW_BEFORE_S > now:
            return cached[1]
        expires = int(now) + TOKEN_LIFETIME_S
        if len(self._tokens) >= TOKENS_KEPT:  # hosts are the users' choice: keep it bounded
            self._tokens.clear()  # signing again costs a millisecond
        header = self._key.sign({"aud": audience, "sub": self.contact, "exp": expires})
        self._tokens[audience] = (expires, header["Authorization"])
        return header["Authorization"]
