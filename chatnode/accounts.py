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
    DeviceInfo,
    DeviceList,
    ErrorCode,
    LoginRequest,
    Me,
    PasswordChange,
    RegisterRequest,
    UserInfo,
)
from .ratelimit import RateLimiter
from .store import DeviceAuth, SqliteStore, now_ms
from .store import sqlite as sql

# Usernames, user and device ids and client addresses only: never a password or a token.
log = logging.getLogger("chatnode.accounts")

# A device's last seen is written at most this often: a request is not worth a write each.
SEEN_WRITE_EVERY_MS = 60_000


class Accounts:
    def __init__(self, store: SqliteStore, registration: str,
                 login_rate: RateLimiter) -> None:
        self.store = store
        self.registration = registration  # "closed", "invite" or "open" (config.py)
        self.login_rate = login_rate
        self._seen_written: dict[str, int] = {}  # device id -> last time written

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
        self.device_seen(device.device_id)
        return device

    def device_seen(self, device_id: str, *, always: bool = False) -> None:
        """Note that a device connected or made a request. Written without waiting, at most
        once a minute per device (`always` at a session's end, so a long session leaves its
        real end behind)."""
        now = now_ms()
        if not always and now - self._seen_written.get(device_id, 0) < SEEN_WRITE_EVERY_MS:
            return
        self._seen_written[device_id] = now
        self.store.submit(sql.set_device_last_seen, device_id, now)

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
        self._seen_written.pop(device.device_id, None)
        log.info("logout", extra=fields(user=device.user_id, device=device.device_id))

    async def devices(self, device: DeviceAuth, online: set[str]) -> DeviceList:
        """The caller's logins; one with a live session (in `online`) was last seen now."""
        now = now_ms()
        return DeviceList([
            DeviceInfo(d.device_id, d.name, d.created_at,
                       now if d.device_id in online else d.last_seen,
                       d.device_id == device.device_id)
            for d in await self.store.read(sql.devices_of, device.user_id)])

    async def revoke(self, device: DeviceAuth, device_id: str) -> None:
        """Log out one of the caller's devices (the caller's own included)."""
        if not await self.store.write(sql.revoke_device_of, device.user_id, device_id):
            raise ChatError(ErrorCode.NOT_FOUND, "no such device")
        self._seen_written.pop(device_id, None)
        log.info("device logged out", extra=fields(user=device.user_id, device=device_id,
                                                   by=device.device_id))

    async def change_password(self, device: DeviceAuth, request: PasswordChange,
                              address: str) -> list[str]:
        """Check the current password (the caller checks the login rate first, as for a
        login: this is a password guess too), set the new one, and with `log_out_others`
        revoke every other device. Returns the device ids logged out."""
        user = await self.store.read(sql.user_by_id, device.user_id)
        ok = await trio.to_thread.run_sync(
            auth.verify_password, None if user is None else user.password_hash,
            request.current_password)
        if user is None or not ok:
            log.info("password change refused", extra=fields(
                user=device.user_id, device=device.device_id, reason="wrong password",
                address=address))
            raise ChatError(ErrorCode.FORBIDDEN,
                            "current_password is not this account's password; nothing changed")
        password_hash = await trio.to_thread.run_sync(auth.hash_password, request.new_password)
        revoked: list[str] = await self.store.write(
            sql.change_password, user.user_id, password_hash,
            device.device_id if request.log_out_others else None)
        for device_id in revoked:
            self._seen_written.pop(device_id, None)
        log.info("password changed", extra=fields(user=user.user_id, device=device.device_id,
                                                  devices_logged_out=len(revoked),
                                                  address=address))
        return revoked

    async def user_by_name(self, username: str) -> UserInfo:
        user = await self.store.read(sql.user_by_name, username)
        if user is None or user.disabled:
            raise ChatError(ErrorCode.NOT_FOUND, f"no user named {username!r}")
        return UserInfo(user.user_id, user.username, user.display_name, user.avatar_id)

    async def me(self, user_id: str) -> Me:
        user = await self.store.read(sql.user_by_id, user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        preview = await self.store.read(sql.push_preview_of, user_id)
        return Me(user.user_id, user.username, user.display_name, preview, user.role,
                  user.avatar_id)

    async def user_by_id(self, user_id: str) -> UserInfo:
        user = await self.store.read(sql.user_by_id, user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        return UserInfo(user.user_id, user.username, user.display_name, user.avatar_id)
