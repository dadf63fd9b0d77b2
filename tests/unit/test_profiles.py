"""Telling an avatar's format by its first bytes, however the upload is cut into pieces."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from chatnode.profiles import SniffedImage, image_type
from chatnode.protocol import ChatError

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChw"
                       "GA60e6kgAAAABJRU5ErkJggg==")


@pytest.mark.parametrize(("head", "found"), [
    (PNG, "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00", "image/gif"),
    (b"GIF87a\x01\x00\x01\x00\x00\x00", "image/gif"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', None),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
    (b"\x89PNG", None),
    (b"", None),
])
def test_only_raster_images_are_recognised(head: bytes, found: str | None) -> None:
    assert image_type(head) == found


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("size", [1, 5, 12, 13, 4096])
async def test_an_image_passes_through_whole_whatever_its_pieces(size: int) -> None:
    sniffed = SniffedImage(_pieces(PNG, size))
    assert b"".join([chunk async for chunk in sniffed]) == PNG
    assert sniffed.content_type == "image/png"


async def test_anything_else_is_refused_before_its_first_byte_goes_on() -> None:
    passed: list[bytes] = []
    with pytest.raises(ChatError) as refused:
        async for chunk in SniffedImage(_pieces(b"MZ\x90\x00 an executable" * 100, 7)):
            passed.append(chunk)
    assert refused.value.code == "invalid" and passed == []
