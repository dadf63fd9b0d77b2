"""Media: uploads streamed to disk, sent as messages, fetched only by those who may see them."""

import os

import httpx

from chatnode.client import connect

from ..conftest import Node, User, new_user


async def upload(node: Node, user: User, data: bytes, content_type: str = "image/png"
                 ) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url) as http:
        return await http.post("/api/v1/media", content=data, headers={
            "Authorization": f"Bearer {user.token}", "Content-Type": content_type})


async def fetch(node: Node, user: User, media_id: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url) as http:
        return await http.get(f"/api/v1/media/{media_id}",
                              headers={"Authorization": f"Bearer {user.token}", **headers})


async def test_media_is_sent_fetched_by_members_only_and_gone_when_deleted(
        node: Node, alice: User, bob: User) -> None:
    stranger = await new_user(node, "stranger")
    picture = os.urandom(300_000)
    uploaded = await upload(node, alice, picture)
    assert uploaded.status_code == 201
    info = uploaded.json()
    assert (info["size"], info["content_type"]) == (len(picture), "image/png")
    media_id = info["media_id"]
    assert (await fetch(node, bob, media_id)).status_code == 404  # not sent yet

    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    async with connect(node.url, bob.token) as (b, _):
        status, body = await bob.rest.call(
            "POST", f"/api/v1/conversations/{cid}/messages",
            {"client_msg_id": "steal", "kind": "media", "media_id": media_id})
        assert (status, body["error"]["code"]) == (400, "invalid")  # not bob's upload
        sent = await alice.rest.request(
            "POST", f"/api/v1/conversations/{cid}/messages",
            {"client_msg_id": "pic", "kind": "media", "media_id": media_id, "body": "look"})
        message, _ = await b.until_type("message")
        assert (message["kind"], message["media_id"], message["body"]) == (
            "media", media_id, "look")

    whole = await fetch(node, bob, media_id)
    assert whole.status_code == 200 and whole.content == picture
    assert whole.headers["content-type"] == "image/png"
    assert "immutable" in whole.headers["cache-control"]
    part = await fetch(node, bob, media_id, Range="bytes=100-199")
    assert part.status_code == 206 and part.content == picture[100:200]
    assert (await fetch(node, stranger, media_id)).status_code == 404
    assert (await fetch(node, bob, "m_doesnotexist")).status_code == 404

    await alice.rest.request("POST", f"/api/v1/conversations/{cid}/messages", {
        "client_msg_id": "unpic", "kind": "delete", "target": sent["seq"]})
    assert (await fetch(node, bob, media_id)).status_code == 404
    assert (await fetch(node, alice, media_id)).status_code == 200  # still the uploader's
    (stored,) = [m for m in (await bob.rest.history(cid))["messages"] if m["seq"] == 1]
    assert "media_id" not in stored and stored["body"] == ""
    await stranger.rest.aclose()


async def test_uploads_over_the_limit_are_refused_and_the_same_bytes_kept_once(
        own_node: Node) -> None:
    own_node.env["CHATNODE_LIMITS_UPLOAD_BYTES"] = "100000"
    node = own_node.start()
    alice = await new_user(node)
    too_big = await upload(node, alice, b"x" * 100_001)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
    first = await upload(node, alice, b"same bytes", "text/plain")
    second = await upload(node, alice, b"same bytes", "text/plain")
    assert first.json()["media_id"] != second.json()["media_id"]
    files = [p for p in (own_node.data_dir / "media").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == b"same bytes"
    async with httpx.AsyncClient(base_url=node.url) as http:
        refused = await http.post("/api/v1/media", content=b"x")
        assert refused.status_code == 401
    await alice.rest.aclose()


async def test_an_uploaded_page_is_never_sniffed_or_run_in_the_nodes_origin(
        node: Node, alice: User) -> None:
    """An HTML or SVG upload opened in a tab must not script the node's origin."""
    page = b"<html><script>fetch('/api/v1/me')</script></html>"
    media_id = (await upload(node, alice, page, "text/html")).json()["media_id"]
    served = await fetch(node, alice, media_id)
    assert served.content == page
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"].startswith("sandbox")
