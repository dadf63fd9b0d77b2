"""What others see of a user (display name, avatar), and telling them live when it changes.

A change goes to everyone who shares a conversation with the user and to all the user's own
sessions as one `user_updated` frame, after it is committed.

Avatars are served as uploaded: the node never decodes an image (no imaging library, no
decoder bugs on the node), so it checks what it can without one. Only PNG, JPEG, GIF and WebP
are taken, recognised by their first bytes whatever Content-Type the client sent, and served
with the type found; at most AVATAR_BYTES. The browser app scales a picture down before it
uploads it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from .engine import Engine
from .hub import Hub
from .logs import fields
from .media import MediaFiles
from .protocol import ChatError, ErrorCode, UserUpdated
from .store import SqliteStore
from .store import sqlite as sql
from .store.records import UserRecord

log = logging.getLogger("chatnode.profiles")

AVATAR_BYTES = 1024 * 1024
# Enough of a file's start to tell these formats apart.
_HEAD_BYTES = 12


def image_type(head: bytes) -> str | None:
    """The content type of an image by its first bytes; None for anything else (SVG is
    refused on purpose: it is a document that can run script)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class SniffedImage:
    """Passes an upload through, refusing it as soon as its first bytes are not an image."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.content_type: str | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = b""
        async for chunk in self.chunks:
            if self.content_type is None:
                head += chunk
                if len(head) < _HEAD_BYTES:
                    continue
                self._check(head)
                chunk, head = head, b""
            yield chunk
        if self.content_type is None:
            self._check(head)
            yield head

    def _check(self, head: bytes) -> None:
        self.content_type = image_type(head)
        if self.content_type is None:
            raise ChatError(ErrorCode.INVALID,
                            "an avatar must be a PNG, JPEG, GIF or WebP image; nothing changed")


class Profiles:
    def __init__(self, store: SqliteStore, engine: Engine, hub: Hub, media: MediaFiles) -> None:
        self.store = store
        self.engine = engine
        self.hub = hub
        self.media = media

    async def set_display_name(self, user_id: str, display_name: str) -> None:
        name = display_name.strip()
        if not name:
            raise ChatError(ErrorCode.INVALID, "display_name must not be blank")
        self._announce(await self.store.write(sql.set_display_name, user_id, name))
        log.info("display name changed", extra=fields(user=user_id))

    async def set_avatar(self, user_id: str, chunks: AsyncIterator[bytes]) -> None:
        """Store an uploaded image as the user's avatar (see the module's docstring)."""
        sniffed = SniffedImage(chunks)
        sha256, size = await self.media.save(aiter(sniffed), AVATAR_BYTES)
        assert sniffed.content_type is not None
        self._announce(await self.store.write(sql.set_avatar, user_id,
                                              (sha256, size, sniffed.content_type)))
        log.info("avatar changed", extra=fields(user=user_id, size=size))

    async def remove_avatar(self, user_id: str) -> None:
        self._announce(await self.store.write(sql.set_avatar, user_id, None))
        log.info("avatar removed", extra=fields(user=user_id))

    def _announce(self, user: UserRecord) -> None:
        frame = UserUpdated(user.user_id, user.username, user.display_name, user.avatar_id)
        self.hub.user_updated(frame, {user.user_id} | self.engine.peers_of(user.user_id))
