"""The world the authorization matrix runs against: a direct conversation, a group and media
that belong to others, and the outsiders who must be refused.

Built once per test module (registering users hashes passwords, the slow part) and handed to
the tests as plain ids and tokens: each test opens its own HTTP and WebSocket clients in its
own trio run.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from chatnode.client import RestClient, Session

from ..conftest import Node, new_device, new_user


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: str
    token: str


@dataclass(frozen=True)
class World:
    url: str
    media_dir: Path
    alice: Actor  # admin of the group, member of the direct conversation, uploader of media
    bob: Actor  # member of both; his live session watches for anything delivered
    stranger: Actor  # eve: logged in, never a member of either
    removed: Actor  # carol: in the group until alice removed her
    logged_out: Actor  # bob's second device, after POST /api/v1/logout
    disabled: Actor  # dave: a group member whose account the admin disabled
    direct: str
    group: str
    direct_media: str
    group_media: str
    notes: str  # a group of the stranger's own, where she may send
    unknown_conversation: str = f"c_{secrets.token_hex(8)}"  # same shape as a real id
    unknown_media: str = f"m_{secrets.token_hex(8)}"

    def conversations_hidden_from(self, actor: Actor) -> list[str]:
        """The conversations this outsider must not see: the removed member was only ever in
        the group; the others are outside both."""
        return [self.group] if actor == self.removed else [self.direct, self.group]


def build_world(node: Node) -> World:
    world = trio.run(_build, node)
    # The admin's own tool, run beside the live node as an admin would.
    subprocess.run([sys.executable, "-m", "chatnode", "user", "disable", world.disabled.name,
                    *node.admin_args], check=True, capture_output=True)
    return world


async def _build(node: Node) -> World:
    alice, bob, eve, carol, dave = [
        await new_user(node, prefix) for prefix in ("alice", "bob", "eve", "carol", "dave")]
    bob_elsewhere = await new_device(node, bob)
    direct = (await alice.rest.direct(bob.user_id))["conversation_id"]
    group = (await alice.rest.group(
        "club", [bob.user_id, carol.user_id, dave.user_id]))["conversation_id"]
    notes = (await eve.rest.group("notes", []))["conversation_id"]
    await alice.rest.send(direct, "direct before")
    await alice.rest.send(group, "group before")
    direct_media = await _send_media(node, alice.rest, direct)
    group_media = await _send_media(node, alice.rest, group)
    await alice.rest.request("DELETE", f"/api/v1/conversations/{group}/members/{carol.user_id}")
    await alice.rest.send(group, "group after carol left")
    await bob_elsewhere.rest.request("POST", "/api/v1/logout")

    def actor(user: Any, name: str | None = None) -> Actor:
        return Actor(name or user.username, user.user_id, user.token)

    world = World(
        url=node.url, media_dir=node.media_dir, alice=actor(alice), bob=actor(bob),
        stranger=actor(eve), removed=actor(carol), logged_out=actor(bob_elsewhere),
        disabled=actor(dave), direct=direct, group=group, direct_media=direct_media,
        group_media=group_media, notes=notes)
    for user in (alice, bob, eve, carol, dave, bob_elsewhere):
        await user.rest.aclose()
    return world


async def _send_media(node: Node, rest: RestClient, conversation_id: str) -> str:
    async with httpx.AsyncClient(base_url=node.url) as http:
        uploaded = await http.post("/api/v1/media", content=secrets.token_bytes(64), headers={
            "Authorization": f"Bearer {rest.token}", "Content-Type": "image/png"})
    media_id: str = uploaded.json()["media_id"]
    await rest.request("POST", f"/api/v1/conversations/{conversation_id}/messages", {
        "client_msg_id": secrets.token_hex(8), "kind": "media", "media_id": media_id})
    return media_id


# --- what the owners see, before and after the outsiders tried ---------------------------------

async def ask(http: httpx.AsyncClient, token: str, method: str, path: str, body: Any = None,
              query: dict[str, str] | None = None) -> httpx.Response:
    """One request as the holder of `token`; bytes are sent as they are, anything else as
    JSON."""
    headers = {"Authorization": f"Bearer {token}"}
    if isinstance(body, bytes):
        return await http.request(method, path, content=body, params=query,
                                  headers={**headers, "Content-Type": "image/png"})
    return await http.request(method, path, json=body, params=query, headers=headers)


async def snapshot(http: httpx.AsyncClient, world: World) -> dict[str, Any]:
    """Everything the members and the outsiders can read: conversation lists (members, names,
    last_seq, markers, unread), the whole log of both conversations, and the media files on
    disk. Equal before and after means nothing changed."""
    state: dict[str, Any] = {}
    for actor in (world.alice, world.bob, world.stranger, world.removed):
        state[f"{actor.name}'s conversations"] = (
            await ask(http, actor.token, "GET", "/api/v1/conversations")).json()
    for cid in (world.direct, world.group):
        state[f"log of {cid}"] = (await ask(http, world.alice.token, "GET",
                                            f"/api/v1/conversations/{cid}/messages",
                                            query={"limit": "200"})).json()
    state["media files"] = sorted(
        p.name for p in world.media_dir.rglob("*") if p.is_file()
        and p.parent.name != "tmp")
    return state


async def assert_nothing_delivered(watcher: Session, *, about: list[str]) -> None:
    """Nothing reached this live session before the answer to a ping sent now: the node
    handles one session's frames in order, so anything published earlier is queued first.
    Presence of people unrelated to `about` may come and go, so only that is allowed."""
    fence = f"fence-{secrets.token_hex(4)}"
    await watcher.send({"type": "ping", "id": fence})
    _, before = await watcher.until(lambda f: f == {"type": "pong", "id": fence})
    leaked = [f for f in before if f["type"] != "presence" or f["user_id"] in about]
    assert leaked == []
