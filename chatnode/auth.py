"""Passwords (argon2) and device tokens (random, stored only as a SHA-256 hash).

A token has 256 bits of randomness, so a fast hash is enough to make a stolen database useless
for logging in; passwords are low-entropy and get argon2, run off the trio thread.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Checked against when the username does not exist, so a login for an unknown name takes as
# long as one with a wrong password and does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
