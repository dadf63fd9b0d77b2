"""REST routes of account self-service (additions to PROTOCOL.md): the caller's devices and
logging one out, changing the password, and the avatar.

Logging a device out, whichever way, revokes its token in the store (checked on every request
and hello, no cache) and closes its live sessions with 4001 through the hub.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ..profiles import AVATAR_BYTES
from ..protocol import ChatError, ErrorCode, PasswordChange, PasswordChanged
from ..store import sqlite as sql
from .responses import json_response

if TYPE_CHECKING:
    from .rest import Api


class AccountApi:
    def __init__(self, api: Api) -> None:
        self.api = api

    def routes(self, v1: str) -> list[Route]:
        return [
            Route(f"{v1}/devices", self.devices, methods=["GET"]),
            Route(f"{v1}/devices/{{device_id}}", self.revoke_device, methods=["DELETE"]),
            Route(f"{v1}/me/password", self.change_password, methods=["POST"]),
            Route(f"{v1}/me/avatar", self.set_avatar, methods=["PUT"]),
            Route(f"{v1}/me/avatar", self.remove_avatar, methods=["DELETE"]),
            Route(f"{v1}/avatars/{{avatar_id}}", self.avatar, methods=["GET"]),
        ]

    async def devices(self, request: Request) -> Response:
        device = await self.api._device(request)
        online = self.api.hub.devices_online(device.user_id)
        return json_response(await self.api.accounts.devices(device, online))

    async def revoke_device(self, request: Request) -> Response:
        """Another user's device, or one already logged out, is 404: it tells nothing."""
        device = await self.api._device(request)
        device_id = request.path_params["device_id"]
        await self.api.accounts.revoke(device, device_id)
        self.api.hub.revoke_device(device_id)
        return json_response(await self.api.accounts.devices(
            device, self.api.hub.devices_online(device.user_id)))

    async def change_password(self, request: Request) -> Response:
        # A wrong current password is a password guess: the login limit applies (a stolen
        # token must not make guessing cheaper than the login form).
        address = self.api._address(request)
        self.api.accounts.check_login_rate(address)
        device = await self.api._device(request)
        body: PasswordChange = await self.api._body(request, PasswordChange)
        revoked = await self.api.accounts.change_password(device, body, address)
        for device_id in revoked:
            self.api.hub.revoke_device(device_id)
        return json_response(PasswordChanged(len(revoked)))

    async def set_avatar(self, request: Request) -> Response:
        """The raw body is the image (see profiles.py for what is taken)."""
        device = await self.api._device(request)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > AVATAR_BYTES:
            raise ChatError(ErrorCode.TOO_LARGE, f"an avatar is at most {AVATAR_BYTES} bytes;"
                            " nothing changed")
        await self.api.profiles.set_avatar(device.user_id, self.api._stream(request))
        return json_response(await self.api.accounts.me(device.user_id))

    async def remove_avatar(self, request: Request) -> Response:
        device = await self.api._device(request)
        await self.api.profiles.remove_avatar(device.user_id)
        return json_response(await self.api.accounts.me(device.user_id))

    async def avatar(self, request: Request) -> Response:
        """Any user's current avatar, to anyone logged in (as display names are); a replaced
        one is 404. The bytes behind an id never change, so clients may keep them."""
        await self.api._device(request)
        found = await self.api.service.store.read(sql.avatar_file,
                                                  request.path_params["avatar_id"])
        if found is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such avatar")
        sha256, content_type = found
        return FileResponse(self.api.media.path(sha256), media_type=content_type, headers={
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'"})
