"""The `chatnode` command: serve, the admin's user commands, check, backup, restore, reindex
and migrate (a single node into a cluster).

The user commands open the database directly, so they work with or without a node running on
the same data directory (SQLite's WAL lets them write alongside it), and on a cluster's
PostgreSQL store before any node has run.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import msgspec
import trio

from . import auth, logs
from .config import Config, ConfigError, load_config
from .invites import (
    DEFAULT_EXPIRY,
    MAX_USES,
    invite_info,
    invite_link,
    new_invite_token,
    parse_duration,
)
from .protocol import ChatError, Password, RegisterRequest
from .store import backup as backups
from .store import sqlite as sql
from .store.admin import UserAdmin, open_user_admin
from .store.check import CheckReport, check_store
from .store.errors import StoreError, cluster_module
from .store.sqlite import Role

_config_option = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                              help="TOML config file (see config.example.toml).")
_data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False),
                                help="Data directory (default ./chatnode-data).")


def _load(config_file: str | None, **flags: object) -> Config:
    try:
        return load_config(config_file, **flags)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _refuse_cluster_serving(config: Config) -> None:
    """A PostgreSQL store needs a bus (the nodes would not hear of each other's messages), and a
    bus without a PostgreSQL store would be ignored: say so in one line rather than start a
    node that would half work."""
    if config.store.url is None:
        if config.bus.url is not None:
            raise click.ClickException(
                "[bus] url is for cluster mode, which needs a PostgreSQL store ([store] url);"
                " a single node on SQLite has no bus: remove [bus] url")
        return
    if config.bus.url is None:
        raise click.ClickException(
            "a PostgreSQL store ([store] url) needs a bus for the nodes to talk through:"
            " set [bus] url (CHATNODE_BUS_URL) to a redis:// or rediss:// URL")


def _refuse_postgres(config: Config, command: str) -> None:
    if config.store.url is not None:
        raise click.ClickException(
            f"chatnode {command} works on a SQLite store only; for PostgreSQL use its own tools"
            " (pg_dump, pg_restore)")


@click.group()
@click.version_option(package_name="chatnode")
def main() -> None:
    """chatnode: a self-hosted chat server in one process."""


@main.command()
@_config_option
@_data_dir_option
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8420; 0 picks a free one).")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="Log lines on standard error: text (default) or one JSON object per line.")
def serve(config_file: str | None, data_dir: str | None, host: str | None,
          port: int | None, log_format: str | None) -> None:
    """Run the node: HTTP, WebSocket and the web client on one port."""
    from .server import DataDirInUse
    from .server import serve as run_node
    from .store.sqlite import StoreDamaged

    config = _load(config_file, data_dir=data_dir, host=host, port=port, log_format=log_format)
    _refuse_cluster_serving(config)
    logs.configure(config.log_level, config.log_format)
    try:
        trio.run(run_node, config, lambda line: click.echo(line, nl=True) or sys.stdout.flush())
    except (DataDirInUse, StoreDamaged, StoreError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@_config_option
@_data_dir_option
def check(config_file: str | None, data_dir: str | None) -> None:
    """Verify the store: integrity, every log numbered 1..last_seq with no gap, markers within
    the log. Read-only, so it runs beside a live node; exits 1 if anything is wrong."""
    config = _load(config_file, data_dir=data_dir)
    if config.store.url is not None:
        report = _check_postgres(config.store.url)
    else:
        report = _check_sqlite(Path(config.data_dir) / sql.DB_FILE)
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    summary = (f"{report.conversations} conversations, {report.messages} messages,"
               f" {report.members} memberships")
    if not report.ok:
        click.echo(f"store has {len(report.problems)} problem(s) ({summary})")
        sys.exit(1)
    click.echo(f"store OK: {summary}")


def _check_sqlite(path: Path) -> CheckReport:
    if not path.exists():
        raise click.ClickException(f"no store at {path}")
    try:
        conn = sql.connect(path, read_only=True)
        try:
            return check_store(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return CheckReport(problems=[f"SQLite integrity check: the file cannot be read: {exc}"])


def _check_postgres(url: str) -> CheckReport:
    report: CheckReport = _on_postgres(lambda postgres: postgres.check_store(url))
    return report


def _on_postgres(operation: Callable[[ModuleType], Any]) -> Any:
    """`operation(chatnode.store.postgres)`, with what stops it said as the CLI's one line."""
    try:
        return operation(cluster_module("postgres"))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("backup")
@click.argument("target", type=click.Path(dir_okay=False))
@_config_option
@_data_dir_option
def backup_command(target: str, config_file: str | None, data_dir: str | None) -> None:
    """Copy the store to TARGET, consistently, while the node runs (SQLite's backup API).
    Uploaded files are not in it: copy DATA_DIR/media alongside."""
    config = _load(config_file, data_dir=data_dir)
    _refuse_postgres(config, "backup")
    database = Path(config.data_dir) / sql.DB_FILE
    if not database.exists():
        raise click.ClickException(f"no store at {database}")
    try:
        users, conversations, messages = backups.backup(database, Path(target))
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up {users} users, {conversations} conversations and {messages}"
               f" messages to {target}; copy {Path(config.data_dir) / 'media'} for uploads")


