"""The admin CLI beside a running node reaches the sessions already open: `user disable` and
`user password` write the store from their own process, and the node, which polls for such
changes (account_watch.py), closes the account's live sessions with 4001 within a second or
two. `user enable` lets the same tokens back in. Nobody else's session is touched."""

from __future__ import annotations

from chatnode.client import connect

from ..conftest import PASSWORD, Node
from .account_helpers import close_code, still_open, token_status
from .test_lifecycle import add_user, chatnode, closed_node, err, login_status, out

NEW_PASSWORD = "a brand new one"


async def test_disable_closes_live_sessions_and_enable_lets_the_same_token_back(
        own_node: Node) -> None:
    node = closed_node(own_node).start()
    for name in ("mia", "ned"):
        await add_user(node.data_dir, name)
    _, mia = await login_status(node.url, "mia")
    _, ned = await login_status(node.url, "ned")
    async with connect(node.url, mia["token"]) as (mia_ws, _), \
            connect(node.url, ned["token"]) as (ned_ws, _):
        disabled = await chatnode("user", "disable", "mia", "--data-dir", str(node.data_dir))
        assert disabled.returncode == 0, err(disabled)
        assert await close_code(mia_ws) == 4001
        assert await still_open(ned_ws)
    assert await token_status(node.url, mia["token"]) == 401

    enabled = await chatnode("user", "enable", "MIA", "--data-dir", str(node.data_dir))
    assert enabled.returncode == 0 and out(enabled).strip() == "enabled MIA", err(enabled)
    assert await token_status(node.url, mia["token"]) == 200
    async with connect(node.url, mia["token"]) as (mia_ws, frames):
        assert frames[0]["user_id"] == mia["user_id"]
        # the re-check after the change is over: the session stays
        assert await still_open(mia_ws)
    assert (await login_status(node.url, "mia"))[0] == 200


async def test_a_password_reset_logs_out_every_device_and_closes_their_sessions(
        own_node: Node) -> None:
    node = closed_node(own_node).start()
    await add_user(node.data_dir, "oli")
    await add_user(node.data_dir, "pam")
    _, phone = await login_status(node.url, "oli")
    _, laptop = await login_status(node.url, "oli")
    _, pam = await login_status(node.url, "pam")
    async with connect(node.url, phone["token"]) as (phone_ws, _), \
            connect(node.url, laptop["token"]) as (laptop_ws, _), \
            connect(node.url, pam["token"]) as (pam_ws, _):
        reset = await chatnode("user", "password", "oli", "--password-stdin",
                               "--data-dir", str(node.data_dir), stdin=NEW_PASSWORD + "\n")
        assert reset.returncode == 0, err(reset)
        assert out(reset).strip() == "new password for oli; logged out 2 devices"
        assert await close_code(phone_ws) == 4001
        assert await close_code(laptop_ws) == 4001
        assert await still_open(pam_ws)
    assert await token_status(node.url, phone["token"]) == 401
    assert await token_status(node.url, laptop["token"]) == 401
    assert (await login_status(node.url, "oli"))[0] == 401  # the old password
    status, fresh = await login_status(node.url, "oli", NEW_PASSWORD)
    assert status == 200 and await token_status(node.url, fresh["token"]) == 200
    assert await token_status(node.url, pam["token"]) == 200


async def test_a_password_reset_refuses_a_short_password_and_an_unknown_user(
        own_node: Node) -> None:
    data = str(own_node.data_dir)
    await add_user(own_node.data_dir, "quin")
    short = await chatnode("user", "password", "quin", "--password", "short", "--data-dir", data)
    assert short.returncode != 0 and "invalid password" in err(short)
    missing = await chatnode("user", "password", "nobody", "--password", NEW_PASSWORD,
                             "--data-dir", data)
    assert missing.returncode != 0 and "no user named 'nobody'" in err(missing)
    unknown = await chatnode("user", "enable", "nobody", "--data-dir", data)
    assert unknown.returncode != 0 and "no user named 'nobody'" in err(unknown)
    node = closed_node(own_node).start()
    assert (await login_status(node.url, "quin", PASSWORD))[0] == 200  # unchanged
