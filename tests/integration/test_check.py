"""`chatnode check`: a sound store passes while the node runs; a damaged log or out-of-range
markers are named in words, conversation by conversation, with exit code 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..conftest import Node, new_user
from .test_lifecycle import chatnode, err, out


async def test_check_passes_a_live_store_and_names_each_problem_of_a_damaged_one(
        own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(5):
        await alice.rest.send(cid, f"message {i}")
    data_dir = str(own_node.data_dir)

    live = await chatnode("check", "--data-dir", data_dir)
    assert live.returncode == 0, out(live) + err(live)
    assert out(live).strip() == "store OK: 1 conversations, 5 messages, 2 memberships"

    await alice.rest.aclose()
    await bob.rest.aclose()
    node.stop()
    db = sqlite3.connect(Path(data_dir) / "chatnode.db")
    with db:
        db.execute("DELETE FROM messages WHERE conversation_id = ? AND seq = 3", (cid,))
        db.execute("UPDATE members SET last_delivered_seq = 9, last_read_seq = 10"
                   " WHERE conversation_id = ? AND user_id = ?", (cid, bob.user_id))
    db.close()

    damaged = await chatnode("check", "--data-dir", data_dir)
    assert damaged.returncode == 1
    lines = out(damaged).splitlines()
    assert lines == [
        f"problem: conversation {cid}: 1 seq(s) missing from its log of 1..5: 3",
        f"problem: conversation {cid}, member {bob.user_id}: delivered marker 9 is beyond"
        " the conversation's last seq 5",
        f"problem: conversation {cid}, member {bob.user_id}: read marker 10 is ahead of the"
        " delivered marker 9",
        "store has 3 problem(s) (1 conversations, 4 messages, 2 memberships)",
    ]


async def test_check_of_a_directory_without_a_store_says_so(tmp_path: Path) -> None:
    result = await chatnode("check", "--data-dir", str(tmp_path / "nothing-here"))
    assert result.returncode == 1
    assert "no store at" in err(result)


async def test_a_node_refuses_to_serve_from_a_damaged_store(own_node: Node) -> None:
    """quick_check at start: a file with a page overwritten stops the node with one line that
    says what to do, instead of serving (and acknowledging) from a damaged log."""
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(200):
        await alice.rest.send(cid, f"{i} " + "x" * 400)
    await alice.rest.aclose()
    await bob.rest.aclose()
    node.stop()
    database = own_node.data_dir / "chatnode.db"
    assert not database.with_name("chatnode.db-wal").exists() or \
        database.with_name("chatnode.db-wal").stat().st_size == 0
    with database.open("r+b") as f:  # a page in the middle of the messages' b-tree
        f.seek(database.stat().st_size // 2 // 4096 * 4096)
        f.write(b"\xff" * 4096)

    started = await chatnode("serve", "--data-dir", str(own_node.data_dir), "--port", "0")
    assert started.returncode == 1
    assert "listening on" not in out(started)
    assert "is damaged" in err(started) and "chatnode restore" in err(started)
    checked = await chatnode("check", "--data-dir", str(own_node.data_dir))
    assert checked.returncode == 1 and "SQLite integrity check" in out(checked)
