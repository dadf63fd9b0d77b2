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
