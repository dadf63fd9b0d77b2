"""A client library for chatnode on trio: REST over httpx, sessions over trio-websocket.

Used by the tests, the bench and the terminal client; small enough to read as an example of
the protocol. Frames are plain dicts, as any client in any language would see them.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from .protocol import SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, Codec

Frame = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class RestClient:
    """The REST API of one node, as one user (once a token is set)."""

    def __init__(self, base_url: str, token: str | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=30, verify=verify)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Any request; returns (status, decoded JSON body) without raising on errors."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self._http.request(method, path, json=body, params=params,
                                            headers=headers)
        content = response.json() if response.content else None
        return response.status_code, content

    async def request(self, method: str, path: str, body: Any = None,
                      params: dict[str, Any] | None = None) -> Any:
        status, content = await self.call(method, path, body, params)
        if status >= 400:
            error = (content or {}).get("error", {})
            raise ApiError(status, error.get("code", "?"), error.get("message", ""))
        return content

    async def login(self, username: str, password: str, device_name: str | None = None
                    ) -> Frame:
        auth = await self.request("POST", "/api/v1/login", {
            "username": username, "password": password, "device_name": device_name})
        self.token = auth["token"]
        return auth

    async def register(self, username: str, password: str) -> Frame:
        auth = await self.request("POST", "/api/v1/register",
                                  {"username": username, "password": password})
        self.token = auth["token"]
        return auth

    async def user(self, username: str) -> Frame:
        return await self.request("GET", f"/api/v1/users/{username}")

    async def direct(self, user_id: str) -> Frame:
        return await self.request("POST", "/api/v1/conversations",
                                  {"kind": "direct", "members": [user_id]})

    async def group(self, name: str, user_ids: list[str]) -> Frame:
        return await self.request("POST", "/api/v1/conversations",
                                  {"kind": "group", "name": name, "members": user_ids})

    async def conversations(self) -> list[Frame]:
        return (await self.request("GET", "/api/v1/conversations"))["conversations"]

    async def send(self, conversation_id: str, body: str, client_msg_id: str | None = None
                   ) -> Frame:
        return await self.request(
            "POST", f"/api/v1/conversations/{conversation_id}/messages",
            {"client_msg_id": client_msg_id or str(uuid.uuid4()), "body": body})

    async def history(self, conversation_id: str, **params: int) -> Frame:
        return await self.request("GET", f"/api/v1/conversations/{conversation_id}/messages",
                                  params=params)


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


class Session:
    """One WebSocket session. `recv` returns frames in arrival order as dicts."""

    def __init__(self, ws: WebSocketConnection, codec: Codec) -> None:
        self.ws = ws
        self.codec: Codec = codec
        self.welcome: Frame = {}

    async def send(self, frame: Frame) -> None:
        if self.codec == "json":
            await self.ws.send_message(msgspec.json.encode(frame).decode())
        else:
            await self.ws.send_message(msgspec.msgpack.encode(frame))

    async def recv(self, timeout: float = 10) -> Frame:
        with trio.fail_after(timeout):
            data = await self.ws.get_message()
        if isinstance(data, str):
            return msgspec.json.decode(data)
        return msgspec.msgpack.decode(data)

    async def until(self, predicate: Callable[[Frame], bool], timeout: float = 10
                    ) -> tuple[Frame, list[Frame]]:
        """Read until a frame matches; returns it and every frame read before it."""
        before: list[Frame] = []
        with trio.fail_after(timeout):
            while True:
                frame = await self.recv(timeout=timeout)
                if predicate(frame):
                    return frame, before
                before.append(frame)

    async def until_type(self, type_: str, timeout: float = 10) -> tuple[Frame, list[Frame]]:
        return await self.until(lambda f: f.get("type") == type_, timeout)

    async def send_text(self, conversation_id: str, body: str,
                        client_msg_id: str | None = None) -> str:
        client_msg_id = client_msg_id or str(uuid.uuid4())
        await self.send({"type": "send", "conversation_id": conversation_id,
                         "client_msg_id": client_msg_id, "body": body})
        return client_msg_id

    async def delivered(self, conversation_id: str, seq: int) -> None:
        await self.send({"type": "delivered", "conversation_id": conversation_id, "seq": seq})

    async def read(self, conversation_id: str, seq: int) -> None:
        await self.send({"type": "read", "conversation_id": conversation_id, "seq": seq})


@asynccontextmanager
async def connect(base_url: str, token: str, *, sync: dict[str, int] | None = None,
                  codec: Codec = "json", hello_extra: Frame | None = None,
                  ssl_context: ssl.SSLContext | None = None,
                  ) -> AsyncIterator[tuple[Session, list[Frame]]]:
    """Open a session, say hello, and read the catch-up up to `synced`. An https:// node is
    reached over wss:// (`ssl_context`: whom to trust; default: the system's CAs).

    Yields the session and the catch-up frames (welcome first, synced last)."""
    subprotocol = SUBPROTOCOL_JSON if codec == "json" else SUBPROTOCOL_MSGPACK
    async with open_websocket_url(ws_url(base_url), ssl_context,
                                  subprotocols=[subprotocol]) as ws:
        session = Session(ws, codec)
        hello: Frame = {"type": "hello", "token": token, **(hello_extra or {})}
        if sync is not None:
            hello["sync"] = sync
        await session.send(hello)
        synced, frames = await session.until_type("synced", timeout=60)
        frames.append(synced)
        session.welcome = frames[0]
        yield session, frames
