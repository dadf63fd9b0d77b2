"""Media files on disk: streamed in, content-addressed, never held whole in memory.

Uploads land in <data_dir>/media/tmp while they stream and are hashed; the finished file is
renamed to media/<first two hex>/<sha256>, so the same bytes uploaded twice are kept once.

A cluster's nodes share one media directory (`[store] media_dir`): the files are named by their
content and never change, so nodes writing the same file at once write the same bytes, and
every node serves what any of them received. Each node streams into a temporary folder of its
own there, so that a node starting does not remove another node's upload in flight.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from .logs import fields
from .protocol import ChatError, ErrorCode

log = logging.getLogger("chatnode.media")


def _node_folder(data_dir: Path) -> str:
    """A name for this node that stays the same across its restarts (so it clears what it left
    behind) and differs from every other node's sharing the directory."""
    where = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}-{where}"


class MediaFiles:
    def __init__(self, data_dir: Path, shared_root: Path | None = None) -> None:
        self.root = data_dir / "media" if shared_root is None else shared_root
        self.tmp = self.root / "tmp"
        if shared_root is not None:
            self.tmp = self.tmp / _node_folder(data_dir)
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


def copy_media_files(source_root: Path, target_root: Path) -> int:
    """`chatnode migrate`: every stored file of a node's media directory into the cluster's
    shared one, by the same names; the number of files copied. Files already there are the
    same bytes (names are their SHA-256) and are left. Each file lands under a temporary name
    and is renamed, as uploads do, so a node never serves half a file."""
    copied = 0
    for folder in sorted(source_root.glob("[0-9a-f][0-9a-f]")):
        for source in sorted(folder.iterdir()):
            target = target_root / folder.name / source.name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{source.name}.{secrets.token_hex(4)}")
            try:
                shutil.copyfile(source, temp)
                with open(temp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            copied += 1
    return copied
