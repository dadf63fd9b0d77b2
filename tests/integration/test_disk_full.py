"""A full disk: sends fail with `internal` and are not acknowledged, the node stays up and serves
reads, and it recovers by itself once space is freed. The data directory sits on a small tmpfs
of the test's own (mounting needs root, which the CI machine has)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from chatnode.client import connect

from ..conftest import Node, User, new_user, whole_history

DISK_BYTES = 16 * 1024 * 1024
BODY = "x" * 8000  # big frames, so that the WAL needs new pages soon after the disk is full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write until the file system has not one byte left."""
    with path.open("wb", buffering=0) as f:
        chunk = 1024 * 1024
        while chunk:
            try:
                f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                chunk //= 2


async def history_seqs(user: User, cid: str) -> dict[str, int]:
    """client_msg_id -> seq of the whole stored log, checking it has no gap."""
    stored = await whole_history(user, cid)
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
    return {m["client_msg_id"]: m["seq"] for m in stored}


async def upload(http: httpx.AsyncClient, user: User) -> httpx.Response:
    return await http.post("/api/v1/media", content=b"\x89PNG" + bytes(200_000), headers={
        "Authorization": f"Bearer {user.token}", "Content-Type": "image/png"})


async def test_a_full_disk_refuses_sends_serves_reads_and_recovers_by_itself(
        small_disk: Path) -> None:
    node = Node(small_disk / "data").start()
    try:
        alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
        cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
        acked: dict[str, int] = {}
        for i in range(3):
            acked[f"before-{i}"] = (await alice.rest.send(cid, "before", f"before-{i}"))["seq"]

        filler = small_disk / "filler"
        fill(filler)
        refused: dict[str, object] = {}
        async with connect(node.url, alice.token) as (a, _):
            with trio.fail_after(60):
                for i in range(2000):
                    cmid = f"full-{i}"
                    await a.send_text(cid, BODY, client_msg_id=cmid)
                    answer, _ = await a.until(lambda f: f["type"] in ("sent", "error"))
                    if answer["type"] == "error":
                        refused = answer
                        break
                    acked[cmid] = answer["seq"]
            assert refused, "2000 sends of 8 kB went through on a full 16 MB disk"
            assert refused["code"] == "internal" and refused["ref"] == cmid

            async with httpx.AsyncClient(base_url=node.url) as http:
                assert (await http.get("/healthz")).status_code == 503
                refused_upload = await upload(http, alice)
                assert refused_upload.status_code == 503
                assert refused_upload.json()["error"]["code"] == "internal"
                # Still serving: reads over REST and a catch-up over a new session.
                assert await history_seqs(alice, cid) == acked
                async with connect(node.url, bob.token) as (_, frames):
                    caught_up = [f["seq"] for f in frames if f["type"] == "message"]
                    assert caught_up == sorted(acked.values())

                filler.unlink()
                with trio.fail_after(30):
                    while (await http.get("/healthz")).status_code != 200:
                        await trio.sleep(0.2)
                assert (await upload(http, alice)).status_code == 201

            # The refused send, retried with its client_msg_id, is stored once, right after the
            # last acknowledged one: the failure left no seq behind.
            await a.send_text(cid, BODY, client_msg_id=cmid)
            sent, _ = await a.until_type("sent")
            assert (sent["client_msg_id"], sent["seq"]) == (cmid, max(acked.values()) + 1)
            acked[cmid] = sent["seq"]
        assert await history_seqs(alice, cid) == acked
        await alice.rest.aclose()
        await bob.rest.aclose()
    finally:
        node.kill()
