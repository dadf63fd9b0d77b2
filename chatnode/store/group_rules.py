"""The rules of a group's membership, roles and name, once for both stores.

Who may add, remove, promote, demote and rename; the size limit; the heir when the last admin
goes; which system messages a change writes, in which order; and the exact refusal of each thing
that is not allowed. These are the product's rules, so there is one copy of them. What a rule
reads and writes is the store's: each store hands over its own statements (GroupStatements),
and every SQL statement stays in sqlite.py and pg_ops.py; this module has none.

Every refusal is raised before the first write, so a refused change changes nothing. Each
change appends `system` messages through the store's own append, in the same transaction as the
change itself, so every member's devices catch up on it like any message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ..protocol import ChatError, ErrorCode, Message
from .records import ConversationRecord, UserRecord

Conn = TypeVar("Conn")
MemberRole = Literal["admin", "member"]


@dataclass(frozen=True)
class GroupStatements(Generic[Conn]):
    """What the rules need of a store, each a function of the store's connection."""

    # Taken before the group is read, held to the end of the transaction: two changes to one
    # group take turns, so each sees the other's members and roles (on PostgreSQL, two nodes).
    lock_conversation: Callable[[Conn, str], None]
    conversation: Callable[[Conn, str], ConversationRecord | None]  # members by seniority
    user: Callable[[Conn, str], UserRecord | None]
    # (conversation_id, actor_id, body) -> the appended `system` message
    append_system_message: Callable[[Conn, str, str, str], Message]
    # (conversation_id, user_id, start): a member whose log and markers start at `start`
    insert_member: Callable[[Conn, str, str, int], None]
    delete_member: Callable[[Conn, str, str], None]
    update_member_role: Callable[[Conn, str, str, MemberRole], None]
    update_group_name: Callable[[Conn, str, str], None]


def change_membership(store: GroupStatements[Conn], conn: Conn, conversation_id: str,
                      actor_id: str, action: Literal["add", "remove"], user_id: str,
                      group_members: int) -> tuple[list[Message], ConversationRecord]:
    """Add a member (admins only) or remove one (admins; anyone may remove themselves).

    A new member's log starts at their own `member_added`. When the last admin goes, the
    longest-standing member is promoted (`role_changed`, after the leaving message)."""
    conv, roles = _group_for_change(store, conn, conversation_id, actor_id)
    events: list[Message] = []
    if action == "add":
        _require_admin(roles, actor_id, "add members")
        if user_id in roles:
            raise ChatError(ErrorCode.CONFLICT, "already a member")
        if len(roles) >= group_members:
            raise ChatError(ErrorCode.TOO_LARGE, f"a group has at most {group_members} members")
        user = store.user(conn, user_id)
        if user is None or user.disabled:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        added = _system_message(store, conn, conversation_id, actor_id,
                                {"event": "member_added", "user_id": user_id})
        events.append(added)
        store.insert_member(conn, conversation_id, user_id, added.seq - 1)
    else:
        if user_id not in roles:
            raise ChatError(ErrorCode.NOT_FOUND, "not a member of this group")
        leaving = user_id == actor_id
        if not leaving:
            _require_admin(roles, actor_id, "remove members")
        events.append(_system_message(
            store, conn, conversation_id, actor_id,
            {"event": "member_left" if leaving else "member_removed", "user_id": user_id}))
        stay = [m.user_id for m in conv.members if m.user_id != user_id]  # by seniority
        heir = stay[0] if stay and all(roles[u] != "admin" for u in stay) else None
        if heir is not None:
            events.append(_system_message(store, conn, conversation_id, actor_id,
                                          {"event": "role_changed", "user_id": heir,
                                           "role": "admin"}))
            store.update_member_role(conn, conversation_id, heir, "admin")
        store.delete_member(conn, conversation_id, user_id)
    return events, _reread(store, conn, conversation_id)


def set_member_role(store: GroupStatements[Conn], conn: Conn, conversation_id: str,
                    actor_id: str, user_id: str, role: MemberRole
                    ) -> tuple[list[Message], ConversationRecord]:
    """An admin promotes a member or demotes an admin; a group keeps at least one admin.
    Giving a member the role they have writes nothing."""
    _, roles = _group_for_change(store, conn, conversation_id, actor_id)
    _require_admin(roles, actor_id, "change roles")
    if user_id not in roles:
        raise ChatError(ErrorCode.NOT_FOUND, "not a member of this group")
    if roles[user_id] == role:
        return [], _reread(store, conn, conversation_id)
    if role == "member" and list(roles.values()).count("admin") == 1:
        raise ChatError(ErrorCode.CONFLICT, "a group keeps at least one admin")
    event = _system_message(store, conn, conversation_id, actor_id,
                            {"event": "role_changed", "user_id": user_id, "role": role})
    store.update_member_role(conn, conversation_id, user_id, role)
    return [event], _reread(store, conn, conversation_id)


def rename_group(store: GroupStatements[Conn], conn: Conn, conversation_id: str,
                 actor_id: str, name: str) -> tuple[list[Message], ConversationRecord]:
    """An admin renames the group."""
    _, roles = _group_for_change(store, conn, conversation_id, actor_id)
    _require_admin(roles, actor_id, "rename the group")
    event = _system_message(store, conn, conversation_id, actor_id,
                            {"event": "renamed", "name": name})
    store.update_group_name(conn, conversation_id, name)
    return [event], _reread(store, conn, conversation_id)


def _group_for_change(store: GroupStatements[Conn], conn: Conn, conversation_id: str,
                      actor_id: str) -> tuple[ConversationRecord, dict[str, str]]:
    """The group and its members' roles, read under the store's lock; a stranger, or a
    conversation that does not exist, is told the same."""
    store.lock_conversation(conn, conversation_id)
    conv = store.conversation(conn, conversation_id)
    roles = {m.user_id: m.role for m in conv.members} if conv is not None else {}
    if conv is None or actor_id not in roles:
        raise ChatError(ErrorCode.FORBIDDEN, "not a member of this conversation")
    if conv.kind != "group":
        raise ChatError(ErrorCode.INVALID, "a direct conversation's members and name are fixed")
    return conv, roles


def _require_admin(roles: dict[str, str], actor_id: str, what: str) -> None:
    if roles[actor_id] != "admin":
        raise ChatError(ErrorCode.FORBIDDEN, f"only a group admin can {what}")


def _system_message(store: GroupStatements[Conn], conn: Conn, conversation_id: str,
                    actor_id: str, event: dict[str, str]) -> Message:
    body = json.dumps(event, separators=(",", ":"))
    return store.append_system_message(conn, conversation_id, actor_id, body)


def _reread(store: GroupStatements[Conn], conn: Conn, conversation_id: str
            ) -> ConversationRecord:
    """The group as the change left it: what the node puts in its memory and on the bus."""
    record = store.conversation(conn, conversation_id)
    assert record is not None
    return record
