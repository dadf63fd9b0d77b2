"""What a node's admins do over REST: make, list and revoke invites; list accounts, disable
or enable them, change their roles, give them a new password. Everyone else is refused with
`forbidden`.

The admin CLI does the same on the store directly (cli.py); this is the path of the browser
app and of scripts holding an admin's token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from . import auth
from .hub import Hub
from .invites import invite_info, invite_link, new_invite_token, parse_duration
from .logs import fields
from .protocol import (
    AccountInfo,
    AccountList,
    ChatError,
    ErrorCode,
    InviteCreated,
    InviteList,
    InviteRequest,
    PasswordChanged,
    PasswordReset,
    UserUpdate,
)
from .store import DeviceAuth, SqliteStore, UserRecord, now_ms
from .store import sqlite as sql

log = logging.getLogger("chatnode.admin")

# Whether a user has a live session (on any node): presence.PresenceTracker.shown_online.
Online = Callable[[str], bool]


class Admins:
    def __init__(self, store: SqliteStore, hub: Hub, public_url: str | None) -> None:
        self.store = store
        self.hub = hub
        self.public_url = public_url

    async def require_admin(self, device: DeviceAuth) -> UserRecord:
        user = await self.store.read(sql.user_by_id, device.user_id)
        if user is None or user.role != "admin":
            raise ChatError(ErrorCode.FORBIDDEN, "only an admin of this node can do this")
        return user

    async def create_invite(self, admin: UserRecord, request: InviteRequest,
                            request_url: str) -> InviteCreated:
        """`request_url` is where the admin reached the node: the link's address when no
        public_url is configured (behind a proxy, the proxy fix has made it the public one)."""
        try:
            expires_at = now_ms() + parse_duration(request.expires)
        except ValueError as exc:
            raise ChatError(ErrorCode.INVALID, str(exc)) from None
        token = new_invite_token()
        invite_id = await self.store.write(sql.insert_invite, auth.token_hash(token),
                                           request.uses, request.admin, admin.user_id,
                                           expires_at)
        log.info("invite created", extra=fields(invite=invite_id, user=admin.user_id,
                                                uses=request.uses, admin=request.admin))
        return InviteCreated(invite_id, token, invite_link(self.public_url or request_url, token),
                             request.uses, expires_at, request.admin)

    async def list_invites(self) -> InviteList:
        now = now_ms()
        return InviteList([invite_info(i, now) for i in await self.store.read(sql.list_invites)])

    async def revoke_invite(self, admin: UserRecord, invite_id: str) -> None:
        if not await self.store.write(sql.revoke_invite, invite_id):
            raise ChatError(ErrorCode.NOT_FOUND, "no such invite")
        log.info("invite revoked", extra=fields(invite=invite_id, user=admin.user_id))

    async def list_users(self, online: Online) -> AccountList:
        users = await self.store.read(sql.list_users)
        return AccountList([account_info(u, online) for u in users])

    async def update_user(self, admin: UserRecord, user_id: str, change: UserUpdate,
                          online: Online) -> AccountInfo:
        """An admin never disables or demotes themselves here, so the browser cannot lock the
        last admin out (the CLI can still change any account)."""
        if user_id == admin.user_id and (change.disabled or change.role == "user"):
            raise ChatError(ErrorCode.CONFLICT, "an admin cannot disable or demote themselves")
        user = await self.store.write(sql.update_user, user_id, change.disabled, change.role)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        if user.disabled:
            self.hub.disable_user(user_id)
        log.info("account changed", extra=fields(user=user_id, by=admin.user_id,
                                                 disabled=user.disabled, role=user.role))
        return account_info(user, online)

    async def reset_password(self, admin: UserRecord, user_id: str,
                             reset: PasswordReset) -> PasswordChanged:
        """For someone who forgot their password (or lost a phone): every device of the account
        is logged out, its live sessions closed here and on every other node. An admin's own
        password goes through POST /api/v1/me/password, which needs the current one, as for
        everyone: a token alone (a laptop left open) never sets its own account's password."""
        if user_id == admin.user_id:
            raise ChatError(ErrorCode.CONFLICT, "an admin changes their own password with"
                            " POST /api/v1/me/password (it needs the current one)")
        # Looked up first: an unknown id costs no password hash.
        if await self.store.read(sql.user_by_id, user_id) is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        password_hash = await trio.to_thread.run_sync(auth.hash_password, reset.new_password)
        devices = await self.store.write(sql.reset_password, user_id, password_hash)
        if devices is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        for device_id in devices:
            self.hub.revoke_device(device_id)
        log.info("password reset", extra=fields(user=user_id, by=admin.user_id,
                                                devices_logged_out=len(devices)))
        return PasswordChanged(len(devices))


def account_info(user: UserRecord, online: Online) -> AccountInfo:
    last_seen = now_ms() if online(user.user_id) else user.last_seen
    return AccountInfo(user.user_id, user.username, user.display_name, user.role,
                       user.disabled, user.created_at, last_seen)
