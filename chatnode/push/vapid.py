"""The node's VAPID identity (RFC 8292): one P-256 key, made on first start and kept in the data
directory, that signs a short-lived token for each push service the node talks to.

Browsers bind a subscription to the public key they were given (`applicationServerKey`), so the
key must outlive restarts and upgrades: losing it silently orphans every Web Push subscription.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .targets import b64url

if TYPE_CHECKING:
    from py_vapid import Vapid02

KEY_FILE = "vapid_private.pem"
TOKEN_LIFETIME_S = 12 * 3600  # RFC 8292 allows at most 24 h
RENEW_BEFORE_S = 3600
TOKENS_KEPT = 256


def create_key_file(path: Path) -> None:
    """Make the key unless there is one. Written whole under a temporary name and linked into
    place, which fails if the file exists: two processes racing to make it (the one at start
    and a request) end with one key, the first, and both use it."""
    if path.exists():
        return
    from py_vapid import Vapid02  # cryptography: loaded by whoever needs the key (see below)

    key = Vapid02()
    key.generate_keys()
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_pem())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


class VapidIdentity:
    def __init__(self, key: Vapid02, contact: str) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = key
        self.contact = contact
        self.public_key = b64url(key.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        self._tokens: dict[str, tuple[float, str]] = {}

    @classmethod
    def load_or_create(cls, data_dir: Path, contact: str) -> VapidIdentity:
        from py_vapid import Vapid02

        path = data_dir / KEY_FILE
        create_key_file(path)
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


if __name__ == "__main__":
    # `python -m chatnode.push.vapid DATA_DIR`: how the node makes its key on first start, in a
    # process of its own, so that the cryptography it takes stays out of the node's memory
    # until push is actually used.
    create_key_file(Path(sys.argv[1]) / KEY_FILE)
