"""Issue 10's account operations on both stores (the `conn` fixture runs each test on SQLite and
on PostgreSQL): devices listed and logged out, last seen never going back, a password change
that logs out the other devices, display names and avatars, invites and registration. On
PostgreSQL, two nodes' writers racing for the last use of an invite or for one username: two
connections, one transaction each, as two nodes' group commits would be."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatnode.protocol import ChatError, ErrorCode
from chatnode.store import sqlite as sql
from chatnode.store.sqlite import now_ms

from .test_store import STORES, ops_for, query

DAY_MS = 86_400_000


@pytest.fixture(params=STORES)
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        connection: Any = sql.open_database(tmp_path, "normal")
    else:
        from chatnode.store import postgres

        connection = postgres.open_migrated(request.getfixturevalue("pg_url"))
    yield connection
    connection.close()


def in_transaction(conn: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """As the node's writer runs a job: all of it or nothing."""
    conn.execute("BEGIN")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def test_devices_are_listed_seen_and_logged_out_only_by_their_owner(conn: Any) -> None:
    ops = ops_for(conn)
    ann = ops.insert_user(conn, "ann", None, "h").user_id
    ben = ops.insert_user(conn, "ben", None, "h").user_id
    phone, laptop, tablet = [ops.insert_device(conn, ann, name, name.encode())
                             for name in ("phone", "laptop", "tablet")]
    bens = ops.insert_device(conn, ben, None, b"ben")

    listed = ops.devices_of(conn, ann)
    assert sorted(d.device_id for d in listed) == sorted([phone, laptop, tablet])
    assert all(d.last_seen == d.created_at for d in listed)
    ops.set_device_last_seen(conn, phone, now_ms() + 5000)
    ops.set_device_last_seen(conn, phone, 1)  # a late write never moves it back
    (seen,) = [d.last_seen for d in ops.devices_of(conn, ann) if d.device_id == phone]
    assert seen is not None and seen > now_ms()

    assert ops.revoke_device_of(conn, ann, bens) is False  # not hers: nothing happens
    assert ops.device_by_token_hash(conn, b"ben") is not None
    assert ops.revoke_device_of(conn, ann, tablet) is True
    assert ops.revoke_device_of(conn, ann, tablet) is False  # already gone
    assert ops.device_by_token_hash(conn, b"tablet") is None

    logged_out = in_transaction(conn, ops.change_password, ann, "new-hash", phone)
    assert logged_out == [laptop]
    assert [d.device_id for d in ops.devices_of(conn, ann)] == [phone]
    assert ops.user_by_id(conn, ann).password_hash == "new-hash"
    assert ops.change_password(conn, ann, "newer", None) == []
    assert [d.device_id for d in ops.devices_of(conn, ann)] == [phone]


def test_display_name_and_avatar_change_and_a_replaced_avatar_is_released(conn: Any) -> None:
    ops = ops_for(conn)
    ann = ops.insert_user(conn, "ann", None, "h").user_id
    assert ops.set_display_name(conn, ann, "Ann Ö").display_name == "Ann Ö"

    first = ops.set_avatar(conn, ann, ("a" * 64, 10, "image/png"))
    assert first.avatar_id is not None and first.display_name == "Ann Ö"
    assert ops.avatar_file(conn, first.avatar_id) == ("a" * 64, "image/png")
    second = ops.set_avatar(conn, ann, ("b" * 64, 20, "image/webp"))
    assert ops.avatar_file(conn, first.avatar_id) is None  # replaced: no longer served
    assert ops.users_info(conn, [ann])[ann].avatar_id == second.avatar_id
    referenced = dict(query(conn, "SELECT media_id, referenced FROM media"))
    assert (bool(referenced[first.avatar_id]), bool(referenced[second.avatar_id])) == (
        False, True)
    assert ops.set_avatar(conn, ann, None).avatar_id is None


def test_an_invite_registers_its_uses_and_a_refusal_or_a_taken_name_uses_nothing(
        conn: Any) -> None:
    ops = ops_for(conn)
    ops.insert_user(conn, "taken", None, "h")
    invite_id = ops.insert_invite(conn, b"invite", 1, True, None, now_ms() + DAY_MS)

    with pytest.raises(ChatError) as taken:
        in_transaction(conn, ops.register_user, "Taken", None, "h", b"d0", None, b"invite")
    assert taken.value.code == ErrorCode.CONFLICT
    assert ops.invite_by_token_hash(conn, b"invite").uses == 0

    user, device_id = in_transaction(conn, ops.register_user, "new", "New", "h", b"d1",
                                     "phone", b"invite")
    assert (user.username, user.role) == ("new", "admin")  # an admin invite makes an admin
    assert ops.device_by_token_hash(conn, b"d1").device_id == device_id

    with pytest.raises(ChatError) as used:
        in_transaction(conn, ops.register_user, "late", None, "h", b"d2", None, b"invite")
    assert used.value.code == ErrorCode.FORBIDDEN
    assert ops.user_by_name(conn, "late") is None
    assert ops.revoke_invite(conn, invite_id) is True
    (listed,) = ops.list_invites(conn)
    assert (listed.uses, listed.makes_admin, listed.revoked_at is not None) == (1, True, True)

    changed = ops.update_user(conn, user.user_id, True, "user")
    assert (changed.disabled, changed.role) == (True, "user")
    assert ops.update_user(conn, user.user_id, None, None) == changed
    assert ops.update_user(conn, "u_nobody", True, None) is None