@main.command()
@_config_option
@_data_dir_option
def reindex(config_file: str | None, data_dir: str | None) -> None:
    """Rebuild the search index from the log, in one transaction (on SQLite, stop the node
    first; on PostgreSQL, nodes may run: their sends wait until the rebuild commits)."""
    from .server import DataDirInUse, data_dir_lock
    from .store import search as search_index

    config = _load(config_file, data_dir=data_dir)
    if config.store.url is not None:
        count = _reindex_postgres(config.store.url)
        click.echo(f"search index rebuilt: {count} messages indexed")
        return
    database = Path(config.data_dir) / sql.DB_FILE
    if not database.exists():
        raise click.ClickException(f"no store at {database}")
    # Refused beside a running node: the rebuild holds the store's one write lock until it
    # commits, longer than the node waits for it on a big store, so its sends would fail.
    try:
        with data_dir_lock(Path(config.data_dir)):
            conn = sql.open_database(Path(config.data_dir))
            try:
                conn.execute("BEGIN IMMEDIATE")
                count = search_index.rebuild(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()
    except DataDirInUse as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"search index rebuilt: {count} messages indexed")


def _reindex_postgres(url: str) -> int:
    # No lock file to refuse on: the nodes are elsewhere. pg_search.rebuild locks the index
    # table against writes for its transaction instead, so nothing they send meanwhile is lost.
    count: int = _on_postgres(lambda postgres: postgres.reindex(url))
    return count


