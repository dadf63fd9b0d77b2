import json

import pytest
import trio

from chatnode import hub as hub_module
from chatnode.hub import CLOSE_TOO_SLOW, Hub, Session
from chatnode.protocol import Message, StatusUpdate, encode


def live_session(user_id: str, codec: str, capacity: int = 8) -> Session:
    session = Session(user_id, f"d-{user_id}", codec, capacity)  # type: ignore[arg-type]
    session.holding = False
    return session


async def test_fan_out_to_256_members_encodes_once_per_codec_and_skips_a_slow_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    encodes: list[str] = []

    def counting_encode(frame, codec):  # type: ignore[no-untyped-def]
        encodes.append(codec)
        return encode(frame, codec)

    monkeypatch.setattr(hub_module, "encode", counting_encode)
    hub = Hub()
    sessions = [live_session(f"u{i}", "json" if i % 2 else "msgpack") for i in range(256)]
    slow = sessions[7]
    for session in sessions:
        hub.register(session)
    for _ in range(slow.capacity):  # the slow member's outbox is already full
        slow.outbox_send.send_nowait("old")
    message = Message("c", 1, "u0", "m", "text", "hi", 0)
    hub.publish([s.user_id for s in sessions], message)  # returns without waiting

    assert sorted(encodes) == ["json", "msgpack"]
    assert slow.close_code == CLOSE_TOO_SLOW and slow.cancel_scope.cancel_called
    for session in sessions:
        if session is not slow:
            assert session.outbox_receive.receive_nowait() == (
                encode(message, "json").decode() if session.codec == "json"
                else encode(message, "msgpack"))
            assert session.close_code is None


async def test_frames_held_during_catch_up_are_released_above_what_it_sent() -> None:
    session = Session("u", "d", "json", 8)
    session.push(Message("c", 3, "x", "m3", "text", "old", 0))
    session.push(Message("c", 4, "x", "m4", "text", "new", 0))
    session.push(Message("other", 1, "x", "o1", "text", "new conversation", 0))
    await session.release_held({"c": 3})
    released = [session.outbox_receive.receive_nowait() for _ in range(2)]
    assert ['"seq":4' in r for r in released] == [True, False]
    assert '"conversation_id":"other"' in released[1]


async def test_a_catch_up_that_filled_the_outbox_still_releases_what_it_held() -> None:
    """The catch-up may leave the outbox full; the frames held meanwhile wait for room like
    the catch-up did, and the session is not closed as too slow."""
    session = Session("u", "d", "json", 2)
    session.push(Message("c", 5, "x", "m5", "text", "live while catching up", 0))
    for seq in (3, 4):  # the catch-up's own frames fill the outbox
        await session.push_waiting(Message("c", seq, "x", f"m{seq}", "text", "old", 0))
    received: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.release_held, {"c": 4})
        await trio.sleep(0.01)
        assert session.holding and session.close_code is None  # waiting for room
        for _ in range(3):
            received.append(await session.outbox_receive.receive())
    assert ['"seq":5' in r for r in received] == [False, False, True]
    assert not session.holding and session.close_code is None


def drain(session: Session) -> list[str | bytes]:
    """What the session's writer would send, in order."""
    sent = []
    while True:
        try:
            item = session.outbox_receive.receive_nowait()
        except trio.WouldBlock:
            return sent
        data = session.encoded(item)
        if data is not None:
            sent.append(data)


async def test_a_waiting_status_update_is_superseded_by_a_newer_one_behind_the_rest() -> None:
    hub = Hub()
    session = live_session("u", "json")
    hub.register(session)
    hub.publish_status("u", StatusUpdate("c", 1, 1, 0, 0))
    hub.publish_status("u", StatusUpdate("other", 5, 5, 5, 5))
    hub.publish(["u"], Message("c", 2, "x", "m2", "text", "hi", 0))
    hub.publish_status("u", StatusUpdate("c", 2, 2, 1, 0))

    frames = [json.loads(data) for data in drain(session)]
    # c's first status is gone; the newer one comes after the message it counts
    assert [(f["type"], f["conversation_id"]) for f in frames] == [
        ("status_update", "other"), ("message", "c"), ("status_update", "c")]
    assert frames[2]["last_delivered_seq"] == 2

    # once written, the next one is queued and written again: a session that keeps up
    # gets every status_update
    hub.publish_status("u", StatusUpdate("c", 2, 2, 2, 0))
    assert [json.loads(data)["last_read_seq"] for data in drain(session)] == [2]


async def test_a_session_whose_hello_passed_just_before_its_device_was_logged_out_is_closed(
        ) -> None:
    """The token is checked before the session registers; a logout landing in between must
    still close it (4001), and other devices of the user must not be touched."""
    hub = Hub()
    live = live_session("u1", "json")
    hub.register(live)
    hub.revoke_device("d-u1")
    assert live.close_code == 4001
    late = live_session("u1", "json")  # its hello was checked before the revocation
    other = Session("u1", "d-other", "json", 8)
    hub.register(late)
    hub.register(other)
    assert late.close_code == 4001 and late.cancel_scope.cancel_called
    assert other.close_code is None


async def test_logged_out_devices_are_forgotten_after_a_while(
        autojump_clock: trio.testing.MockClock) -> None:
    hub = Hub()
    hub.revoke_device("d-old")
    await trio.sleep(hub_module.REVOKED_MEMORY_S + 1)
    hub.revoke_device("d-new")
    assert set(hub._revoked) == {"d-new"}
