"""The admin's account and invite commands (`chatnode user ...`, `chatnode invite ...`), against
whichever store the config names.

The CLI runs them synchronously in its own process, before or beside any node. SQLite and
PostgreSQL each implement UserAdmin; the PostgreSQL one is imported only when a store URL is
configured, so a single-node install never loads psycopg.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

from . import sqlite as sql
from .errors import cluster_module
from .records import InviteRecord, UserRecord


class UserAdmin(Protocol):
    def add_user(self, username: str, display_name: str | None, password_hash: str,
                 role: sql.Role = "user") -> UserRecord:
        """Raises ChatError(CONFLICT) if the name is taken."""
        ...

    def list_users(self) -> list[UserRecord]:
        """Every account, by username."""
        ...

    def set_user_disabled(self, username: str, disabled: bool) -> bool:
        """False if there is no such user."""
        ...

    def set_user_role(self, username: str, role: sql.Role) -> bool:
        """False if there is no such user."""
        ...

    def reset_password(self, username: str, password_hash: str) -> list[str] | None:
        """A new password, and every device of the account logged out: None if there is no
        such user, else the ids of the devices logged out."""
        ...

    def add_invite(self, token_hash: bytes, max_uses: int, makes_admin: bool,
                   expires_at: int) -> str:
        """A new invite made with the CLI (no creator); returns its invite_id."""
        ...

    def list_invites(self) -> list[InviteRecord]:
        """Every invite, oldest first."""
        ...

    def revoke_invite(self, invite_id: str) -> bool:
        """False if there is no such invite."""
        ...

    def close(self) -> None: ...


class SqliteUserAdmin:
    """UserAdmin on the data directory's SQLite file. BEGIN IMMEDIATE takes the write lock at
    once, so a command beside a running node waits its turn (busy_timeout) instead of failing
    halfway through a transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add_user(self, username: str, display_name: str | None, password_hash: str,
                 role: sql.Role = "user") -> UserRecord:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return sql.insert_user(self._conn, username, display_name, password_hash, role)

    def list_users(self) -> list[UserRecord]:
        return sql.list_users(self._conn)

    def set_user_disabled(self, username: str, disabled: bool) -> bool:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return sql.set_user_disabled(self._conn, username, disabled)

    def set_user_role(self, username: str, role: sql.Role) -> bool:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return sql.set_user_role(self._conn, username, role)

    def reset_password(self, username: str, password_hash: str) -> list[str] | None:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            user = sql.user_by_name(self._conn, username)
            return None if user is None else sql.reset_password(self._conn, user.user_id,
                                                                password_hash)

    def add_invite(self, token_hash: bytes, max_uses: int, makes_admin: bool,
                   expires_at: int) -> str:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return sql.insert_invite(self._conn, token_hash, max_uses, makes_admin, None,
                                     expires_at)

    def list_invites(self) -> list[InviteRecord]:
        return sql.list_invites(self._conn)

    def revoke_invite(self, invite_id: str) -> bool:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            return sql.revoke_invite(self._conn, invite_id)

    def close(self) -> None:
        self._conn.close()


def open_user_admin(store_url: str | None, data_dir: Path,
                    durability: sql.Durability = "full") -> UserAdmin:
    """The store the config names, created or migrated to this version if needed. Raises
    StoreError (one line) when a PostgreSQL store cannot be used."""
    if store_url is None:
        return SqliteUserAdmin(sql.open_database(data_dir, durability))
    admin: UserAdmin = cluster_module("postgres").PostgresUserAdmin(store_url)
    return admin
