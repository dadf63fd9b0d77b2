"""The delivery rules of chatnode.engine, without sockets or a store: markers, group ticks,
sends and catch-up plans, pinned against brute-force versions of the rules in PROTOCOL.md."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatnode.engine import ConversationState, Engine
from chatnode.protocol import ChatError, ErrorCode, Message, Send, StatusUpdate
from chatnode.store import CatchupRange, ConversationRecord, MemberRecord

USERS = [f"u{i}" for i in range(6)]
ME = "u0"
BODY_CHARS = 20
HISTORY = 5

SETTINGS = settings(max_examples=100, deadline=None)


def member(user_id: str, delivered: int = 0, read: int = 0, joined: int = 0,
           role: str = "member") -> MemberRecord:
    return MemberRecord(user_id, role, joined, delivered, read)


def conversation(conversation_id: str, last_seq: int, members: list[MemberRecord], *,
                 kind: str = "group", last_activity: int = 0) -> ConversationRecord:
    return ConversationRecord(conversation_id, kind, None if kind == "direct" else "g",
                              last_seq, last_activity, members)


def engine_of(*records: ConversationRecord, history: int = HISTORY) -> Engine:
    return Engine(list(records), body_chars=BODY_CHARS, history_on_new_device=history)


def brute_view(conv: ConversationState, viewer: str) -> tuple[int, int]:
    """The markers `viewer` is shown: the minimum over every *other* member, 0 when alone."""
    others = [m for uid, m in conv.members.items() if uid != viewer]
    return (min((m.delivered for m in others), default=0),
            min((m.read for m in others), default=0))


def brute_status(conv: ConversationState, viewer: str) -> StatusUpdate:
    delivered, read = brute_view(conv, viewer)
    return StatusUpdate(conv.conversation_id, conv.last_seq, delivered, read,
                        conv.members[viewer].read)


def markers(conv: ConversationState) -> dict[str, tuple[int, int]]:
    return {uid: (m.delivered, m.read) for uid, m in conv.members.items()}


def send(body: str = "hi", *, conversation_id: str = "c1", client_msg_id: str = "m1",
         reply_to: int | None = None) -> Send:
    return Send(conversation_id=conversation_id, client_msg_id=client_msg_id, body=body,
                reply_to=reply_to)


# --- strategies -------------------------------------------------------------------------------

@st.composite
def member_records(draw: st.DrawFn, user_id: str, last_seq: int) -> MemberRecord:
    joined = draw(st.integers(0, last_seq))
    delivered = draw(st.integers(0, last_seq))
    read = draw(st.integers(0, delivered))
    return member(user_id, delivered, read, joined)


@st.composite
def groups(draw: st.DrawFn, min_members: int = 1) -> ConversationRecord:
    last_seq = draw(st.integers(0, 30))
    users = draw(st.lists(st.sampled_from(USERS), min_size=min_members, max_size=len(USERS),
                          unique=True))
    return conversation("c1", last_seq, [draw(member_records(u, last_seq)) for u in users])


@st.composite
def groups_and_moves(draw: st.DrawFn) -> tuple[ConversationRecord, list[tuple[str, int, int]]]:
    """A group and a sequence of (user, delivered, read) marker moves by its members; a move is
    a delivered-only move (read = 0) or a read (which implies delivered), as the service makes
    them, or an arbitrary pair."""
    record = draw(groups())
    users = [m.user_id for m in record.members]
    seqs = st.integers(0, record.last_seq)
    move = st.one_of(
        st.tuples(st.sampled_from(users), seqs, st.just(0)),
        seqs.flatmap(lambda s: st.tuples(st.sampled_from(users), st.just(s), st.just(s))),
        st.tuples(st.sampled_from(users), seqs, seqs),
    )
    return record, draw(st.lists(move, max_size=25))


@st.composite
def histories(draw: st.DrawFn) -> list[ConversationRecord]:
    """Several conversations; ME is a member of some of them, at various points of each."""
    count = draw(st.integers(1, 7))
    records = []
    for index in range(count):
        last_seq = draw(st.integers(0, 40))
        users = draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=4, unique=True))
        records.append(conversation(
            f"c{index}", last_seq, [draw(member_records(u, last_seq)) for u in users],
            last_activity=draw(st.integers(0, 5))))
    return records


@st.composite
def histories_and_syncs(draw: st.DrawFn
                        ) -> tuple[list[ConversationRecord], dict[str, int] | None]:
    records = draw(histories())
    if draw(st.booleans()):
        return records, None
    ids = [r.conversation_id for r in records] + ["c_unknown", "c_other"]
    listed = draw(st.lists(st.sampled_from(ids), unique=True))
    return records, {cid: draw(st.integers(0, 45)) for cid in listed}


# --- membership -------------------------------------------------------------------------------

def test_stranger_and_unknown_conversation_are_both_forbidden() -> None:
    engine = engine_of(conversation("c1", 3, [member("u0"), member("u1")]))
    for user_id, conversation_id in [("u9", "c1"), ("u0", "c_nope")]:
        with pytest.raises(ChatError) as exc:
            engine.conversation_for(user_id, conversation_id)
        assert exc.value.code == ErrorCode.FORBIDDEN
        with pytest.raises(ChatError) as exc:
            engine.check_marker(user_id, conversation_id, 1, read=True)
        assert exc.value.code == ErrorCode.FORBIDDEN
        with pytest.raises(ChatError) as exc:
            engine.check_send(user_id, send(conversation_id=conversation_id))
        assert exc.value.code == ErrorCode.FORBIDDEN
    assert engine.conversation_for("u1", "c1").conversation_id == "c1"


def test_stranger_marker_moves_change_nothing() -> None:
    engine = engine_of(conversation("c1", 3, [member("u0"), member("u1")]))
    conv = engine.conversations["c1"]
    before = markers(conv)
    assert engine.apply_markers("c1", "u9", 3, 3) == []
    assert engine.apply_markers("c_nope", "u0", 3, 3) == []
    assert markers(conv) == before


def test_peers_are_everyone_sharing_a_conversation_but_the_user() -> None:
    engine = engine_of(
        conversation("c1", 0, [member("u0"), member("u1")]),
        conversation("c2", 0, [member("u0"), member("u2"), member("u3")]),
        conversation("c3", 0, [member("u4"), member("u5")]),
    )
    assert engine.peers_of("u0") == {"u1", "u2", "u3"}
    assert engine.peers_of("u9") == set()


# --- markers ----------------------------------------------------------------------------------

@SETTINGS
@given(groups_and_moves())
def test_markers_only_move_forward_and_read_implies_delivered(
        case: tuple[ConversationRecord, list[tuple[str, int, int]]]) -> None:
    record, moves = case
    engine = engine_of(record)
    conv = engine.conversations["c1"]
    for user_id, delivered, read in moves:
        before = markers(conv)
        engine.apply_markers("c1", user_id, delivered, read)
        after = markers(conv)
        for uid, (d, r) in after.items():
            assert d >= before[uid][0] and r >= before[uid][1], "a marker moved backwards"
            assert d >= r, "read beyond delivered"
            if uid != user_id:
                assert (d, r) == before[uid], "someone else's markers moved"
        # and the mover's markers did move where they were asked to
        assert after[user_id] == (max(before[user_id][0], delivered, read),
                                  max(before[user_id][1], read))


def test_read_marker_never_moves_backwards() -> None:
    engine = engine_of(conversation("c1", 10, [member("u0", 8, 6), member("u1", 10, 10)]))
    assert engine.apply_markers("c1", "u0", 3, 3) == []
    assert markers(engine.conversations["c1"])["u0"] == (8, 6)


def test_read_moves_delivered_with_it() -> None:
    engine = engine_of(conversation("c1", 10, [member("u0", 2, 1), member("u1", 10, 10)]))
    engine.apply_markers("c1", "u0", 0, 7)
    assert markers(engine.conversations["c1"])["u0"] == (7, 7)


def test_check_marker_refuses_a_seq_past_last_seq() -> None:
    engine = engine_of(conversation("c1", 5, [member("u0", 2, 1), member("u1")]))
    for read in (False, True):
        with pytest.raises(ChatError) as exc:
            engine.check_marker("u0", "c1", 6, read)
        assert exc.value.code == ErrorCode.INVALID_SEQ
    assert markers(engine.conversations["c1"])["u0"] == (2, 1)


def test_check_marker_at_or_below_current_marker_is_a_no_op() -> None:
    engine = engine_of(conversation("c1", 5, [member("u0", 3, 2), member("u1")]))
    assert engine.check_marker("u0", "c1", 3, read=False) is False
    assert engine.check_marker("u0", "c1", 0, read=False) is False
    assert engine.check_marker("u0", "c1", 2, read=True) is False
    assert engine.check_marker("u0", "c1", 1, read=True) is False
    # above the marker it would move, even when read stays within what is delivered
    assert engine.check_marker("u0", "c1", 4, read=False) is True
    assert engine.check_marker("u0", "c1", 3, read=True) is True
    assert engine.check_marker("u0", "c1", 5, read=True) is True


@SETTINGS
@given(groups(), st.sampled_from(USERS), st.integers(0, 30), st.booleans())
def test_check_marker_says_exactly_whether_apply_would_move_the_marker(
        record: ConversationRecord, user_id: str, seq: int, read: bool) -> None:
    engine = engine_of(record)
    conv = engine.conversations["c1"]
    if user_id not in conv.members or seq > conv.last_seq:
        with pytest.raises(ChatError):
            engine.check_marker(user_id, "c1", seq, read)
        return
    would_move = engine.check_marker(user_id, "c1", seq, read)
    before = markers(conv)[user_id]
    engine.apply_markers("c1", user_id, seq, seq if read else 0)
    after = markers(conv)[user_id]
    moved = after[1] != before[1] if read else after[0] != before[0]
    assert would_move == moved


@SETTINGS
@given(groups_and_moves())
def test_group_markers_are_the_minimum_over_the_other_members(
        case: tuple[ConversationRecord, list[tuple[str, int, int]]]) -> None:
    record, moves = case
    engine = engine_of(record)
    conv = engine.conversations["c1"]
    for user_id, delivered, read in moves:
        for uid in conv.members:
            assert engine.status_for(uid, conv) == brute_status(conv, uid)
        updates = engine.apply_markers("c1", user_id, delivered, read)
        for viewer, status in updates:
            assert status == brute_status(conv, viewer)
    for uid in conv.members:
        assert engine.status_for(uid, conv) == brute_status(conv, uid)


@SETTINGS
@given(groups_and_moves())
def test_marker_updates_go_to_exactly_the_members_whose_view_changed(
        case: tuple[ConversationRecord, list[tuple[str, int, int]]]) -> None:
    record, moves = case
    engine = engine_of(record)
    conv = engine.conversations["c1"]
    for user_id, delivered, read in moves:
        views_before = {uid: brute_view(conv, uid) for uid in conv.members}
        read_before = conv.members[user_id].read
        updates = engine.apply_markers("c1", user_id, delivered, read)
        views_after = {uid: brute_view(conv, uid) for uid in conv.members}
        expected = {uid for uid in conv.members if views_after[uid] != views_before[uid]}
        if conv.members[user_id].read != read_before:
            expected.add(user_id)
        viewers = [viewer for viewer, _ in updates]
        assert len(viewers) == len(set(viewers)), "a member got two updates for one move"
        assert set(viewers) == expected


@SETTINGS
@given(groups_and_moves(), st.data())
def test_a_membership_change_updates_exactly_the_staying_members_whose_view_changed(
        case: tuple[ConversationRecord, list[tuple[str, int, int]]], data: st.DataObject
) -> None:
    """The minima are kept as markers move (chatnode/lowest.py); a membership change swaps
    the conversation for a new one, and its updates must match the rule all the same."""
    record, moves = case
    engine = engine_of(record)
    for user_id, delivered, read in moves:
        engine.apply_markers("c1", user_id, delivered, read)
    conv = engine.conversations["c1"]
    views_before = {uid: brute_view(conv, uid) for uid in conv.members}
    remaining = [member(m.user_id, m.delivered, m.read, m.joined_seq)
                 for m in conv.members.values()]
    newcomers = [u for u in USERS if u not in conv.members]
    if newcomers and data.draw(st.booleans()):
        remaining.append(data.draw(member_records(data.draw(st.sampled_from(newcomers)),
                                                  conv.last_seq)))
    else:
        gone = data.draw(st.sampled_from(sorted(conv.members)))
        remaining = [m for m in remaining if m.user_id != gone]
    updates = engine.replace_conversation(conversation("c1", conv.last_seq, remaining))
    conv = engine.conversations["c1"]
    expected = {uid for uid in views_before.keys() & conv.members.keys()
                if brute_view(conv, uid) != views_before[uid]}
    assert {viewer for viewer, _ in updates} == expected
    for viewer, status in updates:
        assert status == brute_status(conv, viewer)
    for uid in conv.members:
        assert engine.status_for(uid, conv) == brute_status(conv, uid)


def test_direct_conversation_ticks_follow_the_other_member() -> None:
    engine = engine_of(conversation("c1", 4, [member("u0", 4, 4), member("u1", 1, 0)],
                                    kind="direct"))
    updates = dict(engine.apply_markers("c1", "u1", 3, 0))
    # the sender sees delivered move; the reader's read marker did not move, so no self-update
    assert updates == {"u0": StatusUpdate("c1", 4, 3, 0, 4)}
    updates = dict(engine.apply_markers("c1", "u1", 4, 4))
    assert updates == {"u0": StatusUpdate("c1", 4, 4, 4, 4),
                       "u1": StatusUpdate("c1", 4, 4, 4, 4)}


def test_group_tick_waits_for_the_slowest_other_member() -> None:
    engine = engine_of(conversation("c1", 5, [member("u0", 5, 5), member("u1", 0, 0),
                                              member("u2", 0, 0)]))
    updates = dict(engine.apply_markers("c1", "u1", 5, 5))
    # u0 still sees 0: u2 has nothing yet; u2's view (min over u0, u1) moved from 0 to 5
    assert "u0" not in updates
    assert updates["u2"] == StatusUpdate("c1", 5, 5, 5, 0)
    assert updates["u1"].my_read_seq == 5
    updates = dict(engine.apply_markers("c1", "u2", 5, 0))
    assert updates["u0"] == StatusUpdate("c1", 5, 5, 0, 5)


def test_alone_in_a_conversation_sees_sent_only() -> None:
    engine = engine_of(conversation("c1", 3, [member("u0", 3, 3)]))
    assert engine.status_for("u0", engine.conversations["c1"]) == StatusUpdate("c1", 3, 0, 0, 3)


# --- sending ----------------------------------------------------------------------------------

def _send_engine() -> Engine:
    return engine_of(conversation("c1", 5, [member("u0", 5, 5), member("u1", 2, 1)]))


def _refusal(engine: Engine, user_id: str, frame: Send) -> ChatError:
    with pytest.raises(ChatError) as exc:
        engine.check_send(user_id, frame)
    return exc.value


def test_check_send_refuses_a_body_over_the_limit() -> None:
    engine = _send_engine()
    error = _refusal(engine, "u0", send("x" * (BODY_CHARS + 1), client_msg_id="m-long"))
    assert error.code == ErrorCode.TOO_LARGE
    assert error.ref == "m-long"
    assert engine.check_send("u0", send("x" * BODY_CHARS)).conversation_id == "c1"


def test_check_send_refuses_an_empty_body() -> None:
    engine = _send_engine()
    for body in ("", "   ", "\n\t"):
        error = _refusal(engine, "u0", send(body, client_msg_id="m-empty"))
        assert error.code == ErrorCode.INVALID
        assert error.ref == "m-empty"


def test_check_send_refuses_a_non_member() -> None:
    error = _refusal(_send_engine(), "u9", send(client_msg_id="m-x"))
    assert error.code == ErrorCode.FORBIDDEN
    assert error.ref == "m-x"


def test_check_send_refuses_reply_to_beyond_last_seq() -> None:
    engine = _send_engine()
    for reply_to in (6, 0):
        assert _refusal(engine, "u0", send(reply_to=reply_to)).code == ErrorCode.INVALID
    assert engine.check_send("u0", send(reply_to=5)).conversation_id == "c1"
    assert engine.check_send("u0", send(reply_to=1)).conversation_id == "c1"


def test_check_send_changes_nothing() -> None:
    engine = _send_engine()
    conv = engine.conversations["c1"]
    before = (conv.last_seq, conv.last_activity, markers(conv))
    engine.check_send("u1", send())
    with pytest.raises(ChatError):
        engine.check_send("u1", send(""))
    assert (conv.last_seq, conv.last_activity, markers(conv)) == before


def test_apply_message_moves_last_seq_and_the_senders_own_markers_only() -> None:
    engine = engine_of(conversation("c1", 5, [member("u0", 5, 5), member("u1", 2, 1),
                                              member("u2", 4, 4)]))
    conv = engine.conversations["c1"]
    recipients = engine.apply_message(
        Message("c1", 6, "u1", "m1", "text", "hello", 1_000))
    assert sorted(recipients) == ["u0", "u1", "u2"]
    assert all(isinstance(r, str) for r in recipients), "apply_message returns no statuses"
    assert conv.last_seq == 6
    assert conv.last_activity == 1_000
    assert markers(conv) == {"u0": (5, 5), "u1": (6, 6), "u2": (4, 4)}
    # the implicit move is carried by the next status_update of the conversation
    assert engine.status_for("u0", conv) == StatusUpdate("c1", 6, 4, 4, 5)


def test_apply_message_makes_the_conversation_the_most_recent() -> None:
    engine = engine_of(
        conversation("c1", 1, [member("u0"), member("u1")], last_activity=100),
        conversation("c2", 1, [member("u0"), member("u2")], last_activity=200),
    )
    assert [c.conversation_id for c in engine.conversations_of("u0")] == ["c2", "c1"]
    engine.apply_message(Message("c1", 2, "u1", "m1", "text", "hi", 300))
    assert [c.conversation_id for c in engine.conversations_of("u0")] == ["c1", "c2"]


# --- catch-up ---------------------------------------------------------------------------------

def test_catchup_without_sync_starts_at_the_users_last_delivered_seq() -> None:
    engine = engine_of(
        conversation("c1", 10, [member("u0", 7, 3), member("u1", 10, 10)], last_activity=2),
        conversation("c2", 4, [member("u0", 4, 4), member("u1", 4, 4)], last_activity=1),
    )
    plan = engine.catchup_plan("u0", None)
    assert plan.ranges == [CatchupRange("c1", 7, 10)]
    assert [s.conversation_id for s in plan.statuses] == ["c1", "c2"]
    assert plan.upto == {"c1": 10, "c2": 4}


def test_catchup_with_sync_uses_the_clients_seq_and_recent_history_for_the_rest() -> None:
    engine = engine_of(
        conversation("c1", 10, [member("u0", 10, 10), member("u1")], last_activity=3),
        conversation("c2", 20, [member("u0", 20, 20), member("u1")], last_activity=2),
        conversation("c3", 3, [member("u0", 0, 0), member("u1")], last_activity=1),
        conversation("c4", 9, [member("u1"), member("u2")], last_activity=4),
    )
    plan = engine.catchup_plan("u0", {"c1": 2, "c4": 0, "c_unknown": 0})
    assert plan.ranges == [CatchupRange("c1", 2, 10), CatchupRange("c2", 20 - HISTORY, 20),
                           CatchupRange("c3", 0, 3)]
    assert [s.conversation_id for s in plan.statuses] == ["c1", "c2", "c3"]


def test_catchup_never_reaches_before_the_member_joined() -> None:
    engine = engine_of(conversation("c1", 20, [member("u0", 12, 12, joined=12), member("u1")]))
    assert engine.catchup_plan("u0", {"c1": 0}).ranges == [CatchupRange("c1", 12, 20)]
    assert engine.catchup_plan("u0", {}).ranges == [CatchupRange("c1", 15, 20)]
    engine = engine_of(conversation("c1", 20, [member("u0", 0, 0, joined=18), member("u1")]))
    assert engine.catchup_plan("u0", None).ranges == [CatchupRange("c1", 18, 20)]
    assert engine.catchup_plan("u0", {}).ranges == [CatchupRange("c1", 18, 20)]


def test_catchup_holds_back_live_messages_the_device_already_has_beyond_this_nodes_log() -> None:
    """In a cluster the device may have seq 12 from another node while this node has taken in
    only 10 (11 and 12 are still on the bus): nothing to read, and 11 and 12 are not released
    to the device again when they arrive."""
    engine = engine_of(conversation("c1", 10, [member("u0", 10, 10), member("u1")]),
                       conversation("c2", 5, [member("u0", 5, 5), member("u1")]))
    plan = engine.catchup_plan("u0", {"c1": 12, "c2": 3})
    assert plan.ranges == [CatchupRange("c2", 3, 5)]
    assert plan.upto == {"c1": 12, "c2": 5}


def _expected_lo(record: ConversationRecord, sync: dict[str, int] | None) -> int:
    me = next(m for m in record.members if m.user_id == ME)
    if sync is None:
        lo = me.last_delivered_seq
    elif record.conversation_id in sync:
        lo = sync[record.conversation_id]
    else:
        lo = record.last_seq - HISTORY
    return max(lo, me.joined_seq, 0)


@SETTINGS
@given(histories_and_syncs())
def test_catchup_plan_covers_exactly_what_the_device_is_missing(
        case: tuple[list[ConversationRecord], dict[str, int] | None]) -> None:
    records, sync = case
    engine = engine_of(*records)
    plan = engine.catchup_plan(ME, sync)
    mine = {r.conversation_id: r for r in records if any(m.user_id == ME for m in r.members)}

    expected_ranges = {}
    for cid, record in mine.items():
        lo = _expected_lo(record, sync)
        if record.last_seq > lo:
            expected_ranges[cid] = CatchupRange(cid, lo, record.last_seq)
    assert {r.conversation_id: r for r in plan.ranges} == expected_ranges
    assert len(plan.ranges) == len(expected_ranges), "a conversation read twice"
    assert plan.upto == {cid: max(r.last_seq, (sync or {}).get(cid, 0))
                         for cid, r in mine.items()}

    # exactly one status per conversation of the user, each what status_for says
    status_ids = [s.conversation_id for s in plan.statuses]
    assert sorted(status_ids) == sorted(mine)
    for status in plan.statuses:
        conv = engine.conversations[status.conversation_id]
        assert status == brute_status(conv, ME)

    # ordered by latest activity, and the ranges in the same order as the statuses
    activity = [mine[cid].last_activity for cid in status_ids]
    assert activity == sorted(activity, reverse=True)
    range_ids = [r.conversation_id for r in plan.ranges]
    assert range_ids == [cid for cid in status_ids if cid in expected_ranges]


@SETTINGS
@given(histories_and_syncs())
def test_catchup_ignores_sync_entries_of_conversations_not_the_users(
        case: tuple[list[ConversationRecord], dict[str, int] | None]) -> None:
    records, sync = case
    if sync is None:
        return
    engine = engine_of(*records)
    mine = {cid for cid in engine.by_user.get(ME, ())}
    own_only = {cid: seq for cid, seq in sync.items() if cid in mine}
    with_foreign = engine.catchup_plan(ME, sync)
    assert with_foreign == engine.catchup_plan(ME, own_only)
    for r in with_foreign.ranges:
        assert r.conversation_id in mine


def test_unread_counts_from_the_users_own_read_marker() -> None:
    engine = engine_of(conversation("c1", 10, [member("u0", 8, 6), member("u1", 10, 10)]))
    conv = engine.conversations["c1"]
    assert engine.unread("u0", conv) == 4
    engine.apply_markers("c1", "u0", 10, 10)
    assert engine.unread("u0", conv) == 0