@main.command("restore")
@click.argument("backup_file", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Replace an existing store without asking.")
@_config_option
@_data_dir_option
def restore_command(backup_file: str, yes: bool, config_file: str | None,
                    data_dir: str | None) -> None:
    """Put a backup back as the store of the data directory (stop the node first)."""
    from .server import DataDirInUse, data_dir_lock

    config = _load(config_file, data_dir=data_dir)
    _refuse_postgres(config, "restore")
    database = Path(config.data_dir) / sql.DB_FILE
    try:
        with data_dir_lock(Path(config.data_dir)):
            held = backups.verify(Path(backup_file))
            if database.exists() and not yes:
                click.confirm(f"replace the store in {config.data_dir} with {backup_file}?",
                              abort=True)
            backups.restore(Path(backup_file), database)
    except (backups.BackupError, DataDirInUse) as exc:
        raise click.ClickException(str(exc)) from None
    users, conversations, messages = held
    click.echo(f"restored {users} users, {conversations} conversations and {messages}"
               f" messages into {config.data_dir}")


@main.command("migrate")
@click.option("--from", "source_dir", required=True, type=click.Path(file_okay=False),
              help="The single node's data directory (stop that node first).")
@_config_option
def migrate_command(source_dir: str, config_file: str | None) -> None:
    """Move a single node's store into the cluster's PostgreSQL store named by --config:
    users, devices and their tokens, conversations, the whole log with its seqs, markers,
    uploads and push targets, and the upload files into `[store] media_dir` when the config
    names one. The PostgreSQL store must be empty."""
    from .media import copy_media_files
    from .server import DataDirInUse, data_dir_lock
    from .store import postgres
    from .store.transfer import transfer

    config = _load(config_file)
    if config.store.url is None:
        raise click.ClickException(
            "chatnode migrate moves a node into a PostgreSQL store: name it in --config"
            " ([store] url) or CHATNODE_STORE_URL")
    database = Path(source_dir) / sql.DB_FILE
    if not database.exists():
        raise click.ClickException(f"no store at {database}")
    try:
        # Holding the node's own lock: nothing writes the source while it is copied.
        with data_dir_lock(Path(source_dir)):
            # The files first: once the store commits, every upload it names is in place.
            media_dir = config.store.media_dir
            files = None if media_dir is None else copy_media_files(
                Path(source_dir) / "media", Path(media_dir))
            source = sql.open_database(Path(source_dir))
            target = postgres.open_migrated(config.store.url)
            try:
                source.execute("BEGIN")  # one snapshot of the source for the whole copy
                report = transfer(source, target)
            finally:
                source.close()
                target.close()
    except (DataDirInUse, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot copy the upload files: {exc}") from None
    click.echo(f"moved {report.summary()} into {postgres.describe(config.store.url)}")
    if files is None:
        click.echo(f"the upload files stay in {Path(source_dir) / 'media'}: copy its folders"
                   " into the directory every node mounts as [store] media_dir", err=True)
    else:
        click.echo(f"copied {files} upload files into {media_dir}")


@main.group()
def user() -> None:
    """Manage accounts (works while the node is running)."""


@contextmanager
def _user_admin(config_file: str | None, data_dir: str | None) -> Iterator[UserAdmin]:
    """The configured store's accounts: the data directory's SQLite file, or PostgreSQL."""
    config = _load(config_file, data_dir=data_dir)
    try:
        admin = open_user_admin(config.store.url, Path(config.data_dir), config.durability)
        try:
            yield admin
        finally:
            admin.close()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _found(found: bool, username: str) -> None:
    if not found:
        raise click.ClickException(f"no user named {username!r}")


def _password(given: str | None, from_stdin: bool, prompt: str) -> str:
    """--password, the first line of standard input, or typed twice at a prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if given is None:
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return given


@user.command("add")
@click.argument("username")
@click.option("--password", help="The password (or use --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--display-name", help="Name shown to others (default: the username).")
@click.option("--admin", is_flag=True,
              help="Make it an admin of the node (admins make invites and disable users).")
@_config_option
@_data_dir_option
def user_add(username: str, password: str | None, password_stdin: bool,
             display_name: str | None, admin: bool, config_file: str | None,
             data_dir: str | None) -> None:
    """Create an account."""
    password = _password(password, password_stdin, "Password")
    try:
        request = msgspec.convert({"username": username, "password": password,
                                   "display_name": display_name}, RegisterRequest)
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"invalid account: {exc}") from None
    try:
        with _user_admin(config_file, data_dir) as store:
            created = store.add_user(request.username, request.display_name,
                                     auth.hash_password(request.password),
                                     "admin" if admin else "user")
    except ChatError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"added {created.username} ({created.user_id})"
               + (", an admin" if created.role == "admin" else ""))


@user.command("list")
@_config_option
@_data_dir_option
def user_list(config_file: str | None, data_dir: str | None) -> None:
    """List accounts."""
    with _user_admin(config_file, data_dir) as admin:
        users = admin.list_users()
    for u in users:
        seen = (datetime.fromtimestamp(u.last_seen / 1000, UTC).strftime("%Y-%m-%d %H:%M")
                if u.last_seen else "never")
        state = "disabled" if u.disabled else "active"
        click.echo(f"{u.username:<24} {u.user_id:<20} {state:<8} {u.role:<5} last seen {seen}"
                   f"  {u.display_name}")


@user.command("disable")
@click.argument("username")
@_config_option
@_data_dir_option
def user_disable(username: str, config_file: str | None, data_dir: str | None) -> None:
    """Disable an account: it can no longer log in, its tokens stop working, and a running
    node closes its live sessions within a second or two."""
    with _user_admin(config_file, data_dir) as admin:
        _found(admin.set_user_disabled(username, True), username)
    click.echo(f"disabled {username}")


@user.command("enable")
@click.argument("username")
@_config_option
@_data_dir_option
def user_enable(username: str, config_file: str | None, data_dir: str | None) -> None:
    """Enable a disabled account again: it can log in, and its devices' tokens work again."""
    with _user_admin(config_file, data_dir) as admin:
        _found(admin.set_user_disabled(username, False), username)
    click.echo(f"enabled {username}")


@user.command("password")
@click.argument("username")
@click.option("--password", help="The new password (or use --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_config_option
@_data_dir_option
def user_password(username: str, password: str | None, password_stdin: bool,
                  config_file: str | None, data_dir: str | None) -> None:
    """Give an account a new password (when its owner forgot theirs, or lost a phone): every
    device it is logged in on is logged out, and a running node closes their sessions."""
    password = _password(password, password_stdin, "New password")
    try:
        msgspec.convert(password, Password)  # registration's rules
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"invalid password: {exc}") from None
    with _user_admin(config_file, data_dir) as admin:
        logged_out = admin.reset_password(username, auth.hash_password(password))
    if logged_out is None:
        raise click.ClickException(f"no user named {username!r}")
    devices = f"{len(logged_out)} device{'' if len(logged_out) == 1 else 's'}"
    click.echo(f"new password for {username}; logged out {devices}")


@user.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "user"]))
@_config_option
@_data_dir_option
def user_role(username: str, role: Role, config_file: str | None, data_dir: str | None) -> None:
    """Make an account an admin of the node, or an ordinary user again."""
    with _user_admin(config_file, data_dir) as admin:
        _found(admin.set_user_role(username, role), username)
    click.echo(f"{username} is now {'an admin' if role == 'admin' else 'a user'}")


