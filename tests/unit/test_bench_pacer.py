"""The bench's pacer sends exactly what its rate and duration owe, even when the machine wakes
it late: CI once saw a busy box cost a tiny pairs run 5 of its 60 sends, and the bench then
blamed the node for sends it never made."""

import time
from collections.abc import Awaitable, Callable

import trio

from chatnode.bench.worker import paced


def test_a_pacer_woken_late_still_runs_every_action_it_owes() -> None:
    calls: list[int] = []

    async def action() -> None:
        if not calls:
            time.sleep(0.3)  # the first action blocks the whole process past the run's end
        calls.append(1)

    trio.run(paced, 100, 0.2, [action])
    assert len(calls) == 20


def test_a_pacer_runs_its_actions_round_robin_and_spread_over_the_duration() -> None:
    calls: list[tuple[str, float]] = []

    def recorder(name: str) -> Callable[[], Awaitable[None]]:
        async def action() -> None:
            calls.append((name, trio.current_time()))
        return action

    async def main() -> float:
        started = trio.current_time()
        await paced(50, 0.4, [recorder("a"), recorder("b")])
        return started

    started = trio.run(main)
    assert [name for name, _ in calls] == ["a", "b"] * 10
    assert calls[-1][1] - started >= 0.35  # spread over the run, not sent in one burst
