"""Account settings in the browser: a new name and picture reach the other side live, and a
device logged out from another one is sent back to the login screen."""

from __future__ import annotations

import base64
import re

from playwright.sync_api import expect

from ..conftest import Node
from .conftest import (
    NewPage,
    conversation_item,
    direct_chat,
    expect_named_controls,
    login,
    login_all,
    register,
    rest,
)

# A real 2x2 PNG: the app scales it (a canvas) before it goes up.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARA"
                       "wQCgAf7gP9i18U1AAAAABJRU5ErkJggg==")


def test_a_new_display_name_and_picture_show_on_the_other_side_live(
        node: Node, new_page: NewPage) -> None:
    alice, bob = register(node, "alice"), register(node, "bob")
    cid = direct_chat(node, alice, bob)
    a, b = new_page(node), new_page(node)
    login_all((a, alice), (b, bob))
    expect(conversation_item(b, cid).get_by_test_id("conversation-name")).to_have_text(
        alice.username)

    # By keyboard: open the settings, type the name, Enter saves it.
    a.get_by_test_id("settings").focus()
    a.keyboard.press("Enter")
    name = a.get_by_test_id("display-name")
    expect(name).to_have_value(alice.username)
    name.fill("Alice in Wonderland")
    name.press("Enter")
    expect(a.get_by_test_id("profile-saved")).to_have_text("Name saved.")
    expect(a.get_by_test_id("my-name")).to_have_text("Alice in Wonderland")
    expect(conversation_item(b, cid).get_by_test_id("conversation-name")).to_have_text(
        "Alice in Wonderland")

    a.get_by_test_id("avatar-input").set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": PNG}])
    expect(a.get_by_test_id("profile-saved")).to_have_text("Picture saved.")
    avatar = rest(node, alice, "GET", "/me")["avatar"]
    shown = conversation_item(b, cid).get_by_test_id("avatar")
    expect(shown).to_have_attribute("data-avatar-id", avatar)
    expect(shown).to_have_attribute("src", re.compile(r"^blob:"))
    assert rest(node, bob, "GET", f"/users/by-id/{alice.user_id}")["avatar"] == avatar


def test_logging_out_another_device_from_settings_ends_its_session(
        node: Node, new_page: NewPage) -> None:
    alice = register(node, "alice")
    other, mine = new_page(node), new_page(node)
    login(other, alice)
    login(mine, alice)
    registration, other_device, my_device = (
        d["device_id"] for d in rest(node, alice, "GET", "/devices")["devices"])

    mine.get_by_test_id("settings").click()
    devices = mine.get_by_test_id("device")
    expect(devices).to_have_count(3)
    assert expect_named_controls(mine, "account settings") > 10
    current = mine.locator(f'[data-testid="device"][data-device-id="{my_device}"]')
    expect(current).to_have_attribute("data-current", "true")
    expect(current.get_by_test_id("device-log-out")).to_have_count(0)  # not this one
    mine.locator(f'[data-testid="device"][data-device-id="{other_device}"]').get_by_test_id(
        "device-log-out").click()

    expect(other.get_by_test_id("login-username")).to_be_visible()
    expect(other.get_by_text("Your session ended")).to_be_visible()
    expect(devices).to_have_count(2)
    listed = [d["device_id"] for d in rest(node, alice, "GET", "/devices")["devices"]]
    assert listed == [registration, my_device]
    expect(mine.get_by_test_id("connection")).to_have_attribute("data-state", "online")
