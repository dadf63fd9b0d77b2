"""Search on a real two-node cluster (PostgreSQL + Redis): what is sent through one node is found
through the other, with SQLite's folding, snippets and marks; an edit is found by its new words
only; `chatnode reindex --config` rebuilds the index while both nodes run, and sends after it
are indexed as before."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg

from ..conftest import User, new_user
from ..redis_server import Redis
from . import cli
from .two_nodes import two_nodes


async def send(user: User, cid: str, body: str, **fields: Any) -> int:
    sent = await user.rest.request("POST", f"/api/v1/conversations/{cid}/messages", {
        "client_msg_id": str(uuid.uuid4()), "body": body, **fields})
    return int(sent["seq"])


async def search(user: User, q: str, **params: Any) -> dict[str, Any]:
    return await user.rest.request("GET", "/api/v1/search", params={"q": q, **params})


async def found(user: User, q: str) -> list[int]:
    return [hit["seq"] for hit in (await search(user, q))["hits"]]


async def test_search_crosses_nodes_follows_edits_and_reindex_runs_beside_the_nodes(
        tmp_path: Path, pg_url: str, redis_server: Redis) -> None:
    with two_nodes(tmp_path, pg_url, redis_server.url) as cluster:
        one, two = cluster.nodes
        alice, bob = await new_user(one, "alice"), await new_user(two, "bob")
        cid = str((await alice.rest.direct(bob.user_id))["conversation_id"])
        kept = await send(alice, cid, "Grüße aus Köln, and 東京 kestrels")
        edited = await send(alice, cid, "a draft about owls")
        await send(alice, cid, "a final word about falcons", kind="edit", target=edited)

        page = await search(bob, "GRUSSE koln")
        assert [hit["seq"] for hit in page["hits"]] == [kept]
        hit = page["hits"][0]
        assert hit["snippet"] == "Grüße aus Köln, and 東京 kestrels"
        assert [hit["snippet"][a:b] for a, b in hit["marks"]] == ["Grüße", "Köln"]
        assert await found(bob, "東京") == [kept]
        assert await found(bob, '"aus koln"') == [kept]
        assert await found(bob, "kest*") == [kept]
        assert await found(bob, "owls") == []
        assert await found(bob, "falcons") == [edited]
        stranger = await new_user(two, "eve")
        assert await found(stranger, "falcons") == []

        # An index that lost its rows, rebuilt while both nodes keep serving.
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM message_search")
        assert await found(bob, "falcons") == []
        rebuilt = cli.run("reindex", "--config", str(tmp_path / "one.toml"))
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "2 messages indexed" in rebuilt.stdout
        assert await found(bob, "falcons") == [edited]
        later = await send(bob, cid, "falcons again, after the rebuild")
        page = await search(alice, "falcons", limit=1)
        assert [hit["seq"] for hit in page["hits"]] == [later]
        rest = await search(alice, "falcons", limit=1, before=page["next_before"])
        assert [hit["seq"] for hit in rest["hits"]] == [edited]
