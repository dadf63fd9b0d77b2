"""Accounts: registration, login (one device per login), logout and token checks."""

from __future__ import annotations

import logging

import trio

from . import auth
from .invites import invite_refusal, invite_state
from .logs import fields
from .protocol import (
    AuthResponse,
    ChatError,
    ErrorCode,
    LoginRequest,
    Me,
    RegisterRequest,
    UserInfo,
)
from .ratelimit import RateLimiter
from .store import DeviceAuth, SqliteStore, now_ms
from .store import sqlite as sql

# Usernames, user and device ids and client addresses only: never a password or a token.
log = logging.getLogger("chatnode.accounts")


class Accounts:
    def __init__(self, store: SqliteStore, registration: str,
                 login_rate: RateLimiter) -> None:
        self.store = store
        self.registration = registration  # "closed", "invite" or "open" (config.py)
        self.login_rate = login_rate

    def check_login_rate(self, address: str) -> None:
        """Password guesses per client address (login and register alike)."""
        retry_after_ms = self.login_rate.take(address)
        if retry_after_ms is not None:
            raise ChatError(ErrorCode.RATE_LIMITED, "too many login attempts from this address",
                            retry_after_ms=retry_after_ms)

    async def authenticate(self, token: str) -> DeviceAuth:
        device = await self.store.read(sql.device_by_token_hash, auth.token_hash(token))
        if device is not None and device.disabled:
            log.info("token refused, account disabled",
                     extra=fields(user=device.user_id, device=device.device_id))
        if device is None or device.disabled:
            raise ChatError(ErrorCode.UNAUTHENTICATED, "unknown, revoked or disabled token")
        return device

    async def register(self, request: RegisterRequest, address: str) -> AuthResponse:
        """With registration = "invite", a missing invite is `registration_closed` (as on a
        closed node: there is no way in without one) and an unusable one `forbidden`, saying
        why; "open" ignores invites. Either way a refusal creates nothing."""
        if self.registration == "closed":
            raise ChatError(ErrorCode.REGISTRATION_CLOSED,
                            "registration is closed: ask the admin for an account")
        invite_hash = None
        if self.registration == "invite":
            if request.invite is None:
                raise ChatError(ErrorCode.REGISTRATION_CLOSED,
                                "registration needs an invite: ask an admin for an invite link")
            invite_hash = auth.token_hash(request.invite)
            # Refused before the costly password hash; the write checks again, atomically.
            invite = await self.store.read(sql.invite_by_token_hash, invite_hash)
            if invite is None or invite_state(invite, now_ms()) != "active":
                raise ChatError(ErrorCode.FORBIDDEN, invite_refusal(invite, now_ms()))
        password_hash = await trio.to_thread.run_sync(auth.hash_password, request.password)
        token = auth.new_token()
        user, device_id = await self.store.write(
            sql.register_user, request.username, request.display_name, password_hash,
            auth.token_hash(token), "registration", invite_hash)
        log.info("registered", extra=fields(user=user.user_id, username=user.username,
                                            device=device_id, role=user.role,
                                            invited=invite_hash is not None, address=address))
        return AuthResponse(user_id=user.user_id, token=token, device_id=device_id)

    async def login(self, request: LoginRequest, address: str) -> AuthResponse:
        user = await self.store.read(sql.user_by_name, request.username)
        password_hash = None if user is None else user.password_hash
        ok = await trio.to_thread.run_sync(auth.verify_password, password_hash, request.password)
        if user is None:
            # Not the name tried: people type passwords into the username box.
            log.info("login failed", extra=fields(reason="no such user", address=address))
            raise ChatError(ErrorCode.UNAUTHENTICATED, "wrong username or password")
        if not ok:
            log.info("login failed", extra=fields(username=user.username, user=user.user_id,
                                                  reason="wrong password", address=address))
            raise ChatError(ErrorCode.UNAUTHENTICATED, "wrong username or password")
        if user.disabled:
            log.info("login failed", extra=fields(username=user.username, user=user.user_id,
                                                  reason="account disabled", address=address))
            raise ChatError(ErrorCode.FORBIDDEN, "this account is disabled")
        response = await self._new_device(user.user_id, request.device_name)
        log.info("login", extra=fields(user=user.user_id, username=user.username,
                                       device=response.device_id, address=address))
        return response

    async def _new_device(self, user_id: str, name: str | None) -> AuthResponse:
        token = auth.new_token()
        device_id = await self.store.write(sql.insert_device, user_id, name,
                                           auth.token_hash(token))
        return AuthResponse(user_id=user_id, token=token, device_id=device_id)

    async def logout(self, device: DeviceAuth) -> None:
        await self.store.write(sql.revoke_device, device.device_id)
        log.info("logout", extra=fields(user=device.user_id, device=device.device_id))

    async def user_by_name(self, username: str) -> UserInfo:
        user = await self.store.read(sql.user_by_name, username)
        if user is None or user.disabled:
            raise ChatError(ErrorCode.NOT_FOUND, f"no user named {username!r}")
        return UserInfo(user.user_id, user.username, user.display_name)

    async def me(self, user_id: str) -> Me:
        user = await self.store.read(sql.user_by_id, user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        preview = await self.store.read(sql.push_preview_of, user_id)
        return Me(user.user_id, user.username, user.display_name, preview, user.role)

    async def user_by_id(self, user_id: str) -> UserInfo:
        user = await self.store.read(sql.user_by_id, user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        return UserInfo(user.user_id, user.username, user.display_name)
