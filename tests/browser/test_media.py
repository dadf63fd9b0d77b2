"""Attachments: a preview before sending, then the image or the file on the other side."""

from __future__ import annotations

import re

from playwright.sync_api import FilePayload, Page, expect

from ..conftest import Node
from .conftest import (
    REPO_ROOT,
    NewPage,
    direct_chat,
    login_all,
    open_conversation,
    register_many,
)

PNG = (REPO_ROOT / "chatnode" / "web" / "static" / "icons" / "icon-192.png").read_bytes()


def chat(node: Node, new_page: NewPage) -> tuple[Page, Page]:
    """alice and bob logged in, each with their direct chat open."""
    alice, bob = register_many(node, "alice", "bob")
    cid = direct_chat(node, alice, bob)
    a, b = new_page(node), new_page(node)
    login_all((a, alice), (b, bob))
    for page in (a, b):
        open_conversation(page, cid)
    return a, b


def test_image_is_previewed_then_shown_inline(node: Node, new_page: NewPage) -> None:
    """An image shows as a thumbnail in the composer before it goes (so the wrong photo can be
    removed), and arrives on the other side as an inline image that actually decodes: the
    bytes need the bearer token, so a broken fetch would show an empty <img>."""
    a, b = chat(node, new_page)
    photo: FilePayload = {"name": "beach.png", "mimeType": "image/png", "buffer": PNG}
    a.get_by_test_id("attach").set_input_files(photo)
    preview = a.get_by_test_id("attachment-preview")
    expect(preview).to_contain_text("beach.png")
    thumbnail = preview.locator("img")
    expect(thumbnail).to_be_visible()
    a.wait_for_function("img => img.complete && img.naturalWidth > 0",
                        arg=thumbnail.element_handle())
    a.get_by_test_id("send").click()
    expect(preview).to_have_count(0)

    image = b.get_by_test_id("message").get_by_test_id("media-image")
    expect(image).to_have_count(1)
    expect(image).to_be_visible()
    b.wait_for_function("img => img.complete && img.naturalWidth === 192",
                        arg=image.element_handle())
    expect(a.get_by_test_id("message").get_by_test_id("media-image")).to_be_visible()


def test_file_with_caption_arrives_as_a_download_link(node: Node, new_page: NewPage) -> None:
    """Anything but a raster image is offered as a download, never rendered (an SVG or HTML
    blob would run with the app's origin); the caption typed with it is what bob reads."""
    a, b = chat(node, new_page)
    notes: FilePayload = {"name": "notes.txt", "mimeType": "text/plain",
                          "buffer": b"buy milk\nbuy bread\n"}
    a.get_by_test_id("attach").set_input_files(notes)
    preview = a.get_by_test_id("attachment-preview")
    expect(preview).to_contain_text("notes.txt")
    expect(preview.locator("img")).to_have_count(0)
    composer = a.get_by_test_id("composer")
    composer.fill("the shopping list")
    composer.press("Enter")
    expect(preview).to_have_count(0)

    link = b.get_by_test_id("media-file")
    expect(link).to_have_count(1)
    expect(link).to_contain_text("the shopping list")
    expect(link).to_have_attribute("href", re.compile(r"^blob:"))
    expect(b.get_by_test_id("media-image")).to_have_count(0)
    downloaded = b.evaluate("url => fetch(url).then((r) => r.text())",
                            link.get_attribute("href"))
    assert downloaded == "buy milk\nbuy bread\n"
