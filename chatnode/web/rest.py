"""REST routes under /api/v1, plus /healthz, /metrics and the protocol's JSON Schema.

Handlers are thin: parse and validate with the protocol's structs, ask accounts or the chat
service, encode the answer. Errors are ChatError, turned into the protocol's error body by the
app's exception handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

import msgspec
import trio
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..accounts import Accounts
from ..admins import Admins
from ..hub import Hub
from ..media import MediaFiles
from ..profiles import Profiles
from ..protocol import (
    MAX_SEQ,
    AddMemberRequest,
    ChatError,
    ConversationList,
    CreateConversationRequest,
    EmptyResponse,
    ErrorCode,
    HealthStatus,
    LoginRequest,
    MediaInfo,
    MeUpdate,
    RegisterRequest,
    RenameRequest,
    Send,
    SendRequest,
    Sent,
    SetRoleRequest,
    decode_body,
    encode_json,
    json_schema,
)
from ..service import ChatService
from ..store import DeviceAuth
from ..store import sqlite as sql
from .account_api import AccountApi
from .admin_api import AdminApi
from .openapi import openapi_document
from .paced import paced
from .params import int_param
from .push_api import PushApi
from .responses import json_response
from .search_api import SearchApi

HEALTH_TIMEOUT_S = 5
# Below this much room where the store writes, /healthz says the disk is full: a message of a
# few kilobytes may already fail while the health check's own tiny write still fits in pages
# SQLite's WAL already has.
HEALTH_MIN_FREE_BYTES = 1024 * 1024


class Api:
    def __init__(self, service: ChatService, accounts: Accounts, hub: Hub, media: MediaFiles,
                 *, body_bytes: int, upload_bytes: int, body_timeout_s: float,
                 admins: Admins | None = None) -> None:
        self.service = service
        self.admins = admins
        self.accounts = accounts
        self.hub = hub
        self.media = media
        self.body_bytes = body_bytes
        self.upload_bytes = upload_bytes
        self.openapi_json = encode_json(openapi_document())
        self.body_timeout_s = body_timeout_s

    @cached_property
    def profiles(self) -> Profiles:
        return Profiles(self.service.store, self.service.engine, self.hub, self.media)

    def routes(self) -> list[Route]:
        v1 = "/api/v1"
        return [
            Route(f"{v1}/register", self.register, methods=["POST"]),
            Route(f"{v1}/login", self.login, methods=["POST"]),
            Route(f"{v1}/logout", self.logout, methods=["POST"]),
            Route(f"{v1}/me", self.me, methods=["GET"]),
            Route(f"{v1}/users/by-id/{{user_id}}", self.user_by_id, methods=["GET"]),
            Route(f"{v1}/users/{{username}}", self.user, methods=["GET"]),
            Route(f"{v1}/conversations", self.list_conversations, methods=["GET"]),
            Route(f"{v1}/conversations", self.create_conversation, methods=["POST"]),
            Route(f"{v1}/conversations/{{cid}}", self.get_conversation, methods=["GET"]),
            Route(f"{v1}/conversations/{{cid}}/members", self.add_member, methods=["POST"]),
            Route(f"{v1}/conversations/{{cid}}", self.rename, methods=["PATCH"]),
            Route(f"{v1}/conversations/{{cid}}/members/{{uid}}", self.remove_member,
                  methods=["DELETE"]),
            Route(f"{v1}/conversations/{{cid}}/members/{{uid}}", self.set_role,
                  methods=["PATCH"]),
            Route(f"{v1}/conversations/{{cid}}/messages", self.history, methods=["GET"]),
            Route(f"{v1}/conversations/{{cid}}/messages", self.send, methods=["POST"]),
            Route(f"{v1}/media", self.upload, methods=["POST"]),
            Route(f"{v1}/media/{{media_id}}", self.download, methods=["GET"]),
            Route(f"{v1}/schema.json", self.schema, methods=["GET"]),
            Route(f"{v1}/openapi.json", self.openapi, methods=["GET"]),
            *PushApi(self).routes(v1),
            *SearchApi(self).routes(v1),
            Route(f"{v1}/me", self.update_me, methods=["PATCH"]),
            *AccountApi(self).routes(v1),
            *AdminApi(self, self.admins).routes(v1),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    # --- helpers ------------------------------------------------------------------------------

    async def _body(self, request: Request, type_: type[Any]) -> Any:
        """Read at most `body_bytes` of JSON body and decode it into `type_`."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in self._stream(request):
            size += len(chunk)
            if size > self.body_bytes:
                raise ChatError(ErrorCode.TOO_LARGE,
                                f"request body is larger than {self.body_bytes} bytes")
            chunks.append(chunk)
        return decode_body(b"".join(chunks) or b"{}", type_)

    def _stream(self, request: Request) -> AsyncIterator[bytes]:
        return paced(request.stream(), self.body_timeout_s, self.body_bytes)

    async def _device(self, request: Request) -> DeviceAuth:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ChatError(ErrorCode.UNAUTHENTICATED, "missing Authorization: Bearer <token>")
        return await self.accounts.authenticate(token.strip())

    @staticmethod
    def _seq_param(request: Request, name: str, default: int | None) -> int | None:
        return int_param(request, name, default, 0, MAX_SEQ)

    # --- accounts -----------------------------------------------------------------------------

    @staticmethod
    def _address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def register(self, request: Request) -> Response:
        self.accounts.check_login_rate(self._address(request))
        body = await self._body(request, RegisterRequest)
        return json_response(await self.accounts.register(body, self._address(request)), 201)

    async def login(self, request: Request) -> Response:
        self.accounts.check_login_rate(self._address(request))
        body = await self._body(request, LoginRequest)
        return json_response(await self.accounts.login(body, self._address(request)))

    async def logout(self, request: Request) -> Response:
        device = await self._device(request)
        await self.accounts.logout(device)
        self.hub.revoke_device(device.device_id)
        return json_response(EmptyResponse())

    async def me(self, request: Request) -> Response:
        device = await self._device(request)
        return json_response(await self.accounts.me(device.user_id))

    async def update_me(self, request: Request) -> Response:
        device = await self._device(request)
        body: MeUpdate = await self._body(request, MeUpdate)
        if body.push_preview is None and body.display_name is None:
            raise ChatError(ErrorCode.INVALID, "nothing to change: give push_preview or"
                            " display_name")
        if body.display_name is not None:  # first: a blank name refuses the whole request
            await self.profiles.set_display_name(device.user_id, body.display_name)
        if body.push_preview is not None:
            await self.service.store.write(sql.set_push_preview, device.user_id,
                                           body.push_preview)
        return json_response(await self.accounts.me(device.user_id))

    async def user(self, request: Request) -> Response:
        await self._device(request)
        return json_response(await self.accounts.user_by_name(request.path_params["username"]))

    async def user_by_id(self, request: Request) -> Response:
        """Who a user_id is (an addition to PROTOCOL.md: frames carry ids, people want names)."""
        await self._device(request)
        return json_response(await self.accounts.user_by_id(request.path_params["user_id"]))

    # --- conversations and messages -----------------------------------------------------------

    async def list_conversations(self, request: Request) -> Response:
        device = await self._device(request)
        return json_response(
            ConversationList(await self.service.list_conversations(device.user_id)))

    async def create_conversation(self, request: Request) -> Response:
        device = await self._device(request)
        body = await self._body(request, CreateConversationRequest)
        info, created = await self.service.create_conversation(device.user_id, body)
        return json_response(info, 201 if created else 200)

    async def get_conversation(self, request: Request) -> Response:
        device = await self._device(request)
        if self.service.cluster is not None:
            await self.service.know(request.path_params["cid"], device.user_id)
        conv = self.service.engine.conversation_for(device.user_id, request.path_params["cid"])
        return json_response(await self.service.conversation_info(device.user_id, conv))

    async def add_member(self, request: Request) -> Response:
        device = await self._device(request)
        body: AddMemberRequest = await self._body(request, AddMemberRequest)
        return json_response(await self.service.change_group(
            device.user_id, request.path_params["cid"], sql.change_membership, "add",
            body.user_id, self.service.group_members))

    async def remove_member(self, request: Request) -> Response:
        """An admin removes a member, or anyone leaves (their own user_id)."""
        device = await self._device(request)
        info = await self.service.change_group(
            device.user_id, request.path_params["cid"], sql.change_membership, "remove",
            request.path_params["uid"], self.service.group_members)
        return json_response(info if info is not None else EmptyResponse())

    async def set_role(self, request: Request) -> Response:
        device = await self._device(request)
        body: SetRoleRequest = await self._body(request, SetRoleRequest)
        return json_response(await self.service.change_group(
            device.user_id, request.path_params["cid"], sql.set_member_role,
            request.path_params["uid"], body.role))

    async def rename(self, request: Request) -> Response:
        device = await self._device(request)
        body: RenameRequest = await self._body(request, RenameRequest)
        return json_response(await self.service.change_group(
            device.user_id, request.path_params["cid"], sql.rename_group, body.name))

    async def history(self, request: Request) -> Response:
        device = await self._device(request)
        page = await self.service.history(
            device.user_id, request.path_params["cid"],
            before=self._seq_param(request, "before", None),
            after=self._seq_param(request, "after", None),
            around=self._seq_param(request, "around", None),
            limit=self._seq_param(request, "limit", 50) or 0,
            folded=self._flag(request, "fold"),
        )
        return json_response(page)

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        raw = request.query_params.get(name, "false").lower()
        if raw not in ("true", "false", "1", "0"):
            raise ChatError(ErrorCode.INVALID, f"{name} must be true or false")
        return raw in ("true", "1")

    async def send(self, request: Request) -> Response:
        """The same path as a `send` frame; 201 for a new message, 200 for a retry."""
        device = await self._device(request)
        body: SendRequest = await self._body(request, SendRequest)
        frame = Send(conversation_id=request.path_params["cid"],
                     **msgspec.structs.asdict(body))
        if self.service.cluster is not None:
            await self.service.know(frame.conversation_id, device.user_id,
                                    max(frame.target or 0, frame.reply_to or 0))
        job = self.service.submit_send(device.user_id, frame, None)
        try:
            message, created = await job.wait()
        except Exception as exc:
            raise self.service.error_for(exc, body.client_msg_id) from None
        sent = Sent(message.conversation_id, message.client_msg_id, message.seq, message.ts)
        return json_response(sent, 201 if created else 200)

    # --- media -------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        """The raw body is the file; streamed to disk, refused past `upload_bytes`."""
        device = await self._device(request)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.upload_bytes:
            raise ChatError(ErrorCode.TOO_LARGE, f"upload is larger than {self.upload_bytes}"
                            " bytes")
        content_type = request.headers.get("content-type") or "application/octet-stream"
        if len(content_type) > 128:
            raise ChatError(ErrorCode.INVALID, "Content-Type is too long")
        sha256, size = await self.media.save(self._stream(request), self.upload_bytes)
        media_id = await self.service.store.write(sql.insert_media, sha256, size,
                                                  content_type, device.user_id)
        return json_response(MediaInfo(media_id, size, content_type), 201)

    async def download(self, request: Request) -> Response:
        """Only to its uploader and to members of a conversation that references it; anyone
        else is told it does not exist."""
        device = await self._device(request)
        found = await self.service.store.read(sql.media_for, request.path_params["media_id"],
                                              device.user_id)
        if found is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such media")
        sha256, content_type, _ = found
        # The bytes behind a media_id never change, so clients may keep them. The uploader chose
        # the content type: never sniff it, and never run what it holds (an HTML or SVG upload
        # opened in a tab would otherwise script the node's origin).
        return FileResponse(self.media.path(sha256), media_type=content_type, headers={
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'"})

    # --- operations ---------------------------------------------------------------------------

    async def schema(self, request: Request) -> Response:
        return json_response(json_schema())

    async def openapi(self, request: Request) -> Response:
        return Response(self.openapi_json, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        """200 only when a real write commits (a full disk or a stuck writer shows here) and,
        in a cluster, the bus works."""
        free = self.service.store.free_bytes()
        if free is not None and free < HEALTH_MIN_FREE_BYTES:
            return json_response(HealthStatus("unavailable", "the disk holding the store is"
                                              f" full ({free} bytes left)"), 503)
        with trio.move_on_after(HEALTH_TIMEOUT_S):
            try:
                await self.service.store.write(sql.touch_health)
            except Exception as exc:
                return json_response(HealthStatus("unavailable", str(exc)), 503)
            cluster = self.service.cluster
            if cluster is not None and not cluster.bus.healthy:
                # Sends still commit, but other nodes' sessions would not hear of them.
                return json_response(HealthStatus("unavailable", "the bus (Redis) cannot be"
                                                  " reached"), 503)
            return json_response(HealthStatus("ok"))
        return json_response(HealthStatus("unavailable", "store write timed out"), 503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.service.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")