@main.group()
def invite() -> None:
    """Invite people: each invite is a link that lets them register (registration = "invite")."""


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


@invite.command("create")
@click.option("--uses", type=click.IntRange(1, MAX_USES), default=1, show_default=True,
              help="How many accounts the invite may make.")
@click.option("--expires", default=DEFAULT_EXPIRY, show_default=True,
              help="How long it lasts: 30m, 12h, 7d.")
@click.option("--admin", is_flag=True, help="The accounts it makes are admins.")
@_config_option
@_data_dir_option
def invite_create(uses: int, expires: str, admin: bool, config_file: str | None,
                  data_dir: str | None) -> None:
    """Make an invite and print its link (shown this once: only a hash is kept)."""
    config = _load(config_file, data_dir=data_dir)
    try:
        expires_at = sql.now_ms() + parse_duration(expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    token = new_invite_token()
    with _user_admin(config_file, data_dir) as store:
        invite_id = store.add_invite(auth.token_hash(token), uses, admin, expires_at)
    base = config.public_url
    if base is None:
        host = f"[{config.host}]" if ":" in config.host else config.host
        base = f"http://{host}:{config.port}"
        click.echo(f"note: no public_url is configured, so the link uses host and port from"
                   f" the config ({base}); set public_url to the address people open", err=True)
    kind = "admin invite" if admin else "invite"
    click.echo(f"created {kind} {invite_id}: {uses} use{'s' if uses > 1 else ''},"
               f" expires {_utc(expires_at)}")
    click.echo(invite_link(base, token))


@invite.command("list")
@_config_option
@_data_dir_option
def invite_list(config_file: str | None, data_dir: str | None) -> None:
    """List invites: id, state, uses left, expiry, who made it (never their tokens)."""
    with _user_admin(config_file, data_dir) as store:
        invites = store.list_invites()
    now = sql.now_ms()
    for i in invites:
        info = invite_info(i, now)
        click.echo(f"{info.invite_id:<20} {info.state:<8} {info.uses_left}/{info.max_uses} uses"
                   f" left  expires {_utc(info.expires_at)}  by {info.created_by or '(cli)'}"
                   + ("  makes admins" if info.admin else ""))
    if not invites:
        click.echo("no invites")


@invite.command("revoke")
@click.argument("invite_id")
@_config_option
@_data_dir_option
def invite_revoke(invite_id: str, config_file: str | None, data_dir: str | None) -> None:
    """Revoke an invite: its link no longer registers anyone."""
    with _user_admin(config_file, data_dir) as store:
        found = store.revoke_invite(invite_id)
    if not found:
        raise click.ClickException(f"no invite with id {invite_id!r}")
    click.echo(f"revoked {invite_id}")


@main.command()
@click.option("--url", default="http://127.0.0.1:8420", show_default=True,
              help="The node to talk to.")
@click.option("--user", "username", help="Log in as this user (the password is prompted).")
def client(url: str, username: str | None) -> None:
    """Chat from the terminal. Without --user, the token in CHATNODE_TOKEN is used."""
    from .client import ApiError
    from .terminal import run

    token = os.environ.get("CHATNODE_TOKEN") if username is None else None
    if username is None and token is None:
        raise click.UsageError("give --user NAME, or a token in CHATNODE_TOKEN")
    password = click.prompt("Password", hide_input=True) if username is not None else None
    try:
        trio.run(run, url, username, password, token)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    except KeyboardInterrupt:
        pass
