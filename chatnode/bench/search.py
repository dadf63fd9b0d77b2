"""The `search` scenario: a store of `--messages` messages (a million by default), then
`--queries` searches over REST from users with few or many conversations, with a realistic
mix of words, phrases, prefixes, accents and non-Latin text: p50/p99 query time and the
index's share of the database.

The messages are written straight into the node's store with the store's own statements
(append_message, which also indexes), in big transactions beside the running node: sending a
million over the wire would take the bench longer than the measurement. Only search reads
them, and search asks the store, not the node's in-memory state, so the node need not know.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import trio

from ..store import search as search_index
from ..store import sqlite as sql
from ..store.errors import cluster_module
from . import prepare
from .node import NodeUnderTest
from .stats import Checks, latency_ms

COMMON = ("the", "and", "you", "to", "of", "it", "is", "in", "that", "we", "for", "on", "have",
          "are", "with", "this", "at", "be", "me", "so", "but", "not", "what", "can", "just",
          "was", "all", "do", "get", "if", "know", "will", "about", "like", "one", "there",
          "time", "good", "see", "now", "out", "think", "here", "when", "yes", "how", "back",
          "come", "going", "tonight", "tomorrow", "meeting", "dinner", "weekend", "train",
          "office", "kids", "school", "weather", "photo", "birthday", "party", "coffee", "call",
          "later", "morning", "evening", "holiday", "garden", "football", "match", "ticket",
          "doctor", "present", "shopping", "recipe", "project", "deadline", "budget", "report")
FOREIGN = ["café crème déjà vu à bientôt", "Grüße aus München, schön", "señor mañana año",
           "привет как дела спасибо", "Καλημέρα φίλε μου", "明日は東京で会議があります",
           "我们明天去北京吃饭", "내일 학교에서 만나요"]
QUERIES = [  # (share, kind); the words are drawn when each query is made
    (30, "word"), (15, "rare"), (15, "two words"), (10, "phrase"), (10, "prefix"),
    (5, "accent"), (5, "non-latin"), (5, "none"), (5, "needle")]
CHUNK = 20_000


def message_text(rng: random.Random, rare: list[str]) -> str:
    if rng.random() < 0.06:
        return rng.choice(FOREIGN)
    words = [rng.choice(COMMON) if rng.random() < 0.9 else rng.choice(rare)
             for _ in range(rng.randint(3, 16))]
    return " ".join(words).capitalize()


def conversations_plan(rng: random.Random, users: list[dict[str, Any]]
                       ) -> list[list[dict[str, Any]]]:
    """Who talks with whom: a direct chat for each neighbouring pair and a dozen groups. The
    last few users have a single direct chat: the slow case, a common word with few hits."""
    plan = [[users[i], users[i + 1]] for i in range(0, len(users) - 1)]
    talkative = users[: max(3, len(users) - 4)]
    for _ in range(12):
        plan.append(rng.sample(talkative, rng.randint(3, min(12, len(talkative)))))
    return plan


async def search(node: NodeUnderTest, o: Any, checks: Checks) -> dict[str, Any]:
    if node.data_dir is None:
        checks.expect(False, "search: needs a node of its own (its store is prepared on disk)")
        return {}
    rng = random.Random(10)
    users = await prepare.users(node.url, max(6, o.search_users), prefix="s")
    plan = conversations_plan(rng, users)
    ids = []
    async with httpx.AsyncClient(base_url=node.url, timeout=60) as http:
        for members in plan:
            answer = await http.post("/api/v1/conversations", json={
                "kind": "direct" if len(members) == 2 else "group", "name": "bench",
                "members": [m["user_id"] for m in members[1:]]},
                headers={"Authorization": f"Bearer {members[0]['token']}"})
            ids.append(answer.json()["conversation_id"])
    rare = [f"{rng.choice(COMMON)[:3]}{index:x}q" for index in range(20_000)]
    messages = planned_messages(ids, plan, o.messages, rare)
    # The node's store: its data directory's SQLite file, or the PostgreSQL database that
    # CHATNODE_STORE_URL names (the node under test inherits the environment).
    store_url = os.environ.get("CHATNODE_STORE_URL")
    started = time.perf_counter()
    if store_url:
        needles = await trio.to_thread.run_sync(write_messages_pg, store_url, messages)
        prepare_s = time.perf_counter() - started
        index, total = await trio.to_thread.run_sync(sizes_pg, store_url)
    else:
        path = Path(node.data_dir.name) / sql.DB_FILE
        needles = await trio.to_thread.run_sync(write_messages, path, messages)
        prepare_s = time.perf_counter() - started
        index, total = await trio.to_thread.run_sync(sizes, path)

    member_of = {u["user_id"]: set() for u in users}
    for cid, members in zip(ids, plan, strict=True):
        for m in members:
            member_of[m["user_id"]].add(cid)
    samples: list[int] = []
    hits_total = 0
    async with httpx.AsyncClient(base_url=node.url, timeout=60) as http:
        for number in range(o.queries):
            user = users[number % len(users)]
            params = make_query(rng, rare, member_of[user["user_id"]], needles)
            headers = {"Authorization": f"Bearer {user['token']}"}
            began = time.perf_counter_ns()
            answer = await http.get("/api/v1/search", params=params, headers=headers)
            samples.append(time.perf_counter_ns() - began)
            page = answer.json()
            checks.expect(answer.status_code == 200, f"search: {params} answered {page}")
            if answer.status_code != 200:
                continue
            hits_total += len(page["hits"])
            stamps = [h["ts"] for h in page["hits"]]
            checks.expect(stamps == sorted(stamps, reverse=True),
                          f"search: {params['q']!r} hits not newest first")
            checks.expect(all(h["conversation_id"] in member_of[user["user_id"]]
                              for h in page["hits"]),
                          f"search: {params['q']!r} found a message its user may not read")
            needle = needles.get(params["q"])
            if needle is not None:
                want = [needle] if needle[0] in member_of[user["user_id"]] else []
                got = [(h["conversation_id"], h["seq"]) for h in page["hits"]]
                checks.expect(got == want, f"search: needle {params['q']} found {got}")
    return {
        "messages": o.messages, "queries": o.queries, "prepare_s": round(prepare_s, 1),
        "latency_ms": latency_ms(samples), "hits_per_query": round(hits_total / o.queries, 1),
        "database_mb": round(total / 2**20, 1), "index_mb": round(index / 2**20, 1),
        "index_share": round(index / total, 3) if total else None,
    }


def chunks(items: Iterator[Planned], size: int) -> Iterator[list[Planned]]:
    while chunk := list(islice(items, size)):
        yield chunk


class Planned(NamedTuple):
    number: int
    conversation_id: str
    sender_id: str
    text: str
    needle: str | None


def planned_messages(ids: list[str], plan: list[list[dict[str, Any]]], count: int,
                     rare: list[str]) -> Iterator[Planned]:
    """`count` messages, busy conversations more than quiet ones; every 10,000th holds a
    unique needle word. The same seed gives the same messages whichever store they go to."""
    rng = random.Random(11)
    weights = [1 / (rank + 1) for rank in range(len(ids))]
    rng.shuffle(weights)
    for number in range(count):
        slot = rng.choices(range(len(ids)), weights)[0]
        sender = rng.choice(plan[slot])["user_id"]
        text = message_text(rng, rare)
        needle = f"needle{number:x}z" if number % 10_000 == 0 else None
        yield Planned(number, ids[slot], sender, f"{text} {needle}" if needle else text, needle)


def write_messages(path: Path, messages: Iterator[Planned]) -> dict[str, tuple[str, int]]:
    """Into the SQLite store, in transactions of CHUNK. Returns needle -> (conversation, seq)."""
    conn = sql.connect(path, durability="normal")
    needles: dict[str, tuple[str, int]] = {}
    try:
        for chunk in chunks(messages, CHUNK):
            conn.execute("BEGIN IMMEDIATE")
            for m in chunk:
                message, _ = sql.append_message(conn, m.conversation_id, m.sender_id,
                                                f"bench{m.number}", "text", m.text, None, None,
                                                None)
                if m.needle:
                    needles[m.needle] = (m.conversation_id, message.seq)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return needles


def sizes(path: Path) -> tuple[int, int]:
    """(the index's bytes, the whole database's bytes)."""
    conn = sqlite3.connect(path)
    try:
        (page_count,) = conn.execute("PRAGMA page_count").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        return search_index.index_bytes(conn), page_count * page_size
    finally:
        conn.close()


def write_messages_pg(url: str, messages: Iterator[Planned]) -> dict[str, tuple[str, int]]:
    """Into the node's PostgreSQL store with the same statements the node runs (pg_ops), in
    transactions of CHUNK."""
    postgres = cluster_module("postgres")
    pg_ops = cluster_module("pg_ops")
    conn = postgres.connect(url)
    needles: dict[str, tuple[str, int]] = {}
    try:
        for chunk in chunks(messages, CHUNK):
            with conn.transaction():
                for m in chunk:
                    message, _ = pg_ops.append_message(
                        conn, m.conversation_id, m.sender_id, f"bench{m.number}", "text",
                        m.text, None, None, None)
                    if m.needle:
                        needles[m.needle] = (m.conversation_id, message.seq)
        conn.execute("VACUUM ANALYZE")  # as autovacuum would soon after such a load
    finally:
        conn.close()
    return needles


def sizes_pg(url: str) -> tuple[int, int]:
    """(the index's bytes, the whole database's bytes)."""
    postgres = cluster_module("postgres")
    pg_search = cluster_module("pg_search")
    conn = postgres.connect(url)
    try:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return pg_search.index_bytes(conn), int(row[0])
    finally:
        conn.close()


def make_query(rng: random.Random, rare: list[str], mine: set[str],
               needles: dict[str, tuple[str, int]]) -> dict[str, Any]:
    kinds, shares = zip(*[(kind, share) for share, kind in QUERIES], strict=True)
    kind = rng.choices(kinds, shares)[0]
    q = {
        "word": lambda: rng.choice(COMMON[20:]),
        "rare": lambda: rng.choice(rare),
        "two words": lambda: f"{rng.choice(COMMON[20:])} {rng.choice(COMMON[20:])}",
        "phrase": lambda: f'"{rng.choice(COMMON)} {rng.choice(COMMON)}"',
        "prefix": lambda: rng.choice(COMMON[30:])[:3] + "*",
        "accent": lambda: rng.choice(["cafe", "creme", "grusse", "manana", "deja"]),
        "non-latin": lambda: rng.choice(["東京", "北京", "привет", "학교", "καλημερα"]),
        "none": lambda: f"zz{rng.randrange(10**9)}",
        "needle": lambda: rng.choice(sorted(needles)) if needles else "needle",
    }[kind]()
    params: dict[str, Any] = {"q": q}
    if mine and kind != "needle" and rng.random() < 0.2:
        params["conversation_id"] = rng.choice(sorted(mine))
    return params
