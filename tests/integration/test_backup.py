"""`chatnode backup` while the node runs and `chatnode restore` with it stopped: every message
of the backup comes back with its seq, nothing written after it does, and a file that is not
a sound store is refused without touching the data directory."""

from __future__ import annotations

from pathlib import Path

from chatnode.client import RestClient

from ..conftest import PASSWORD, Node, new_user
from .test_lifecycle import chatnode, err, out


async def bodies(node: Node, username: str, cid: str) -> list[tuple[int, str]]:
    async with RestClient(node.url) as rest:
        rest.token = (await rest.login(username, PASSWORD))["token"]
        page = await rest.history(cid, limit=200)
    return [(m["seq"], m["body"]) for m in page["messages"]]


async def test_backup_of_a_live_node_restores_every_message(own_node: Node,
                                                            tmp_path: Path) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    for i in range(30):
        await alice.rest.send(cid, f"kept {i}")
    data_dir = str(own_node.data_dir)
    target = tmp_path / "chat.backup"

    made = await chatnode("backup", str(target), "--data-dir", data_dir)
    assert made.returncode == 0, err(made)
    assert "2 users, 1 conversations and 30 messages" in out(made)
    again = await chatnode("backup", str(target), "--data-dir", data_dir)
    assert again.returncode == 1 and "already exists" in err(again)
    refused = await chatnode("restore", str(target), "--yes", "--data-dir", data_dir)
    assert refused.returncode == 1 and "in use by a running chatnode" in err(refused)

    await alice.rest.send(cid, "written after the backup")
    await alice.rest.aclose()
    await bob.rest.aclose()
    node.stop()

    restored = await chatnode("restore", str(target), "--yes", "--data-dir", data_dir)
    assert restored.returncode == 0, err(restored)
    checked = await chatnode("check", "--data-dir", data_dir)
    assert checked.returncode == 0, out(checked)
    node.restart()
    assert await bodies(node, alice.username, cid) == [
        (i + 1, f"kept {i}") for i in range(30)]
    async with RestClient(node.url) as rest:  # the log goes on from the restored seq
        rest.token = (await rest.login(bob.username, PASSWORD))["token"]
        assert (await rest.send(cid, "after the restore"))["seq"] == 31


async def test_restore_refuses_a_file_that_is_not_a_store(own_node: Node,
                                                          tmp_path: Path) -> None:
    node = own_node.start()
    alice = await new_user(node, "alice")
    await alice.rest.aclose()
    node.stop()
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a database at all, just some bytes" * 100)
    result = await chatnode("restore", str(junk), "--yes", "--data-dir", str(own_node.data_dir))
    assert result.returncode == 1 and "not a chatnode backup" in err(result)
    missing = await chatnode("restore", str(tmp_path / "nope"), "--yes",
                             "--data-dir", str(own_node.data_dir))
    assert missing.returncode == 1 and "no backup file" in err(missing)
    checked = await chatnode("check", "--data-dir", str(own_node.data_dir))
    assert checked.returncode == 0 and "store OK: 0 conversations" in out(checked)
