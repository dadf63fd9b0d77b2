"""REST routes of push notifications (additions to PROTOCOL.md): the node's VAPID key, and the
calling device's push target. Logging out removes the target with the device's token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..protocol import (
    ChatError,
    EmptyResponse,
    ErrorCode,
    PushKey,
    PushTargetInfo,
    PushTargetRequest,
    WebPushTarget,
)
from ..push.dispatcher import PushDispatcher
from ..push.targets import check_target
from ..store import sqlite as sql
from .responses import json_response

if TYPE_CHECKING:
    from .rest import Api


class PushApi:
    def __init__(self, api: Api) -> None:
        self.api = api

    def routes(self, v1: str) -> list[Route]:
        return [
            Route(f"{v1}/push/key", self.key, methods=["GET"]),
            Route(f"{v1}/devices/me/push", self.get_target, methods=["GET"]),
            Route(f"{v1}/devices/me/push", self.set_target, methods=["PUT"]),
            Route(f"{v1}/devices/me/push", self.delete_target, methods=["DELETE"]),
        ]

    def _enabled(self) -> PushDispatcher:
        push = self.api.service.push
        if push is None:
            raise ChatError(ErrorCode.NOT_FOUND, "push notifications are turned off on this node")
        return push

    async def key(self, request: Request) -> Response:
        return json_response(PushKey(self._enabled().vapid.public_key))

    async def get_target(self, request: Request) -> Response:
        device = await self.api._device(request)
        target = await self.api.service.store.read(sql.push_target_of, device.device_id)
        if target is None:
            raise ChatError(ErrorCode.NOT_FOUND, "this device has no push target")
        return json_response(PushTargetInfo(target.kind, target.endpoint))

    async def set_target(self, request: Request) -> Response:
        device = await self.api._device(request)
        push = self._enabled()
        body = await self.api._body(request, PushTargetRequest)  # type: ignore[arg-type]
        check_target(body, allow_http=push.config.allow_http,
                     allow_private=push.config.allow_private)
        is_web = isinstance(body, WebPushTarget)
        kind = type(body).__struct_config__.tag
        await self.api.service.store.write(
            sql.set_push_target, device.device_id, device.user_id, kind, body.endpoint,
            body.keys.p256dh if is_web else None, body.keys.auth if is_web else None)
        push.target_added(device.user_id)
        return json_response(PushTargetInfo(kind, body.endpoint))

    async def delete_target(self, request: Request) -> Response:
        device = await self.api._device(request)
        await self.api.service.store.write(sql.delete_push_target, device.device_id)
        return json_response(EmptyResponse())
