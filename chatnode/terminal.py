"""`chatnode client`: chat from a terminal, line by line.

Type a line to send it to the open conversation; commands start with a slash:
/list, /open NAME (a group's name or the other person's username), /quit. Incoming messages
are printed as they arrive; your own show their tick as it moves (✓ sent, ✓✓ delivered,
✓✓ read). When the node goes away the client reconnects with backoff and catches up from
the last seq it has of each conversation, so nothing is shown twice.
"""

from __future__ import annotations

import random
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError

from .client import Frame, RestClient, Session, connect

TICKS = {"sent": "✓", "delivered": "✓✓", "read": "✓✓ read"}


@dataclass
class Conversation:
    conversation_id: str
    title: str
    last_seq: int = 0
    delivered: int = 0
    read: int = 0
    my_seqs: set[int] = field(default_factory=set)


class TerminalClient:
    def __init__(self, url: str, rest: RestClient, me: Frame,
                 write: Callable[[str], None]) -> None:
        self.url = url
        self.rest = rest
        self.me = me
        self.write = write
        self.names: dict[str, str] = {me["user_id"]: me["username"]}
        self.conversations: dict[str, Conversation] = {}
        self.open: Conversation | None = None
        self.session: Session | None = None

    async def name_of(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)

    async def refresh(self) -> None:
        """Conversation list and titles from REST."""
        for info in await self.rest.conversations():
            others = [m["user_id"] for m in info["members"] if m["user_id"] != self.me["user_id"]]
            for user_id in others:
                if user_id not in self.names:
                    status, user = await self.rest.call("GET",
                                                        f"/api/v1/users/by-id/{user_id}")
                    self.names[user_id] = user_id
                    if status == 200:
                        self.names[user_id] = user["username"]
            title = info["name"] or ", ".join(self.names[u] for u in others) or "(just you)"
            conv = self.conversations.setdefault(
                info["conversation_id"], Conversation(info["conversation_id"], title))
            conv.title = title

    def list(self) -> None:
        if not self.conversations:
            self.write("no conversations yet")
        for conv in self.conversations.values():
            self.write(f"  {conv.title}  (last seq {conv.last_seq})")

    def open_by_name(self, name: str) -> None:
        for conv in self.conversations.values():
            if conv.title == name:
                self.open = conv
                self.write(f"-- {conv.title} --")
                return
        self.write(f"no conversation named {name!r}; /list shows them")

    # --- the session ---------------------------------------------------------------------------

    async def run_sessions(self, connected: trio.Event) -> None:
        """Keep a session open, reconnecting with exponential backoff and jitter."""
        delay = 0.5
        while True:
            try:
                # Conversations never seen get the node's recent history, not all of it.
                sync = {c.conversation_id: c.last_seq for c in self.conversations.values()
                        if c.last_seq > 0}
                async with connect(self.url, self.rest.token or "", sync=sync) as (session,
                                                                                  frames):
                    self.session = session
                    delay = 0.5
                    for frame in frames:
                        await self.on_frame(frame)
                    connected.set()
                    while True:
                        await self.on_frame(await session.recv(timeout=10**9))
            except (ConnectionClosed, HandshakeError, OSError, trio.TooSlowError):
                self.session = None
                self.write(f"(disconnected; reconnecting in {delay:.1f}s)")
                await trio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 15)

    async def on_frame(self, frame: Frame) -> None:
        kind = frame["type"]
        if kind == "message":
            await self.on_message(frame)
        elif kind == "status_update":
            conv = self.conversations.get(frame["conversation_id"])
            if conv is not None:
                self.show_ticks(conv, frame["last_delivered_seq"], frame["last_read_seq"])
        elif kind == "sent":
            conv = self.conversations.get(frame["conversation_id"])
            if conv is not None:
                conv.my_seqs.add(frame["seq"])
                conv.last_seq = max(conv.last_seq, frame["seq"])
                self.write(f"  [{frame['seq']}] {TICKS['sent']}")
        elif kind == "conversation":
            await self.refresh()
        elif kind == "typing" and frame["typing"]:
            self.write(f"  {await self.name_of(frame['user_id'])} is typing…")
        elif kind == "presence":
            state = "online" if frame["online"] else "offline"
            self.write(f"  {await self.name_of(frame['user_id'])} is {state}")
        elif kind == "error":
            self.write(f"! {frame['code']}: {frame['message']}")

    async def on_message(self, frame: Frame) -> None:
        conv = self.conversations.get(frame["conversation_id"])
        if conv is None:
            await self.refresh()
            conv = self.conversations[frame["conversation_id"]]
        if frame["seq"] <= conv.last_seq:
            return  # already shown (a catch-up may resend what was never acked)
        conv.last_seq = frame["seq"]
        sender = await self.name_of(frame["sender_id"])
        if frame["sender_id"] == self.me["user_id"]:
            conv.my_seqs.add(frame["seq"])
        self.write(f"[{conv.title} #{frame['seq']}] {sender}: {describe(frame)}")
        if self.session is not None:
            await self.session.delivered(conv.conversation_id, frame["seq"])
            if conv is self.open:
                await self.session.read(conv.conversation_id, frame["seq"])

    def show_ticks(self, conv: Conversation, delivered: int, read: int) -> None:
        for seq in sorted(conv.my_seqs):
            old = TICKS["read"] if seq <= conv.read else (
                TICKS["delivered"] if seq <= conv.delivered else TICKS["sent"])
            new = TICKS["read"] if seq <= read else (
                TICKS["delivered"] if seq <= delivered else TICKS["sent"])
            if new != old:
                self.write(f"  [{seq}] {new}")
        conv.delivered, conv.read = delivered, read

    async def send_line(self, line: str) -> None:
        if self.open is None:
            self.write("open a conversation first: /open NAME")
        elif self.session is None:
            self.write("not connected; try again in a moment")
        else:
            await self.session.send_text(self.open.conversation_id, line, str(uuid.uuid4()))

    async def handle_line(self, line: str) -> bool:
        """One line of input; False to quit."""
        line = line.strip()
        if line in ("/quit", "/q"):
            return False
        if line == "/list":
            await self.refresh()
            self.list()
        elif line.startswith("/open "):
            await self.refresh()
            self.open_by_name(line[6:].strip())
            if self.open is not None and self.session is not None and self.open.last_seq:
                await self.session.read(self.open.conversation_id, self.open.last_seq)
        elif line:
            await self.send_line(line)
        return True


def describe(frame: dict[str, Any]) -> str:
    kind = frame["kind"]
    if kind == "text":
        return frame["body"]
    if kind == "media":
        return f"[media {frame['media_id']}] {frame['body']}".rstrip()
    if kind in ("reaction", "edit", "delete"):
        return f"({kind} of #{frame['target']}) {frame['body']}".rstrip()
    return f"({kind}) {frame['body']}"


async def run(url: str, username: str | None, password: str | None, token: str | None) -> None:
    def write(text: str) -> None:
        print(text, flush=True)

    async with RestClient(url, token) as rest:
        if token is None:
            assert username is not None and password is not None
            await rest.login(username, password, "terminal")
        me = await rest.request("GET", "/api/v1/me")
        client = TerminalClient(url, rest, me, write)
        await client.refresh()
        write(f"logged in as {me['username']}; /list, /open NAME, /quit")
        client.list()
        async with trio.open_nursery() as nursery:
            connected = trio.Event()
            nursery.start_soon(client.run_sessions, connected)
            stdin = trio.wrap_file(sys.stdin)
            while True:
                line = await stdin.readline()
                if not line or not await client.handle_line(line):
                    break
            nursery.cancel_scope.cancel()
