"""GET /api/v1/search and history `around` a hit, against a real node: what a user may find,
how the index follows edits and deletes, non-Latin text, phrases, prefixes, paging, bad input.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import httpx

from chatnode.client import RestClient

from ..conftest import PASSWORD, Node, User, new_user
from .test_lifecycle import chatnode, err, out


async def search(user: User, q: str, **params: Any) -> dict[str, Any]:
    return await user.rest.request("GET", "/api/v1/search", params={"q": q, **params})


async def found(user: User, q: str, **params: Any) -> list[tuple[str, int]]:
    return [(h["conversation_id"], h["seq"]) for h in (await search(user, q, **params))["hits"]]


async def send(user: User, cid: str, body: str = "", **fields: Any) -> int:
    sent = await user.rest.request("POST", f"/api/v1/conversations/{cid}/messages", {
        "client_msg_id": str(uuid.uuid4()), "body": body, **fields})
    return int(sent["seq"])


async def direct(a: User, b: User) -> str:
    return str((await a.rest.direct(b.user_id))["conversation_id"])


def marked(hit: dict[str, Any]) -> list[str]:
    """The marked ranges of a hit's snippet, as the browser cuts them (code points)."""
    chars = list(hit["snippet"])
    return ["".join(chars[a:b]) for a, b in hit["marks"]]


# --- who finds what -----------------------------------------------------------------------

async def test_members_find_a_message_and_strangers_do_not(node: Node, alice: User,
                                                           bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "the giraffe escaped from the zoo")
    for member in (alice, bob):
        page = await search(member, "giraffe")
        assert [(h["conversation_id"], h["seq"]) for h in page["hits"]] == [(cid, seq)]
        hit = page["hits"][0]
        assert hit["sender_id"] == alice.user_id and hit["kind"] == "text"
        assert hit["snippet"] == "the giraffe escaped from the zoo"
        assert marked(hit) == ["giraffe"]
        assert page["next_before"] is None
    stranger = await new_user(node, "eve")
    assert await found(stranger, "giraffe") == []
    status, body = await stranger.rest.call("GET", "/api/v1/search",
                                            params={"q": "giraffe", "conversation_id": cid})
    assert status == 403 and body["error"]["code"] == "forbidden"


async def test_a_member_added_later_finds_only_what_was_written_after(
        node: Node, alice: User, bob: User) -> None:
    carol = await new_user(node, "carol")
    group = (await alice.rest.group("trip", [bob.user_id]))["conversation_id"]
    await send(alice, group, "secret pelican plans")
    await alice.rest.request("POST", f"/api/v1/conversations/{group}/members",
                             {"user_id": carol.user_id})
    later = await send(bob, group, "public pelican plans")
    assert await found(carol, "pelican") == [(group, later)]
    assert len(await found(alice, "pelican")) == 2


async def test_a_removed_member_finds_nothing_written_after_the_removal(
        node: Node, alice: User, bob: User) -> None:
    group = (await alice.rest.group("club", [bob.user_id]))["conversation_id"]
    before = await send(alice, group, "walrus before")
    assert await found(bob, "walrus") == [(group, before)]
    await alice.rest.request("DELETE", f"/api/v1/conversations/{group}/members/{bob.user_id}")
    after = await send(alice, group, "walrus after")
    assert await found(alice, "walrus") == [(group, after), (group, before)]
    # Search shows exactly what history would: a removed member reads none of the group.
    assert await found(bob, "walrus") == []


# --- the index follows the log ------------------------------------------------------------

async def test_an_edit_makes_the_new_text_findable_and_the_old_not(alice: User,
                                                                  bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "meet at the lighthouse")
    await send(alice, cid, "meet at the harbour", kind="edit", target=seq)
    assert await found(bob, "lighthouse") == []
    page = await search(bob, "harbour")
    assert [(h["seq"], h["snippet"]) for h in page["hits"]] == [(seq, "meet at the harbour")]


async def test_a_deleted_message_is_not_found_even_through_its_edits(alice: User,
                                                                     bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "my pin is kumquat")
    await send(alice, cid, "my pin is tangerine", kind="edit", target=seq)
    await send(alice, cid, kind="delete", target=seq)
    assert await found(alice, "kumquat") == []
    assert await found(alice, "tangerine") == []
    assert await found(alice, "pin") == []


