"""The node's log as an admin reads it: one line per event, the events that matter, and never a
message body, a password, a token or a file's bytes."""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed

from chatnode.client import RestClient, connect

from ..conftest import PASSWORD, Node, User, hello_refused

FIXED_KEYS = ("ts", "level", "logger", "event")
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL)"
                       r" \S+ \S")


def secret(label: str) -> str:
    """A string that can only be in the log if the node wrote what it was given."""
    return f"{label}-{uuid.uuid4().hex}"


async def register(node: Node, prefix: str) -> User:
    rest = RestClient(node.url)
    username = f"{prefix}{uuid.uuid4().hex[:8]}"
    auth = await rest.register(username, PASSWORD)
    return User(username, auth["user_id"], auth["token"], auth["device_id"], rest)


def events(log: list[dict[str, Any]], name: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in log if e["event"] == name
            and all(e.get(key) == value for key, value in match.items())]


async def chat_as_people_do(node: Node, secrets: dict[str, str]) -> dict[str, Any]:
    """Everything a day on the node holds, over REST and WebSocket; what the log should
    mention comes back as ids."""
    alice, bob, carol = [await register(node, p) for p in ("alice", "bob", "carol")]
    secrets.update(alice_token=alice.token, bob_token=bob.token, carol_token=carol.token)
    async with RestClient(node.url) as guesser:
        status, _ = await guesser.call("POST", "/api/v1/login", {
            "username": alice.username, "password": secrets["wrong_password"]})
        assert status == 401
    phone = RestClient(node.url)
    phone_auth = await phone.login(alice.username, PASSWORD)
    secrets["phone_token"] = phone_auth["token"]
    async with RestClient(node.url) as flooder:  # the login bucket (5 a minute) is empty now
        status, _ = await flooder.call("POST", "/api/v1/login", {
            "username": alice.username, "password": secrets["wrong_password"]})
        assert status == 429

    direct = (await alice.rest.direct(bob.user_id))["conversation_id"]
    group = (await alice.rest.group(secrets["group_name"], [bob.user_id]))["conversation_id"]
    members = f"/api/v1/conversations/{group}/members"
    await alice.rest.request("POST", members, {"user_id": carol.user_id})
    await alice.rest.request("PATCH", f"{members}/{carol.user_id}", {"role": "admin"})
    await alice.rest.request("DELETE", f"{members}/{carol.user_id}")
    await alice.rest.request("PATCH", f"/api/v1/conversations/{group}",
                             {"name": secrets["new_group_name"]})
    # A query string may carry anything; the access log leaves it out.
    await alice.rest.request("GET", "/api/v1/conversations", params={"t": secrets["query"]})

    async with httpx.AsyncClient(base_url=node.url) as http:
        headers = {"Authorization": f"Bearer {phone.token}", "Content-Type": "text/plain"}
        uploaded = await http.post("/api/v1/media", content=secrets["media_bytes"].encode(),
                                   headers=headers)
        media_id = uploaded.json()["media_id"]
        async with connect(node.url, phone.token) as (a, _), \
                connect(node.url, bob.token, codec="msgpack") as (b, _):
            await a.send_text(direct, secrets["body"])
            sent, _ = await a.until_type("sent")
            await a.send({"type": "send", "conversation_id": direct, "client_msg_id": "e",
                          "kind": "edit", "target": sent["seq"], "body": secrets["edit"]})
            await a.send({"type": "typing", "conversation_id": group})
            await a.send_text(group, secrets["group_body"])
            await a.send({"type": "send", "conversation_id": direct, "client_msg_id": "m",
                          "kind": "media", "media_id": media_id,
                          "body": secrets["caption"]})
            media, _ = await b.until(lambda f: f.get("kind") == "media")
            await b.read(direct, media["seq"])
            await a.until(lambda f: f["type"] == "status_update"
                          and f["last_read_seq"] == media["seq"])
            await b.send({"type": "send", "conversation_id": direct, "client_msg_id": "r",
                          "kind": "reaction", "target": sent["seq"], "body": "👍"})
            await b.until_type("sent")
            fetched = await http.get(f"/api/v1/media/{media_id}",
                                     headers={"Authorization": f"Bearer {bob.token}"})
            assert fetched.content == secrets["media_bytes"].encode()
            await phone.request("POST", "/api/v1/logout")
            try:
                with trio.fail_after(10):
                    while True:
                        await a.recv()
            except ConnectionClosed as closed:
                assert closed.reason.code == 4001
    frame, code = await hello_refused(node.url, secrets["hello_token"])
    assert (frame["code"], code) == ("unauthenticated", 4001)
    disabled = await trio.run_process(
        [sys.executable, "-m", "chatnode", "user", "disable", carol.username, "--data-dir",
         str(node.data_dir)], capture_stdout=True, env=node.env)
    assert disabled.returncode == 0
    frame, code = await hello_refused(node.url, carol.token)
    assert (frame["code"], code) == ("unauthenticated", 4001)
    for client in (alice.rest, bob.rest, carol.rest, phone):
        await client.aclose()
    return {"alice": alice.user_id, "bob": bob.user_id, "carol": carol.user_id,
            "phone": phone_auth["device_id"], "direct": direct, "group": group,
            "message_seq": sent["seq"]}


