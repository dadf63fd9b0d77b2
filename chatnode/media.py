"""Media files on disk: streamed in, content-addressed, never held whole in memory.

Uploads land in <data_dir>/media/tmp while they stream and are hashed; the finished file is
renamed to media/<first two hex>/<sha256>, so the same bytes uploaded twice are kept once.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from .logs import fields
from .protocol import ChatError, ErrorCode

log = logging.getLogger("chatnode.media")


class MediaFiles:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "media"
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # uploads cut short by a crash
            leftover.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def save(self, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
        """Stream `chunks` to disk; (sha256, size). Over `limit` bytes: too_large, nothing
        kept."""
        digest = hashlib.sha256()
        size = 0
        temp = self.tmp / secrets.token_hex(8)
        try:
            async with await trio.open_file(temp, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise ChatError(ErrorCode.TOO_LARGE,
                                        f"upload is larger than {limit} bytes")
                    digest.update(chunk)
                    await f.write(chunk)
                await f.flush()
                await trio.to_thread.run_sync(os.fsync, f.fileno())
            sha256 = digest.hexdigest()
            final = self.path(sha256)
            final.parent.mkdir(exist_ok=True)
            await trio.to_thread.run_sync(os.replace, temp, final)
            return sha256, size
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            log.error("upload not stored", extra=fields(error=exc.strerror))
            raise ChatError(ErrorCode.INTERNAL, "the node's disk is full; nothing was stored,"
                            " retry later", http_status=503) from None
        finally:
            temp.unlink(missing_ok=True)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
