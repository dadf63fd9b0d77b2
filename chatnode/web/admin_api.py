"""REST routes of the node's admins (additions to PROTOCOL.md): invites, and the node's
accounts (list, disable or enable, role, a new password). Each one checks the caller's
token, then that the caller is an admin (else 403 `forbidden`), before reading anything
else."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..admins import Admins
from ..protocol import EmptyResponse, InviteRequest, PasswordReset, UserUpdate
from ..store import UserRecord
from .responses import json_response

if TYPE_CHECKING:
    from .rest import Api


class AdminApi:
    def __init__(self, api: Api, admins: Admins | None) -> None:
        self.api = api
        self._admins = admins

    def routes(self, v1: str) -> list[Route]:
        return [
            Route(f"{v1}/invites", self.create_invite, methods=["POST"]),
            Route(f"{v1}/invites", self.list_invites, methods=["GET"]),
            Route(f"{v1}/invites/{{invite_id}}", self.revoke_invite, methods=["DELETE"]),
            Route(f"{v1}/users", self.list_users, methods=["GET"]),
            Route(f"{v1}/users/by-id/{{user_id}}", self.update_user, methods=["PATCH"]),
            Route(f"{v1}/users/by-id/{{user_id}}/password", self.reset_password,
                  methods=["POST"]),
        ]

    @property
    def admins(self) -> Admins:
        assert self._admins is not None, "the app was built without its admins"
        return self._admins

    async def _admin(self, request: Request) -> UserRecord:
        return await self.admins.require_admin(await self.api._device(request))

    async def create_invite(self, request: Request) -> Response:
        admin = await self._admin(request)
        body: InviteRequest = await self.api._body(request, InviteRequest)
        created = await self.admins.create_invite(admin, body, str(request.base_url))
        return json_response(created, 201)

    async def list_invites(self, request: Request) -> Response:
        await self._admin(request)
        return json_response(await self.admins.list_invites())

    async def revoke_invite(self, request: Request) -> Response:
        admin = await self._admin(request)
        await self.admins.revoke_invite(admin, request.path_params["invite_id"])
        return json_response(EmptyResponse())

    async def list_users(self, request: Request) -> Response:
        await self._admin(request)
        return json_response(await self.admins.list_users(self.api.service.presence.shown_online))

    async def update_user(self, request: Request) -> Response:
        admin = await self._admin(request)
        body: UserUpdate = await self.api._body(request, UserUpdate)
        return json_response(await self.admins.update_user(
            admin, request.path_params["user_id"], body, self.api.service.presence.shown_online))

    async def reset_password(self, request: Request) -> Response:
        admin = await self._admin(request)
        body: PasswordReset = await self.api._body(request, PasswordReset)
        return json_response(
            await self.admins.reset_password(admin, request.path_params["user_id"], body))