async def test_reactions_and_system_messages_are_not_indexed(node: Node, alice: User,
                                                             bob: User) -> None:
    group = (await alice.rest.group("orchestra", [bob.user_id]))["conversation_id"]
    seq = await send(alice, group, "rehearsal tonight")
    await send(bob, group, "👍", kind="reaction", target=seq)
    await alice.rest.request("PATCH", f"/api/v1/conversations/{group}", {"name": "violins"})
    assert await found(alice, "violins") == []
    assert await found(alice, "member_added") == []
    assert await found(alice, "rehearsal") == [(group, seq)]


async def test_a_media_caption_is_found(node: Node, alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    async with httpx.AsyncClient(base_url=node.url) as http:
        uploaded = (await http.post("/api/v1/media", content=b"\x89PNG" + bytes(64), headers={
            "Authorization": f"Bearer {alice.token}", "Content-Type": "image/png"})).json()
    seq = await send(alice, cid, "sunset over the dunes", kind="media",
                     media_id=uploaded["media_id"])
    hits = (await search(bob, "dunes"))["hits"]
    assert [(h["seq"], h["kind"]) for h in hits] == [(seq, "media")]


# --- what a query means -------------------------------------------------------------------

async def test_case_and_accents_do_not_matter(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "Crème Brûlée au Café")
    for query in ("creme brulee", "CAFE", "café", "BRÛLÉE"):
        assert await found(bob, query) == [(cid, seq)], query
    assert marked((await search(bob, "cafe"))["hits"][0]) == ["Café"]


async def test_cyrillic_and_greek_are_found_in_any_case(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "Привет, как дела? Καλημέρα!")
    assert await found(bob, "привет") == [(cid, seq)]
    assert await found(bob, "ДЕЛА") == [(cid, seq)]
    assert await found(bob, "καλημερα") == [(cid, seq)]


async def test_chinese_and_japanese_words_are_found_inside_sentences(alice: User,
                                                                     bob: User) -> None:
    cid = await direct(alice, bob)
    tokyo = await send(alice, cid, "私は東京に行きました")
    beijing = await send(alice, cid, "我们明天去北京吃饭")
    korean = await send(alice, cid, "내일 학교에서 만나요")
    assert await found(bob, "東京") == [(cid, tokyo)]
    assert await found(bob, "北京") == [(cid, beijing)]
    assert await found(bob, "学校") == []  # the Japanese/Chinese word, not the Korean one
    assert await found(bob, "학교") == [(cid, korean)]
    # characters that occur, but not side by side, are not a match
    assert await found(bob, "東京都") == []
    assert marked((await search(bob, "北京"))["hits"][0]) == ["北京"]


async def test_a_quoted_phrase_needs_its_words_in_order(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    ordered = await send(alice, cid, "the quick brown fox")
    await send(alice, cid, "the brown quick fox")
    assert await found(bob, '"quick brown"') == [(cid, ordered)]
    assert len(await found(bob, "quick brown")) == 2  # words alone: any order
    assert marked((await search(bob, '"quick brown"'))["hits"][0]) == ["quick brown"]


async def test_a_prefix_star_matches_the_start_of_words(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "Photography exhibition on Friday")
    assert await found(bob, "photo*") == [(cid, seq)]
    assert await found(bob, "photo") == []
    assert await found(bob, "exhib* fri*") == [(cid, seq)]
    assert marked((await search(bob, "photo*"))["hits"][0]) == ["Photography"]


async def test_fts_syntax_in_a_query_is_just_words(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "text: NEAR the OR gate, AND (not) ^caret")
    for query in ['NEAR(text gate)', "text:near", 'OR AND NOT', '"unclosed gate', "^caret",
                  "gate -text", "(not)", '"gate"" or"']:
        status, body = await bob.rest.call("GET", "/api/v1/search", params={"q": query})
        assert status in (200, 400), (query, status, body)
        if status == 400:
            assert body["error"]["code"] == "invalid"
    assert await found(bob, "OR AND NOT") == [(cid, seq)]
    assert await found(bob, "NEAR(the gate)") == [(cid, seq)]


async def test_a_long_message_gets_a_snippet_around_the_match(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    body = "filler " * 100 + "the marmalade recipe " + "padding " * 100
    await send(alice, cid, body)
    hit = (await search(bob, "marmalade"))["hits"][0]
    assert len(hit["snippet"]) < 200
    assert hit["snippet"].startswith("…") and hit["snippet"].endswith("…")
    assert marked(hit) == ["marmalade"]


# --- paging, scope and bad input ----------------------------------------------------------

async def test_hits_come_newest_first_and_page_with_before(alice: User, bob: User) -> None:
    first = await direct(alice, bob)
    group = (await alice.rest.group("g", [bob.user_id]))["conversation_id"]
    sent = []
    for index in range(5):
        cid = first if index % 2 == 0 else group
        sent.append((cid, await send(alice, cid, f"volcano number {index}")))
    newest_first = list(reversed(sent))
    page = await search(bob, "volcano", limit=2)
    seen = [(h["conversation_id"], h["seq"]) for h in page["hits"]]
    while page["next_before"] is not None:
        page = await search(bob, "volcano", limit=2, before=page["next_before"])
        seen += [(h["conversation_id"], h["seq"]) for h in page["hits"]]
    assert seen == newest_first
    assert await found(bob, "volcano", conversation_id=group) == [
        hit for hit in newest_first if hit[0] == group]


async def test_bad_queries_get_400_and_change_nothing(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    seq = await send(alice, cid, "nothing changes here")
    bad = [{"q": ""}, {"q": "   "}, {"q": "x" * 201}, {"q": "!!! ???"}, {"q": "a*"},
           {"q": "here", "limit": "0"}, {"q": "here", "limit": "51"},
           {"q": "here", "limit": "ten"}, {"q": "here", "before": "-1"},
           {"q": " ".join(["w"] * 17)}, {}]
    for params in bad:
        status, body = await bob.rest.call("GET", "/api/v1/search", params=params)
        assert status == 400 and body["error"]["code"] == "invalid", (params, body)
    assert await found(bob, "here") == [(cid, seq)]
    assert (await bob.rest.history(cid))["messages"][-1]["seq"] == seq
    async with httpx.AsyncClient(base_url=bob.rest.base_url) as http:
        assert (await http.get("/api/v1/search", params={"q": "here"})).status_code == 401


# --- history around a hit -----------------------------------------------------------------

async def test_history_around_a_seq_centres_the_page_on_it(alice: User, bob: User) -> None:
    cid = await direct(alice, bob)
    for index in range(1, 21):
        await send(alice, cid, f"line {index}")
    page = await bob.rest.history(cid, around=10, limit=6)
    assert [m["seq"] for m in page["messages"]] == [7, 8, 9, 10, 11, 12]
    assert page["has_more"] is True
    page = await bob.rest.history(cid, around=2, limit=6)
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4, 5, 6]
    assert page["has_more"] is False
    page = await bob.rest.history(cid, around=20, limit=6)  # the log ends: more from below
    assert [m["seq"] for m in page["messages"]] == [15, 16, 17, 18, 19, 20]
    status, body = await bob.rest.call("GET", f"/api/v1/conversations/{cid}/messages",
                                       params={"around": 5, "before": 9})
    assert status == 400 and body["error"]["code"] == "invalid"


async def test_history_around_never_shows_what_came_before_joining(node: Node, alice: User,
                                                                   bob: User) -> None:
    group = (await alice.rest.group("late", [bob.user_id]))["conversation_id"]
    for index in range(4):
        await send(alice, group, f"early {index}")
    carol = await new_user(node, "carol")
    await alice.rest.request("POST", f"/api/v1/conversations/{group}/members",
                             {"user_id": carol.user_id})
    page = await carol.rest.history(group, around=2, limit=10)
    assert [m["kind"] for m in page["messages"]] == ["system"]
    assert page["has_more"] is False


# --- chatnode reindex ---------------------------------------------------------------------

async def test_reindex_rebuilds_the_index_from_the_log(own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = await direct(alice, bob)
    kept = await send(alice, cid, "the lost index of kestrels")
    edited = await send(alice, cid, "a draft about owls")
    await send(alice, cid, "a final word about falcons", kind="edit", target=edited)
    data_dir = str(own_node.data_dir)
    refused = await chatnode("reindex", "--data-dir", data_dir)
    assert refused.returncode == 1 and "in use by a running chatnode" in err(refused)
    await alice.rest.aclose()
    await bob.rest.aclose()
    node.stop()

    conn = sqlite3.connect(own_node.data_dir / "chatnode.db")
    conn.execute("DELETE FROM message_search")  # an index that lost its rows
    conn.commit()
    conn.close()
    rebuilt = await chatnode("reindex", "--data-dir", data_dir)
    assert rebuilt.returncode == 0, err(rebuilt)
    assert "2 messages indexed" in out(rebuilt)

    node.restart()
    async with RestClient(node.url) as rest:
        await rest.login(bob.username, PASSWORD)
        hits = await rest.request("GET", "/api/v1/search", params={"q": "kestrels"})
        assert [h["seq"] for h in hits["hits"]] == [kept]
        for q, want in (("falcons", [edited]), ("owls", [])):
            page = await rest.request("GET", "/api/v1/search", params={"q": q})
            assert [h["seq"] for h in page["hits"]] == want, q