async def test_json_log_has_the_events_and_no_secrets(tmp_path: Path) -> None:
    log_file = tmp_path / "node.log"
    node = Node(tmp_path / "data", env={"CHATNODE_LOG_LEVEL": "debug",
                                        "CHATNODE_LIMITS_LOGIN_PER_MINUTE": "5"},
                args=["--log-format", "json"], log_file=log_file).start()
    secrets = {name: secret(name) for name in (
        "wrong_password", "group_name", "query", "media_bytes", "body", "edit", "group_body",
        "caption", "hello_token", "new_group_name")}
    try:
        ids = await chat_as_people_do(node, secrets)
    finally:
        assert node.stop() == 0
    text = log_file.read_text()
    log = [json.loads(line) for line in text.splitlines()]

    assert all(isinstance(e, dict) and all(k in e for k in FIXED_KEYS) for e in log), text
    assert log[0]["event"] == "node started" and log[0]["address"] == node.url
    assert log[-1]["event"] == "node stopped"
    assert events(log, "login failed", reason="wrong password", address="127.0.0.1")
    assert events(log, "login", user=ids["alice"], device=ids["phone"])
    assert len(events(log, "registered")) == 3
    assert events(log, "rate limit hit", limit="login", key="127.0.0.1")
    assert events(log, "conversation created", conversation=ids["direct"], kind="direct")
    assert events(log, "conversation created", conversation=ids["group"], kind="group",
                  members=2)
    assert events(log, "member added", conversation=ids["group"], user=ids["carol"])
    assert events(log, "role changed", user=ids["carol"], role="admin")
    assert events(log, "member removed", user=ids["carol"], actor=ids["alice"])
    assert events(log, "group renamed", conversation=ids["group"], actor=ids["alice"])
    opened = events(log, "session opened", user=ids["alice"], device=ids["phone"])
    assert len(opened) == 1 and opened[0]["codec"] == "json"
    assert events(log, "session opened", user=ids["bob"], codec="msgpack")
    closed = events(log, "session closed", user=ids["alice"], device=ids["phone"])
    assert len(closed) == 1
    assert (closed[0]["code"], closed[0]["reason"]) == (4001, "logged out")
    assert events(log, "session closed", user=ids["bob"], code=None, reason="client left")
    assert closed[0]["frames_in"] >= 6 and closed[0]["frames_out"] >= 6
    assert events(log, "logout", user=ids["alice"], device=ids["phone"])
    assert len(events(log, "hello refused", code="unauthenticated")) == 2
    assert events(log, "token refused, account disabled", user=ids["carol"])
    assert events(log, "message committed", conversation=ids["direct"],
                  seq=ids["message_seq"], kind="text", level="DEBUG")
    assert events(log, "marker committed", user=ids["bob"], marker="read", level="DEBUG")
    assert events(log, "request", method="GET", path="/api/v1/conversations", status=200)
    assert events(log, "request", method="POST", path="/api/v1/login", status=429)
    assert events(log, "request", path="/api/v1/media", status=201)

    for name, value in {**secrets, "password": PASSWORD}.items():
        assert value not in text, f"the {name} is in the log"


async def test_text_log_is_one_line_per_event_even_with_a_traceback(tmp_path: Path) -> None:
    log_file = tmp_path / "node.log"
    node = Node(tmp_path / "data", env={"CHATNODE_LOG_LEVEL": "info"},
                log_file=log_file).start()
    try:
        user = await register(node, "dana")
        async with connect(node.url, user.token):
            pass
        # The data directory breaks under the running node: the upload is an unhandled error.
        uploads = tmp_path / "data" / "media" / "tmp"
        uploads.rmdir()
        uploads.write_text("not a directory")
        status, body = await user.rest.call("POST", "/api/v1/media", {"any": "bytes"})
        assert (status, body["error"]["code"]) == (500, "internal")
        assert (await user.rest.call("GET", "/api/v1/me"))[0] == 200  # the node goes on
        await user.rest.aclose()
    finally:
        assert node.stop() == 0
    lines = log_file.read_text().splitlines()

    assert all(TEXT_LINE.match(line) for line in lines), lines
    assert not any(line.startswith("{") for line in lines)
    assert f"session opened user={user.user_id} device={user.device_id}" in "\n".join(lines)
    errors = [line for line in lines if " ERROR chatnode.web unhandled error " in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(set(lines) - set(errors))
    assert " method=POST path=/api/v1/media exc=\"Traceback (most recent call last):\\n" \
        in errors[0]
    assert "NotADirectoryError" in errors[0]
    assert not any(" DEBUG " in line for line in lines)
    assert any(" INFO chatnode.access request method=POST path=/api/v1/media status=500"
               in line for line in lines)
