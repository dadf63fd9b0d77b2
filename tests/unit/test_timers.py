import trio
import trio.testing

from chatnode.timers import Timers


async def test_timers_fire_at_their_deadline_and_can_be_replaced_or_cancelled(
        autojump_clock: trio.testing.MockClock) -> None:
    timers = Timers()
    fired: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run)
        start = trio.current_time()

        def record(name: str):  # type: ignore[no-untyped-def]
            return lambda: fired.append((name, trio.current_time() - start))

        timers.call_later(5, "a", record("a"))
        timers.call_later(1, "b", record("b"))
        timers.call_later(3, "c", record("c"))
        timers.call_later(2, "a", record("a-again"))  # replaces a
        assert timers.cancel("c") and not timers.cancel("c")
        await trio.sleep(10)
        assert fired == [("b", 1), ("a-again", 2)]
        assert not timers.pending("a")
        nursery.cancel_scope.cancel()


async def test_a_key_set_again_and_again_keeps_the_heap_small_and_fires_once(
        autojump_clock: trio.testing.MockClock) -> None:
    timers = Timers()
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timers.run)
        start = trio.current_time()
        timers.call_later(100, "other", lambda: None)
        for _ in range(10_000):  # a client flooding `typing`: one key, refreshed each frame
            timers.call_later(5, "typing", lambda: fired.append(trio.current_time() - start))
            await trio.sleep(0.0001)
            assert timers.heap_entries <= 2 * 2 + 64 + 1
        await trio.sleep(10)
        assert len(fired) == 1 and 5 < fired[0] < 7
        nursery.cancel_scope.cancel()
