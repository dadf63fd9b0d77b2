"""The group rules on both stores (the `conn` fixture runs each test on SQLite and on
PostgreSQL): who may add, remove, promote, demote and rename, the size limit, the admin heir,
which system messages are written in which order with which seqs, and the exact error of every
refusal, which changes nothing. On PostgreSQL, two nodes changing one group at once take turns,
so the rule "a group keeps an admin" holds across nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatnode.protocol import ChatError, ErrorCode, Message
from chatnode.store.records import ConversationRecord

from . import test_store, test_store_accounts
from .test_store import last_seq, ops_for
from .test_store_accounts import racing

# The fixtures of those suites, used here as they are: a connection to each store, and two
# connections to one PostgreSQL store (the writers of two nodes).
conn = test_store.conn
two_writers = test_store_accounts.two_writers

LIMIT = 4


def users(conn: Any, *names: str) -> list[str]:
    return [ops_for(conn).insert_user(conn, name, None, "h").user_id for name in names]


def group(conn: Any, creator: str, others: list[str]) -> str:
    record, _ = ops_for(conn).insert_conversation(conn, "group", "club", creator, others)
    return record.conversation_id


def events(messages: list[Message]) -> list[tuple[int, str, dict[str, str]]]:
    """(seq, sender, body) of system messages, which every group change appends."""
    assert all(m.kind == "system" for m in messages)
    return [(m.seq, m.sender_id, json.loads(m.body)) for m in messages]


def roles(record: ConversationRecord) -> dict[str, str]:
    return {m.user_id: m.role for m in record.members}


def refused(change: Any, *args: Any) -> tuple[str, str]:
    with pytest.raises(ChatError) as caught:
        change(*args)
    return caught.value.code, caught.value.message


def test_each_group_change_appends_its_system_message_with_the_next_seq(conn: Any) -> None:
    ops = ops_for(conn)
    ann, ben, cat, dan = users(conn, "ann", "ben", "cat", "dan")
    cid = group(conn, ann, [ben, cat])
    ops.append_message(conn, cid, ann, "hello", "text", "hello", None, None, None)  # seq 1

    added, record = ops.change_membership(conn, cid, ann, "add", dan, LIMIT)
    assert events(added) == [(2, ann, {"event": "member_added", "user_id": dan})]
    (joined,) = [m for m in record.members if m.user_id == dan]
    # a new member's log starts at their own member_added
    assert (joined.role, joined.joined_seq, joined.last_delivered_seq,
            joined.last_read_seq) == ("member", 1, 1, 1)

    promoted, record = ops.set_member_role(conn, cid, ann, ben, "admin")
    assert events(promoted) == [(3, ann, {"event": "role_changed", "user_id": ben,
                                          "role": "admin"})]
    assert roles(record)[ben] == "admin"
    same, record = ops.set_member_role(conn, cid, ann, ben, "admin")
    assert same == [] and roles(record)[ben] == "admin" and last_seq(conn, cid) == 3

    renamed, record = ops.rename_group(conn, cid, ben, "the club")
    assert events(renamed) == [(4, ben, {"event": "renamed", "name": "the club"})]
    assert record.name == "the club"

    removed, record = ops.change_membership(conn, cid, ben, "remove", cat, LIMIT)
    assert events(removed) == [(5, ben, {"event": "member_removed", "user_id": cat})]
    left, record = ops.change_membership(conn, cid, dan, "remove", dan, LIMIT)
    assert events(left) == [(6, dan, {"event": "member_left", "user_id": dan})]
    assert roles(record) == {ann: "admin", ben: "admin"} and record.last_seq == 6

    demoted, record = ops.set_member_role(conn, cid, ben, ann, "member")
    assert events(demoted) == [(7, ben, {"event": "role_changed", "user_id": ann,
                                         "role": "member"})]
    assert roles(record) == {ann: "member", ben: "admin"}


def test_the_last_admin_leaving_hands_admin_to_the_longest_standing_member(conn: Any) -> None:
    ops = ops_for(conn)
    ann, zed, bob = users(conn, "ann", "zed", "bob")
    cid = group(conn, ann, [])
    ops.change_membership(conn, cid, ann, "add", zed, LIMIT)  # seq 1: zed joined at 0
    ops.change_membership(conn, cid, ann, "add", bob, LIMIT)  # seq 2: bob joined at 1

    left, record = ops.change_membership(conn, cid, ann, "remove", ann, LIMIT)

    assert events(left) == [(3, ann, {"event": "member_left", "user_id": ann}),
                            (4, ann, {"event": "role_changed", "user_id": zed,
                                      "role": "admin"})]
    assert roles(record) == {zed: "admin", bob: "member"}


def test_no_heir_while_an_admin_stays_or_when_nobody_does(conn: Any) -> None:
    ops = ops_for(conn)
    ann, ben, cat = users(conn, "ann", "ben", "cat")
    cid = group(conn, ann, [ben, cat])
    ops.set_member_role(conn, cid, ann, cat, "admin")  # seq 1

    left, record = ops.change_membership(conn, cid, ann, "remove", ann, LIMIT)
    assert events(left) == [(2, ann, {"event": "member_left", "user_id": ann})]
    assert roles(record) == {ben: "member", cat: "admin"}

    alone = group(conn, ann, [])
    left, record = ops.change_membership(conn, alone, ann, "remove", ann, LIMIT)
    assert events(left) == [(1, ann, {"event": "member_left", "user_id": ann})]
    assert record.members == []


def test_every_refused_group_change_says_why_and_changes_nothing(conn: Any) -> None:
    ops = ops_for(conn)
    ann, ben, cat, dan, eve, gone = users(conn, "ann", "ben", "cat", "dan", "eve", "gone")
    ops.set_user_disabled(conn, "gone", True)
    cid = group(conn, ann, [ben, cat])
    direct, _ = ops.insert_conversation(conn, "direct", None, ann, [ben])
    before = ops.conversation_by_id(conn, cid)
    add, remove = "add", "remove"
    stranger = (ErrorCode.FORBIDDEN, "not a member of this conversation")
    not_admin = ErrorCode.FORBIDDEN
    no_member = (ErrorCode.NOT_FOUND, "not a member of this group")

    cases: list[tuple[tuple[str, str], Any, tuple[Any, ...]]] = [
        (stranger, ops.change_membership, (cid, dan, add, eve, LIMIT)),
        (stranger, ops.change_membership, (cid, dan, remove, dan, LIMIT)),
        (stranger, ops.set_member_role, (cid, dan, ann, "member")),
        (stranger, ops.rename_group, (cid, dan, "mine")),
        (stranger, ops.rename_group, ("c_no_such_conversation", ann, "mine")),
        ((ErrorCode.INVALID, "a direct conversation's members and name are fixed"),
         ops.change_membership, (direct.conversation_id, ann, add, cat, LIMIT)),
        ((ErrorCode.INVALID, "a direct conversation's members and name are fixed"),
         ops.rename_group, (direct.conversation_id, ann, "us")),
        ((not_admin, "only a group admin can add members"),
         ops.change_membership, (cid, ben, add, cat, LIMIT)),  # before "already a member"
        ((not_admin, "only a group admin can remove members"),
         ops.change_membership, (cid, ben, remove, cat, LIMIT)),
        (no_member, ops.change_membership, (cid, ben, remove, dan, LIMIT)),  # before admin
        ((not_admin, "only a group admin can change roles"),
         ops.set_member_role, (cid, ben, dan, "admin")),  # before "not a member"
        ((not_admin, "only a group admin can rename the group"),
         ops.rename_group, (cid, ben, "mine")),
        ((ErrorCode.CONFLICT, "already a member"),
         ops.change_membership, (cid, ann, add, ben, 3)),  # before the size limit
        ((ErrorCode.TOO_LARGE, "a group has at most 3 members"),
         ops.change_membership, (cid, ann, add, "u_nobody", 3)),  # before "no such user"
        ((ErrorCode.NOT_FOUND, "no such user"),
         ops.change_membership, (cid, ann, add, "u_nobody", LIMIT)),
        ((ErrorCode.NOT_FOUND, "no such user"),
         ops.change_membership, (cid, ann, add, gone, LIMIT)),
        (no_member, ops.set_member_role, (cid, ann, dan, "admin")),
        ((ErrorCode.CONFLICT, "a group keeps at least one admin"),
         ops.set_member_role, (cid, ann, ann, "member")),
    ]
    for answer, change, args in cases:
        assert refused(change, conn, *args) == answer, (change.__name__, args)

    assert ops.conversation_by_id(conn, cid) == before
    assert ops.conversation_by_id(conn, direct.conversation_id) == direct


@pytest.mark.parametrize("first_ends", ["COMMIT", "ROLLBACK"])
def test_two_admins_demoting_each_other_through_two_nodes_leave_the_group_an_admin(
        two_writers: tuple[Any, Any], first_ends: str) -> None:
    """The second node's change waits for the first's lock on the conversation row before it
    reads the roles, so it sees the first's demotion (or its rollback)."""
    from chatnode.store import pg_ops

    first, second = two_writers
    ann, ben = users(first, "ann", "ben")
    cid = group(first, ann, [ben])
    pg_ops.set_member_role(first, cid, ann, ben, "admin")
    demotions = iter([(ann, ben), (ben, ann)])

    def demote(conn: Any) -> Any:
        actor, other = next(demotions)
        return pg_ops.set_member_role(conn, cid, actor, other, "member")

    result, error = racing(first, second, demote, first_ends)

    record = pg_ops.conversation_by_id(first, cid)
    assert record is not None
    if first_ends == "COMMIT":
        assert isinstance(error, ChatError)
        assert (error.code, error.message) == (ErrorCode.FORBIDDEN,
                                               "only a group admin can change roles")
        assert roles(record) == {ann: "admin", ben: "member"}
    else:
        assert error is None and events(result[0])[0][0] == 2
        assert roles(record) == {ann: "member", ben: "admin"}
