"""chatnode.cluster.sequencer: whatever order the bus hands messages over in, with duplicates
and losses, each conversation's messages come out 1..N exactly once, in order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chatnode.cluster.sequencer import Sequencer
from chatnode.protocol import Message


def msg(seq: int, conversation_id: str = "c1") -> Message:
    return Message(conversation_id, seq, "u1", f"m{seq}", "text", f"body {seq}", seq)


class Recorder:
    def __init__(self) -> None:
        self.out: list[tuple[str, int, Any]] = []
        self.sequencer = Sequencer(lambda m, extra: self.out.append(
            (m.conversation_id, m.seq, extra)))

    def seqs(self, conversation_id: str = "c1") -> list[int]:
        return [seq for cid, seq, _ in self.out if cid == conversation_id]


def store_fill(recorder: Recorder, log: dict[str, list[Message]]) -> None:
    """What the node does when a deadline passes: read each gap from the store and fill it."""
    for conversation_id in log:
        gap = recorder.sequencer.gap(conversation_id)
        if gap is not None:
            recorder.sequencer.fill(log[conversation_id][gap.lo:gap.hi])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_arrival_order_with_duplicates_and_drops_comes_out_in_order_exactly_once(
        data: st.DataObject) -> None:
    convs = {"c1": data.draw(st.integers(1, 25)), "c2": data.draw(st.integers(1, 10))}
    log = {cid: [msg(s, cid) for s in range(1, n + 1)] for cid, n in convs.items()}
    arrivals = [m for cid in log for m in log[cid]]
    arrivals += data.draw(st.lists(st.sampled_from(arrivals), max_size=15))  # duplicates
    arrivals = data.draw(st.permutations(arrivals))
    dropped = data.draw(st.sets(st.integers(0, len(arrivals) - 1), max_size=len(arrivals)))
    recorder = Recorder()
    for cid in log:
        recorder.sequencer.start(cid, 0)
    for index, message in enumerate(arrivals):
        if index in dropped:
            continue
        recorder.sequencer.offer(message)
        if data.draw(st.booleans()):  # a deadline may pass at any point
            store_fill(recorder, log)
    store_fill(recorder, log)
    for cid, n in convs.items():
        # The last message itself may be lost with nothing after it: the store's last_seq
        # (read after a bus outage) reveals that gap.
        behind = recorder.sequencer.behind(cid, n)
        if behind is not None:
            recorder.sequencer.fill(log[cid][behind.lo:behind.hi])
        assert recorder.seqs(cid) == list(range(1, n + 1))


def test_a_message_above_the_next_waits_and_is_released_by_the_missing_one() -> None:
    recorder = Recorder()
    recorder.sequencer.start("c1", 4)
    assert recorder.sequencer.offer(msg(6)) is True
    assert recorder.seqs() == []
    assert recorder.sequencer.offer(msg(5)) is False
    assert recorder.seqs() == [5, 6]


def test_what_is_left_of_a_partly_filled_gap_is_as_old_as_the_messages_still_waiting(
        ) -> None:
    """4 missing since 5 came at t=0, 6..8 only since 9 came at t=1: once 4 arrives, the gap
    that is left gets its deadline from t=1, not from when the first gap opened."""
    recorder = Recorder()
    recorder.sequencer.start("c1", 3)
    assert recorder.sequencer.offer(msg(5), now=0.0) is True
    assert recorder.sequencer.offer(msg(9), now=1.0) is False  # the same gap, grown
    assert recorder.sequencer.gap_since("c1") == 0.0
    recorder.sequencer.offer(msg(7), now=2.0)
    recorder.sequencer.offer(msg(4), now=3.0)
    assert recorder.seqs() == [4, 5]
    assert recorder.sequencer.gap_since("c1") == 1.0
    recorder.sequencer.fill([msg(6)])
    assert recorder.seqs() == [4, 5, 6, 7]
    assert recorder.sequencer.gap_since("c1") == 1.0  # 8 has been missing since 9 came


def test_a_message_at_or_below_what_was_applied_is_a_duplicate() -> None:
    recorder = Recorder()
    recorder.sequencer.start("c1", 3)
    recorder.sequencer.offer(msg(3))
    recorder.sequencer.offer(msg(2))
    recorder.sequencer.offer(msg(4))
    recorder.sequencer.offer(msg(4))
    assert recorder.seqs() == [4]


def test_the_gap_is_the_store_range_before_the_highest_waiting_seq() -> None:
    recorder = Recorder()
    recorder.sequencer.start("c1", 2)
    recorder.sequencer.offer(msg(5))
    recorder.sequencer.offer(msg(7))
    gap = recorder.sequencer.gap("c1")
    assert gap is not None and (gap.lo, gap.hi) == (2, 7)
    recorder.sequencer.fill([msg(3), msg(4)])  # the store's 5..7 not even needed: 5 waits
    assert recorder.seqs() == [3, 4, 5]
    assert recorder.sequencer.gap("c1") is not None  # 6 still missing


def test_a_waiting_local_message_keeps_its_origin_when_the_store_fills_it_in() -> None:
    """A node's own send waiting behind a remote gap still excludes its sending session."""
    recorder = Recorder()
    recorder.sequencer.start("c1", 0)
    recorder.sequencer.offer(msg(2), extra="origin")
    recorder.sequencer.fill([msg(1), msg(2)])
    assert recorder.out == [("c1", 1, None), ("c1", 2, "origin")]


def test_a_conversation_never_started_begins_at_its_first_message() -> None:
    recorder = Recorder()
    recorder.sequencer.offer(msg(9))
    recorder.sequencer.offer(msg(10))
    assert recorder.seqs() == [9, 10]