# --- PostgreSQL: two nodes at once ------------------------------------------------------------

@pytest.fixture
def two_writers(pg_url: str) -> Iterator[tuple[Any, Any]]:
    """Two connections to one migrated PostgreSQL store: the writers of two nodes."""
    from chatnode.store import postgres

    first = postgres.open_migrated(pg_url)
    second = postgres.connect(pg_url)
    yield first, second
    first.close()
    second.close()


def racing(first: Any, second: Any, job: Callable[[Any], Any], first_ends: str
           ) -> tuple[Any, BaseException | None]:
    """`job` runs on `first` in an open transaction, then on `second` in a thread (which waits
    on first's row locks), then first's transaction ends with `first_ends` (COMMIT or
    ROLLBACK). Returns what the second run returned or raised."""
    first.execute("BEGIN")
    job(first)
    outcome: dict[str, Any] = {}

    def second_node() -> None:
        try:
            outcome["result"] = in_transaction(second, job)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=second_node)
    thread.start()
    thread.join(0.3)  # usually blocked on the row lock by now; either way the answer is the same
    first.execute(first_ends)
    thread.join()
    return outcome.get("result"), outcome.get("error")


@pytest.mark.parametrize("first_ends", ["COMMIT", "ROLLBACK"])
def test_the_last_use_of_an_invite_through_two_nodes_makes_one_account(
        two_writers: tuple[Any, Any], first_ends: str) -> None:
    from chatnode.store import pg_ops

    first, second = two_writers
    pg_ops.insert_invite(first, b"last", 1, False, None, now_ms() + DAY_MS)
    names = iter(["one", "two"])

    def register(conn: Any) -> Any:
        name = next(names)
        return pg_ops.register_user(conn, name, None, "h", name.encode(), None, b"last")

    result, error = racing(first, second, register, first_ends)

    if first_ends == "COMMIT":
        assert isinstance(error, ChatError) and error.code == ErrorCode.FORBIDDEN
        assert [u.username for u in pg_ops.list_users(first)] == ["one"]
    else:
        assert error is None and result[0].username == "two"
        assert [u.username for u in pg_ops.list_users(first)] == ["two"]
    assert pg_ops.invite_by_token_hash(first, b"last").uses == 1


def test_one_username_through_two_nodes_at_once_is_one_account_and_a_conflict(
        two_writers: tuple[Any, Any]) -> None:
    from chatnode.store import pg_ops

    first, second = two_writers
    tokens = iter([b"first", b"second"])

    def register(conn: Any) -> Any:
        return pg_ops.register_user(conn, "zed", None, "h", next(tokens), None, None)

    _, error = racing(first, second, register, "COMMIT")

    assert isinstance(error, ChatError) and error.code == ErrorCode.CONFLICT
    assert [u.username for u in pg_ops.list_users(first)] == ["zed"]
    assert pg_ops.device_by_token_hash(first, b"second") is None



async def test_text_with_nul_is_refused_as_invalid_on_postgresql_and_changes_nothing(
        pg_url: str) -> None:
    """SQLite keeps U+0000 in TEXT; PostgreSQL cannot, so its store refuses it as bad input
    (not `internal`): a display name, a message, a lookup."""
    from chatnode.store import pg_ops
    from chatnode.store.pg_store import PostgresStore

    store = PostgresStore(pg_url)
    store.start()
    try:
        ann = await store.write(sql.insert_user, "ann", "Ann", "h")
        for fn, args in [(sql.set_display_name, (ann.user_id, "A\x00nn")),
                         (sql.insert_device, (ann.user_id, "ph\x00ne", b"t"))]:
            with pytest.raises(ChatError) as refused:
                await store.write(fn, *args)
            assert refused.value.code == ErrorCode.INVALID
        with pytest.raises(ChatError) as lookup:
            await store.read(sql.user_by_name, "a\x00")
        assert lookup.value.code == ErrorCode.INVALID
        assert (await store.read(sql.user_by_id, ann.user_id)).display_name == "Ann"
        assert await store.read(pg_ops.devices_of, ann.user_id) == []
    finally:
        await store.close()
